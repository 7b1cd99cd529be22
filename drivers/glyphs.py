"""Drawing text from a TTF into 1-bit bitmaps: printer-cell glyphs and cropped text lines.

Everything is drawn without anti-aliasing (mode "1"): the printer prints dots, and
python-escpos would dither grey edges into noise.
"""
from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from qms.drivers.printer_status import PrinterConfigError

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/noto")]
SANS = ["DejaVuSans.ttf", "NotoSans-Regular.ttf"]
SANS_NARROW = ["DejaVuSansCondensed.ttf", "DejaVuSans.ttf", "NotoSans-Regular.ttf"]
SANS_BOLD = ["DejaVuSans-Bold.ttf", "NotoSans-Bold.ttf"]
MONO = ["DejaVuSansMono.ttf", "NotoSansMono-Regular.ttf"]

# Font A of ESC/POS printers: 12 x 24 dots a character.
CELL_W, CELL_H = 12, 24
_MONO_PX, _BASELINE = 20, 19      # DejaVu Sans Mono 20 px: 12 px advance, ascent 19, descent 5


def find_font(configured: str, candidates: list[str]) -> str:
    if configured:
        if not Path(configured).is_file():
            raise PrinterConfigError(f"font file not found: {configured}")
        return configured
    for d in FONT_DIRS:
        for name in candidates:
            if (d / name).is_file():
                return str(d / name)
    raise PrinterConfigError(
        f"no TTF font found (looked for {', '.join(candidates)}); install fonts-dejavu-core "
        "or set printer.font")


@functools.lru_cache(maxsize=64)
def font(path: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px)


@functools.lru_cache(maxsize=2048)
def cell_glyph(char: str, font_path: str = "", cell_w: int = CELL_W, cell_h: int = CELL_H) -> Image.Image:
    """`char` drawn into one printer cell, on the printer font's baseline.

    Drawn at 4x and reduced, so that wide letters (Ơ, Ư) can be narrowed to the cell and thin
    marks survive; letters with stacked marks (Ấ, Ặ) are drawn smaller when they would
    leave the cell. A proportional font is used: the monospaced DejaVu has no
    precomposed stacked letters and sets their marks beside the base letter.
    """
    path = font_path or find_font("", SANS_NARROW)
    k = 4
    big_w, big_h = cell_w * k, cell_h * k
    baseline = round(_BASELINE * cell_h / CELL_H) * k
    px = round(_MONO_PX * cell_h / CELL_H) * k
    while True:
        f = font(path, px)
        left, top, right, bottom = f.getbbox(char, anchor="ls")
        if (baseline + top >= 0 and baseline + bottom <= big_h) or px <= 8 * k:
            break
        px -= k
    ink_w = max(right - left, 1)
    room = big_w - k                         # one dot of space between letters
    canvas = Image.new("L", (max(ink_w, room), big_h), 0)
    ImageDraw.Draw(canvas).text((-left + max(0, room - ink_w) // 2, baseline), char,
                                font=f, fill=255, anchor="ls")
    if canvas.width > room:                  # too wide (Ư, Ơ, M): use the spacing dot, then narrow
        room = big_w
        canvas = canvas.resize((room, big_h), Image.Resampling.BOX)
    cell = Image.new("L", (big_w, big_h), 0)
    cell.paste(canvas, (0, 0))
    small = cell.resize((cell_w, cell_h), Image.Resampling.BOX)
    return small.point(lambda v: 255 if v >= 70 else 0).convert("1")


def glyph_columns(img: Image.Image) -> bytes:
    """A cell bitmap in ESC & order: column by column, top to bottom, most significant bit first."""
    w, h = img.size
    px = img.load()
    out = bytearray()
    for x in range(w):
        for y0 in range(0, h, 8):
            b = 0
            for bit in range(8):
                y = y0 + bit
                if y < h and px[x, y]:
                    b |= 0x80 >> bit
            out.append(b)
    return bytes(out)


def line_font_px(scale_h: int) -> int:
    """TTF pixel size for a text line as tall as the printer font at this magnification."""
    return 21 * scale_h


def text_width(text: str, font_path: str, px: int) -> float:
    return font(font_path, px).getlength(text)


def wrap(text: str, fits) -> list[str]:
    """Greedy word wrap; `fits(s)` says whether a line fits. Over-long words are cut."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        while not fits(word) and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and not fits(word[:cut]):
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current or not lines:
        lines.append(current)
    return lines


def render_line(text: str, font_path: str, px: int, invert: bool = False) -> Image.Image:
    """One line of text as a 1-bit image cropped to its ink (1 = black dot).

    Inverted lines keep a margin of black around the text so they read as a label.
    """
    f = font(font_path, px)
    left, top, right, bottom = f.getbbox(text, anchor="ls")
    pad = 3 if invert else 0
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    img = Image.new("1", (max(w, 1), max(h, 1)), 1 if invert else 0)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"
    draw.text((pad - left, pad - top), text, font=f, fill=0 if invert else 1, anchor="ls")
    return img
