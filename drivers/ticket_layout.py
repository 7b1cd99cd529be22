"""A ticket as a list of printable blocks, following `printer.layout` in the config.

The blocks say what to print and how it should look; how the bytes are made (printer
font, downloaded glyphs, images) is the encoder's business.
"""
from __future__ import annotations

import dataclasses
import re

from qms.config.printer import PrinterConfig
from qms.drivers.ticket import TicketPrint, nfc

WEEKDAYS_VI = ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"]


@dataclasses.dataclass(frozen=True)
class Style:
    width: int = 1          # magnification of the printer font (1..8)
    height: int = 1
    bold: bool = False
    align: str = "center"   # left | center | right
    invert: bool = False    # white on black


@dataclasses.dataclass(frozen=True)
class Text:
    text: str
    style: Style = Style()


@dataclasses.dataclass(frozen=True)
class BigNumber:
    digits: str
    scale: int


@dataclasses.dataclass(frozen=True)
class Qr:
    data: str


@dataclasses.dataclass(frozen=True)
class Rule:
    pass


@dataclasses.dataclass(frozen=True)
class Feed:
    lines: int = 1


Item = Text | BigNumber | Qr | Rule | Feed

TITLE = Style(bold=True)
SERVICE = Style(bold=True, height=2)
NORMAL = Style()
PRIORITY = Style(bold=True, invert=True)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# typographic marks a printer font lacks, said with ASCII (a glyph or image less per ticket)
_PLAIN = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'",
                        "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u00a0": " "})


def clean(text: str) -> str:
    """NFC, and no control characters: a stray ESC in a service name must not become a command."""
    return _CONTROL.sub(" ", nfc(str(text)).translate(_PLAIN)).strip()


def _is_link(data: str) -> bool:
    return data.startswith(("http://", "https://"))


def ticket_blocks(t: TicketPrint, cfg: PrinterConfig) -> list[Item]:
    texts = cfg.texts
    items: list[Item] = []

    def say(vi: str, en: str = "", style: Style = NORMAL) -> None:
        if clean(vi):
            items.append(Text(clean(vi), style))
        if cfg.english and clean(en):
            items.append(Text(clean(en), NORMAL))

    if t.reprint and clean(texts.reprint_mark):     # first, where staff and citizen see it
        items.append(Text(clean(texts.reprint_mark), PRIORITY))
    for block in cfg.layout:
        if block == "center":
            say(t.center_name, style=TITLE)
        elif block == "point":
            say(t.point_name)
        elif block == "rule":
            items.append(Rule())
        elif block == "service":
            say(t.service_vi, t.service_en, SERVICE)
        elif block == "number":
            digits = str(t.number)
            fit = max(1, cfg.paper_width_px // (12 * max(len(digits), 1)))
            items.append(BigNumber(digits, max(1, min(cfg.number_scale, fit, 8))))
        elif block == "priority" and t.priority_label:
            say(texts.priority_vi.format(label=clean(t.priority_label)), style=PRIORITY)
        elif block == "ahead" and t.people_ahead is not None:
            n = max(0, int(t.people_ahead))
            say(texts.ahead_vi.format(n=n), texts.ahead_en.format(n=n))
        elif block == "wait" and t.est_wait_minutes is not None:
            m = max(0, int(round(t.est_wait_minutes)))
            say(texts.wait_vi.format(minutes=m), texts.wait_en.format(minutes=m))
            if t.wait_note_vi:
                say(t.wait_note_vi, t.wait_note_en or "")
        elif block == "issued":
            at = t.issued_at
            say(texts.issued_vi.format(time=at.strftime("%H:%M"), date=at.strftime("%d/%m/%Y"),
                                       weekday=WEEKDAYS_VI[at.weekday()]))
        elif block == "qr" and t.qr_url and cfg.qr != "off":
            items.append(Qr(t.qr_url))
            if _is_link(t.qr_url):          # a bare ticket id cannot be "followed" by a phone
                say(texts.qr_vi, texts.qr_en)
        elif block == "ticket_id" and t.ticket_id:
            mark = f" {texts.offline_mark}" if t.offline and texts.offline_mark else ""
            items.append(Text(clean(t.ticket_id) + mark, NORMAL))
        elif block == "footer":
            for line in (t.footer if t.footer is not None else cfg.footer):
                if clean(line):
                    items.append(Text(clean(line), NORMAL))
        elif block == "blank":
            items.append(Feed(1))
    return items
