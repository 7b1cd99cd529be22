"""The counter's number display: the number being served, "--" when idle, blinking on recall.

A small interface, `show(text, blink)`, with two backends chosen by
`[counter_terminal.number_display] kind`:
- `SerialNumberDisplay`: an LED board on a serial line (RS-485/RS-232 adapter) with pyserial,
  speaking one of the framings in `qms.counter.board_protocols`;
- `SimulatedNumberDisplay`: draws a 7-segment board with Pillow and can write each new
  frame to a PNG (demo, tests).
Neither raises on a bad link: a display fault must never stop the counter from calling.
"""
from __future__ import annotations

import functools
import logging
import unicodedata
from pathlib import Path

from qms.config.counter import NumberDisplayConfig
from qms.counter import board_protocols

log = logging.getLogger("qms.counter.display")

IDLE = "--"


def number_text(number: int | None) -> str:
    return IDLE if number is None else str(number)


class SerialNumberDisplay:
    def __init__(self, cfg: NumberDisplayConfig, address: int, serial_factory=None):
        self.cfg = cfg
        self.address = address
        self.frame = board_protocols.FRAMERS[cfg.protocol]
        self._factory = serial_factory
        self._port = None
        self.errors = 0
        self.last: tuple[str, bool] | None = None

    def _open(self):
        if self._port is None:
            if self._factory is not None:
                self._port = self._factory()
            else:
                import serial
                self._port = serial.Serial(self.cfg.port, self.cfg.baudrate, timeout=0.2,
                                           write_timeout=0.5)
        return self._port

    def show(self, text: str, blink: bool = False) -> bool:
        """Send the frame. Returns False (and logs) when the board cannot be reached; the
        next `show` tries to reopen the port."""
        self.last = (text, blink)
        data = self.frame(self.address, text, self.cfg.digits, blink)
        try:
            port = self._open()
            port.write(data)
            port.flush()
            return True
        except Exception as e:   # noqa: BLE001 - SerialException, OSError, timeouts: all the same to staff
            self.errors += 1
            if self.errors <= 5 or self.errors % 100 == 0:
                log.warning("number display on %s not reachable (%s); retrying on the next change",
                            self.cfg.port, e)
            self.close()
            return False

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:   # noqa: BLE001
                pass
            self._port = None


# 7-segment shapes: segments a b c d e f g (top, top-right, bottom-right, bottom,
# bottom-left, top-left, middle), as on the boards the serial protocol drives
SEGMENTS = {
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg", "5": "acdfg",
    "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg", "-": "g", " ": "",
    "A": "abcefg", "B": "cdefg", "C": "adef", "D": "bcdeg", "E": "adefg", "F": "aefg",
    "H": "bcefg", "L": "def", "N": "ceg", "O": "cdeg", "P": "abefg", "Q": "abcfg",
    "R": "eg", "T": "defg", "U": "bcdef",
}

# the board's colours: the caption and the lit segments each at least 4.5:1 against what
# is behind them (the layout suite checks, tests/test_layout_display.py)
BG, CAPTION, LIT, UNLIT = (12, 12, 12), (235, 235, 235), (255, 40, 30), (45, 16, 14)
CAPTION_PX, CAPTION_MIN_PX = 40, 24     # shrunk to fit the frame, then wrapped, never cut

_FONT_PATHS = ("/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
               "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


class SimulatedNumberDisplay:
    """Remembers every frame and renders it as a red 7-segment board under a caption."""

    DIGIT_W, DIGIT_H, GAP, SEG = 90, 160, 24, 16

    def __init__(self, cfg: NumberDisplayConfig, caption: str = "", png: str | Path | None = None):
        self.digits = cfg.digits
        self.caption = unicodedata.normalize("NFC", caption)
        self.png = Path(png) if png else (Path(cfg.png) if cfg.png else None)
        self.frames: list[tuple[str, bool]] = []

    def show(self, text: str, blink: bool = False) -> bool:
        text = board_protocols.fit(text, self.digits)
        self.frames.append((text, blink))
        if self.png is not None:
            try:
                self.png.parent.mkdir(parents=True, exist_ok=True)
                self.render(text, blink).save(self.png)
            except OSError as e:
                log.warning("cannot write %s: %s", self.png, e)
        return True

    @property
    def last(self) -> tuple[str, bool] | None:
        return self.frames[-1] if self.frames else None

    def render(self, text: str, blink: bool = False, lit: bool = True):
        """The board as an image; a blinking frame shows both phases side by side (lit, dark)."""
        from PIL import Image
        if blink and lit:        # (the gap between the two phases is not part of a board)
            on, off = self.render(text, False, True), self.render(text, False, False)
            both = Image.new("RGB", (on.width * 2 + 20, on.height), (40, 40, 40))
            both.paste(on, (0, 0))
            both.paste(off, (on.width + 20, 0))
            return both
        return self._board(board_protocols.fit(text, self.digits), lit)

    @property
    def width(self) -> int:
        return self.digits * (self.DIGIT_W + self.GAP) + self.GAP

    def caption_layout(self) -> tuple[int, list[str]]:
        """The caption's size and lines: the largest size (40 px down to 24) at which it fits
        the frame's width on one line, else wrapped at spaces at 24 px; a word longer than
        the frame (none in a counter's name) is the only thing that may still be cut."""
        if not self.caption:
            return 0, []
        room = self.width - 2 * self.GAP
        for px in range(CAPTION_PX, CAPTION_MIN_PX - 1, -2):
            if _font(px).getlength(self.caption) <= room:
                return px, [self.caption]
        font, lines = _font(CAPTION_MIN_PX), []
        for word in self.caption.split():
            if lines and font.getlength(f"{lines[-1]} {word}") <= room:
                lines[-1] += f" {word}"
            else:
                lines.append(word)
        return CAPTION_MIN_PX, lines

    def _board(self, text: str, lit: bool):
        from PIL import Image, ImageDraw
        px, lines = self.caption_layout()
        line_h = round(px * 1.4)
        cap_h = line_h * len(lines) + 14 if lines else 0      # one line: 70 px, as always
        w = self.width
        h = self.DIGIT_H + 2 * self.GAP + cap_h
        img = Image.new("RGB", (w, h), BG)
        draw = ImageDraw.Draw(img)
        top = (cap_h + self.GAP - line_h * len(lines)) / 2      # centred above the digits
        for i, line in enumerate(lines):
            draw.text((w / 2, top + line_h * i + line_h / 2), line, font=_font(px), fill=CAPTION, anchor="mm")
        for i, ch in enumerate(text):
            x0 = self.GAP + i * (self.DIGIT_W + self.GAP)
            self._digit(draw, x0, self.GAP + cap_h, SEGMENTS.get(ch.upper(), "") if lit else "")
        return img

    def _digit(self, draw, x: int, y: int, segs: str) -> None:
        w, h, t = self.DIGIT_W, self.DIGIT_H, self.SEG
        half = h // 2
        boxes = {
            "a": (x + t, y, x + w - t, y + t), "g": (x + t, y + half - t // 2, x + w - t, y + half + t // 2),
            "d": (x + t, y + h - t, x + w - t, y + h),
            "f": (x, y + t, x + t, y + half - t // 2), "b": (x + w - t, y + t, x + w, y + half - t // 2),
            "e": (x, y + half + t // 2, x + t, y + h - t), "c": (x + w - t, y + half + t // 2, x + w, y + h - t),
        }
        for name, box in boxes.items():
            draw.rounded_rectangle(box, radius=t // 3, fill=LIT if name in segs else UNLIT)

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont
    for p in _FONT_PATHS:
        if Path(p).exists():
            return ImageFont.truetype(p, size)
    return ImageFont.load_default(size)


def open_number_display(cfg: NumberDisplayConfig, counter: int, caption: str = "",
                        png: str | Path | None = None):
    address = cfg.address if cfg.address is not None else counter
    if cfg.kind == "serial":
        return SerialNumberDisplay(cfg, address)
    return SimulatedNumberDisplay(cfg, caption=caption, png=png)
