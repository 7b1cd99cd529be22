"""Drawing text from a TTF into 1-bit bitmaps: printer-cell glyphs and cropped text lines.

Everything is drawn without anti-aliasing (mode "1"): the printer prints dots, and
python-escpos would dither grey edges into noise.
"""
from __future__ import annotations

import functools
import unicodedata
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


# Vietnamese marks drawn by hand for a printer cell: at 12 x 24 dots a font's own marks
# come out as 1-dot smudges (the horn of Ư, hook above vs acute) or merge into blobs when
# stacked (Ẵ, Ẫ, Ỡ). Strokes are 2 dots wide; '#' is a dot.
_MARKS = {
    "\u0301": ["..##", ".##.", "##.."],                 # acute
    "\u0300": ["##..", ".##.", "..##"],                 # grave
    "\u0309": ["###", "..#", ".#.", ".#."],             # hook above: a small "?"
    "\u0303": [".##..#", "#..##."],                     # tilde
    "\u0302": ["..##..", ".####.", "##..##"],           # circumflex
    "\u0306": ["#....#", ".####."],                     # breve
}
_DOT_BELOW = ["##", "##"]
_HORN = ["..##", "..##", "###."]                        # on the top right of O and U
_TONES = {"\u0300", "\u0301", "\u0303", "\u0309"}
_SIDE_TONES = {"\u0300", "\u0301", "\u0309"}        # beside a circumflex, not above it


def _stamp(img: Image.Image, pattern: list[str], x: int, y: int) -> None:
    px = img.load()
    for dy, row in enumerate(pattern):
        for dx, ch in enumerate(row):
            if ch == "#" and 0 <= x + dx < img.width and 0 <= y + dy < img.height:
                px[x + dx, y + dy] = 1


def _ink_box(img: Image.Image) -> tuple[int, int, int, int]:
    box = img.getbbox()
    return box if box else (0, 0, img.width, img.height)


@functools.lru_cache(maxsize=2048)
def cell_glyph(char: str, font_path: str = "", cell_w: int = CELL_W, cell_h: int = CELL_H) -> Image.Image:
    """`char` drawn into one printer cell, on the printer font's baseline: the letter from
    the font, its Vietnamese marks placed by hand (`_MARKS`), so that every letter stays
    distinguishable from its base letter and its siblings at 12 x 24 and 24 x 24 dots
    (tests/test_printer_legibility.py checks it by pixels)."""
    parts = unicodedata.normalize("NFD", char)
    marks = parts[1:]
    if not marks or not all(m in _MARKS or m in ("\u0323", "\u031b") for m in marks):
        return _font_cell(char, font_path, cell_w, cell_h)
    return _composed_cell(parts[0], marks, font_path, cell_w, cell_h)


def _composed_cell(base: str, marks: str, font_path: str, cell_w: int, cell_h: int) -> Image.Image:
    above = [m for m in marks if m in _MARKS]
    hat = next((m for m in above if m in ("\u0302", "\u0306")), None)
    tone = next((m for m in above if m in _TONES), None)
    horn = "\u031b" in marks
    # rows the marks need above the letter (1 row of air between each)
    if hat and tone and not (hat == "\u0302" and tone in _SIDE_TONES):
        need = len(_MARKS[hat]) + len(_MARKS[tone]) + 2
    elif hat and tone:
        need = max(len(_MARKS[hat]), len(_MARKS[tone]) + 1) + 1
    else:
        need = sum(len(_MARKS[m]) for m in above) + len(above)
    if horn and above:
        need += 1                                                # the horn rises 1 row
    letter = "\u0131" if base == "i" and above else base       # dotless i under a mark
    squeeze = 3 if horn else 0                                   # room for the horn on the right
    shrink = 0
    while True:
        cell = _font_cell(letter, font_path, cell_w - squeeze, cell_h, shrink)
        left, top, right, bottom = _ink_box(cell)
        if top >= need or shrink >= 8:
            break
        shrink += 1
    if squeeze:
        wide = Image.new("1", (cell_w, cell_h), 0)
        wide.paste(cell, (0, 0))
        cell = wide
    baseline = round(_BASELINE * cell_h / CELL_H)
    if base.lower() != "y":       # the overshoot of a round letter's bottom, 1 dot under the
        cell.paste(0, (0, baseline, cell_w, cell_h))   # base line, would read as a dot below
        bottom = min(bottom, baseline)
    mid = (left + right) // 2
    if horn:
        _stamp(cell, _HORN, right - 2, top - 1)
    y = top - (2 if horn else 1)                                 # row above the letter, then up
    if hat:
        pat = _MARKS[hat]
        y -= len(pat)
        _stamp(cell, pat, mid - len(pat[0]) // 2, y)
        if tone in _SIDE_TONES and hat == "\u0302":         # Ấ Ầ Ẩ: the tone beside the hat
            t = _MARKS[tone]
            _stamp(cell, t, min(cell_w - len(t[0]), mid + len(pat[0]) // 2), y - 1)
            tone = None
        else:
            y -= 1
    if tone:
        t = _MARKS[tone]
        _stamp(cell, t, mid - len(t[0]) // 2 + (1 if tone == "\u0301" else 0), y - len(t))
    if "\u0323" in marks:                                       # dot below, under the base line
        if bottom + 3 <= cell_h:
            _stamp(cell, _DOT_BELOW, mid - 1, bottom + 1)
        else:                                                    # ỵ: beside the descender
            _stamp(cell, _DOT_BELOW, min(cell_w - 2, right), baseline + 1)
    return cell


def _font_cell(char: str, font_path: str, cell_w: int, cell_h: int, shrink: int = 0) -> Image.Image:
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
    px = (round(_MONO_PX * cell_h / CELL_H) - shrink) * k
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
    """TTF pixel size for a text line about as tall as the printer font at this magnification
    (20 px: capitals of 15 dots against font A's 17; every ticket of a ward stays under
    8 KB in raster mode, see bench/README.md)."""
    return 20 * scale_h


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

    Inverted lines keep a margin of black around the text so they read as a label. The
    horn of Ơ/Ư is drawn again, bolder: a font's own is 1 dot at this size ("ƯU" read "UU").
    """
    f = font(font_path, px)
    left, top, right, bottom = f.getbbox(text, anchor="ls")
    horns = _horn_boxes(text, f, px)
    for hl, ht, hr, _ in horns:
        left, top, right = min(left, hl), min(top, ht), max(right, hr)
    pad = 2 if invert else 0
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    img = Image.new("1", (max(w, 1), max(h, 1)), 1 if invert else 0)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"
    draw.text((pad - left, pad - top), text, font=f, fill=0 if invert else 1, anchor="ls")
    for hl, ht, hr, hb in horns:
        draw.rectangle((hl + pad - left, ht + pad - top, hr + pad - left, hb + pad - top), fill=0 if invert else 1)
    return img


def _horn_boxes(text: str, f: ImageFont.FreeTypeFont, px: int) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom; baseline at y = 0) of a bold horn for each Ơ/Ư."""
    out = []
    s = max(2, round(px / 10))                      # stroke: 2 dots at 20 px
    for i, ch in enumerate(text):
        parts = unicodedata.normalize("NFD", ch)
        if "\u031b" not in parts:
            continue
        x = f.getlength(text[:i])
        _, btop, bright, _ = f.getbbox(parts[0], anchor="ls")     # the bare O/U
        r = round(x + bright)
        # a flag rising above the right stem, leaning 1 dot right: the next letter is close
        out.append((r - s + 1, round(btop) - 2 * s, r + 1, round(btop) + s // 2))
    return out
