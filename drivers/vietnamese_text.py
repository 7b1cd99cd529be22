"""Three ways to put Vietnamese text on an ESC/POS printer; one is chosen per printer.

- `GlyphText`: the accented letters a job needs are drawn from a TTF and downloaded as
  user-defined characters (ESC &), on codes the job's plain ASCII does not use; then all
  text goes as text (ESC % 1 selects the downloaded set). Smallest by far.
- `RasterText`: Vietnamese lines as 1-bit images cropped to their text, ASCII lines in the
  printer's own font. Works on every printer.
- `CodePageText`: the printer's own TCVN-3 or CP1258 code page, for models whose self-test
  print was checked. A line the code page cannot carry goes as an image.

All three write through a python-escpos printer object (`esc`) and share `PrinterFont`
for lines set in the printer's font.
"""
from __future__ import annotations

import unicodedata
from typing import Protocol

from PIL import Image, ImageOps

from qms.drivers import escpos_env
from qms.drivers.glyphs import (
    CELL_H,
    CELL_W,
    SANS,
    SANS_BOLD,
    SANS_NARROW,
    cell_glyph,
    find_font,
    glyph_columns,
    line_font_px,
    render_line,
    text_width,
    wrap,
)
from qms.drivers.printer_status import PrinterConfigError
from qms.drivers.ticket_layout import Style

ESC = b"\x1b"
LINE_PITCH = 30      # dots between text lines at magnification 1 (ESC 2 default on 180-203 dpi heads)


class VietnameseText(Protocol):
    def begin(self, esc, texts: list[str], other_ascii: str) -> None:
        """Called once per job with every text line it will print, in order."""

    def line(self, esc, text: str, style: Style) -> None:
        """Print `text` (wrapped as needed) and end the line."""

    def end(self, esc) -> None:
        """Called once at the end of the job."""


class PrinterFont:
    """Lines in the printer's resident font A (12 x 24 dots a cell)."""

    def __init__(self, paper_width_px: int):
        self.paper_width_px = paper_width_px

    def columns(self, style: Style) -> int:
        return max(1, self.paper_width_px // (CELL_W * style.width))

    def wrap(self, text: str, style: Style) -> list[str]:
        cols = self.columns(style)
        return wrap(text, lambda s: len(s) <= cols)

    def set_style(self, esc, style: Style) -> None:
        esc.set(align=style.align, bold=style.bold, invert=style.invert,
                custom_size=True, width=style.width, height=style.height)

    def line(self, esc, text: str, style: Style, to_bytes=None) -> None:
        """Print `text`; `to_bytes` turns one wrapped line into printer bytes (default ASCII)."""
        self.set_style(esc, style)
        for part in self.wrap(text, style):
            if to_bytes is None:
                esc.text(part + "\n")
            else:
                esc._raw(to_bytes(part) + b"\n")
        if style.invert:
            esc.set(invert=False)


def to_paper(img: Image.Image) -> Image.Image:
    """Our bitmaps have 1 = dot; python-escpos wants a picture (black ink on white)."""
    return ImageOps.invert(img.convert("L"))


class RasterText:
    def __init__(self, paper_width_px: int, font: str = "", font_bold: str = ""):
        self.printer_font = PrinterFont(paper_width_px)
        self.paper_width_px = paper_width_px
        self.font = find_font(font, SANS)
        self.font_bold = find_font(font_bold, SANS_BOLD)

    def begin(self, esc, texts: list[str], other_ascii: str) -> None:
        pass

    def end(self, esc) -> None:
        pass

    def line(self, esc, text: str, style: Style) -> None:
        if text.isascii():
            self.printer_font.line(esc, text, style)
        else:
            self.image_line(esc, text, style)

    def image_line(self, esc, text: str, style: Style) -> None:
        # Magnified styles are drawn at normal size and magnified by the printer (GS v 0
        # double width/height), like it magnifies its own font: a quarter of the bytes.
        # A double-height line is drawn at full height and half width, then doubled in
        # width: the same bytes, but marks keep their shape (a tilde stretched to double
        # height became a zigzag, "Xã" read "Xẫ").
        tall = style.height == 2 and style.width == 1
        mag_w, mag_h = (2, 1) if tall else (min(style.width, 2), min(style.height, 2))
        px = line_font_px(max(1, max(style.width, style.height) // 2))
        font = self.font_bold if style.bold else self.font
        room = self.paper_width_px // mag_w - (px // 2 if style.invert else 0)
        esc.set(align=style.align)
        shrink = 2 if tall else 1                    # data columns per text pixel (tall: 1/2)
        for part in wrap(text, lambda s: text_width(s, font, px) / shrink <= room):
            if tall:
                big = render_line(part, font, 2 * px, invert=style.invert)
                img = big.convert("L").resize((max(1, big.width // 4), big.height), Image.Resampling.BOX)
                img = img.point(lambda v: 255 if v >= 96 else 0).convert("1")
            else:
                img = render_line(part, font, px, invert=style.invert)
            if img.width > room:
                img = img.crop((0, 0, room, img.height))
            esc.image(to_paper(img), center=False,
                      high_density_horizontal=mag_w == 1, high_density_vertical=mag_h == 1)
            # images are cropped to their ink: feed the rest of a text line's pitch
            gap = LINE_PITCH * style.height - img.height * mag_h
            esc._raw(ESC + b"J" + bytes([max(4, min(255, gap))]))


class GlyphText:
    """User-defined characters. Codes 0x21..0x7E that the job's ASCII does not use carry
    the accented letters; when a job needs more letters than there are free codes (the
    self-test), the set is downloaded again in batches between lines."""

    def __init__(self, paper_width_px: int, fallback: RasterText, font: str = ""):
        self.printer_font = PrinterFont(paper_width_px)
        self.fallback = fallback
        self.font = find_font(font, SANS_NARROW)

    def begin(self, esc, texts: list[str], other_ascii: str) -> None:
        used = set(other_ascii) | {c for t in texts for c in t if c.isascii()}
        free = [c for c in range(0x21, 0x7F) if chr(c) not in used]
        # longest runs of free codes first: letters downloaded together then fill few runs,
        # and each run is one ESC & command (5 bytes of header)
        runs: list[list[int]] = []
        for c in free:
            if runs and runs[-1][-1] == c - 1:
                runs[-1].append(c)
            else:
                runs.append([c])
        self.free = [c for run in sorted(runs, key=len, reverse=True) for c in run]
        self.upcoming = list(texts)
        self.code_of: dict[str, int] = {}
        self.selected = False

    def end(self, esc) -> None:
        if self.selected:
            esc._raw(ESC + b"%\x00")

    @staticmethod
    def _needs(text: str) -> set[str]:
        return {c for c in text if not c.isascii()}

    def line(self, esc, text: str, style: Style) -> None:
        if self.upcoming and self.upcoming[0] == text:
            self.upcoming.pop(0)
        need = self._needs(text)
        if len(need) > len(self.free):
            self.fallback.line(esc, text, style)     # more letters in one line than free codes
            return
        if need - self.code_of.keys():
            self._download(esc, need)
        table = {ord(c): chr(code) for c, code in self.code_of.items()}
        self.printer_font.line(esc, text.translate(table), style)

    def _download(self, esc, need: set[str]) -> None:
        # keep what this line needs, then take in the letters of the next lines while codes last
        batch = list(sorted(need))
        for later in self.upcoming:
            extra = sorted(self._needs(later) - set(batch))
            if len(batch) + len(extra) > len(self.free):
                break
            batch += extra
        keep = {c: code for c, code in self.code_of.items() if c in batch}
        spare = [code for code in self.free if code not in keep.values()]
        new = {c: spare.pop(0) for c in sorted(batch) if c not in keep}
        self.code_of = {**keep, **new}
        self._define(esc, new)
        if not self.selected:
            esc._raw(ESC + b"%\x01")
            self.selected = True

    def _define(self, esc, new: dict[str, int]) -> None:
        """ESC & 3 c1 c2 [12 d1..d36]...: one command per run of consecutive codes."""
        by_code = sorted((code, c) for c, code in new.items())
        runs: list[list[tuple[int, str]]] = []
        for code, c in by_code:
            if runs and runs[-1][-1][0] == code - 1:
                runs[-1].append((code, c))
            else:
                runs.append([(code, c)])
        for run in runs:
            data = b"".join(bytes([CELL_W]) + glyph_columns(cell_glyph(c, self.font)) for _, c in run)
            esc._raw(ESC + b"&" + bytes([CELL_H // 8, run[0][0], run[-1][0]]) + data)


# Vietnamese tone marks as combining characters (CP1258 carries them separately)
_TONES = "\u0300\u0301\u0303\u0309\u0323"


class CodePageText:
    def __init__(self, paper_width_px: int, profile: str, codepage: str, fallback: RasterText):
        self.printer_font = PrinterFont(paper_width_px)
        self.fallback = fallback
        slots = escpos_env.code_page_slots(profile)
        names = {"tcvn3": ["TCVN-3-1", "TCVN-3-2"], "cp1258": ["CP1258"]}[codepage]
        if not all(n in slots for n in names):
            raise PrinterConfigError(
                f"printer profile {profile!r} has no {codepage} code page; "
                "choose another printer.vietnamese mode or profile")
        self.char_map: dict[str, tuple[int, int]] = {}
        for name in names:
            for byte, char in escpos_env.code_page_table(name).items():
                self.char_map.setdefault(char, (slots[name], byte))
        self.slot = slots[names[0]]

    def begin(self, esc, texts: list[str], other_ascii: str) -> None:
        self.current_slot = None

    def end(self, esc) -> None:
        pass

    def _chars(self, text: str) -> list[tuple[int, int]] | None:
        """(slot, byte) per printed character, or None when the code page cannot carry the text."""
        out: list[tuple[int, int]] = []
        for c in text:
            if c.isascii():
                out.append((-1, ord(c)))
            elif c in self.char_map:
                out.append(self.char_map[c])
            else:     # CP1258: base letter (with its hat or horn) + combining tone mark
                decomposed = unicodedata.normalize("NFD", c)
                base = unicodedata.normalize("NFC", "".join(m for m in decomposed if m not in _TONES))
                tones = [m for m in decomposed if m in _TONES]
                parts = [base] + tones
                if not all(p.isascii() or p in self.char_map for p in parts) or len(parts) == 1:
                    return None
                out += [(-1, ord(p)) if p.isascii() else self.char_map[p] for p in parts]
        return out

    def _to_bytes(self, part: str) -> bytes:
        out = bytearray()
        for slot, byte in self._chars(part):
            if slot != -1 and slot != self.current_slot:
                out += ESC + b"t" + bytes([slot])
                self.current_slot = slot
            out.append(byte)
        return bytes(out)

    def line(self, esc, text: str, style: Style) -> None:
        # python-escpos may have sent its own ESC t for a plain line in between
        self.current_slot = None
        if self._chars(text) is None:
            self.fallback.line(esc, text, style)
        else:
            self.printer_font.line(esc, text, style, to_bytes=self._to_bytes)
