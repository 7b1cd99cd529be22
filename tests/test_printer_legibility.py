"""Every Vietnamese letter drawn at the printer's cell size (12 x 24 dots, font A, and 24 x 24)
stays distinguishable, by pixels, from its base letter and from each sibling (same base
letter, other marks): Ư vs U, Ơ vs O, Ẵ vs Ắ, Ằ vs À, é vs ẻ ... With the font the driver
picks and with plain DejaVu Sans (all a Pi with fonts-dejavu-core has).

Distinguishable here: at least MIN_DOTS dots differ (a 2 x 2 dot is the smallest mark a
reader finds on thermal paper), and the confusions the issue reported differ by more."""
from __future__ import annotations

import itertools
import unicodedata

import pytest
from PIL import Image, ImageChops

from qms.drivers.glyphs import SANS, SANS_NARROW, cell_glyph, find_font, render_line
from qms.drivers.ticket import vietnamese_letters

CELLS = [(12, 24), (24, 24)]
FONTS = {"driver": "", "dejavu-sans": find_font("", SANS)}
MIN_DOTS = 4
# the confusions reported on paper: a horn, stacked marks, a tilde against a hat
HARD = [("Ư", "U"), ("ư", "u"), ("Ơ", "O"), ("ơ", "o"), ("Ẵ", "Ắ"), ("Ằ", "À"), ("Ẫ", "Ấ"), ("Ỡ", "Ỗ"),
        ("Ã", "Ẫ"), ("ã", "ẵ")]
HARD_DOTS = 8
# two tone marks of 6 dots each: acute against hook above must not share most of their dots
TONES = [("é", "ẻ"), ("ó", "ỏ"), ("É", "Ẻ"), ("á", "ả"), ("ý", "ỷ")]
TONE_DOTS = 6


def base_of(c: str) -> str:
    return unicodedata.normalize("NFD", c)[0]


def family() -> dict[str, list[str]]:
    """Letters grouped by base letter and case, each group with its bare base letter."""
    groups: dict[str, list[str]] = {}
    for c in vietnamese_letters():
        groups.setdefault(base_of(c), []).append(c)
    for b in groups:
        if b not in groups[b]:
            groups[b].insert(0, b)
    return groups


def dots(a: Image.Image, b: Image.Image) -> int:
    return ImageChops.logical_xor(a, b).histogram()[255]


@pytest.mark.parametrize("font", FONTS)
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c[0]}x{c[1]}")
def test_every_letter_differs_from_its_base_and_siblings(font, cell):
    w, h = cell
    glyph = {c: cell_glyph(c, FONTS[font], w, h) for g in family().values() for c in g}
    too_close = []
    for group in family().values():
        for a, b in itertools.combinations(group, 2):
            if dots(glyph[a], glyph[b]) < MIN_DOTS:
                too_close.append((a, b, dots(glyph[a], glyph[b])))
    assert not too_close, too_close
    for a, b in HARD:
        ga, gb = cell_glyph(a, FONTS[font], w, h), cell_glyph(b, FONTS[font], w, h)
        assert dots(ga, gb) >= HARD_DOTS, (a, b, dots(ga, gb))
    for a, b in TONES:
        ga, gb = cell_glyph(a, FONTS[font], w, h), cell_glyph(b, FONTS[font], w, h)
        assert dots(ga, gb) >= TONE_DOTS, (a, b, dots(ga, gb))


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c[0]}x{c[1]}")
def test_marks_stay_apart_from_the_letter(cell):
    """A mark touching the letter makes a blob: every letter with marks above has a blank
    row between them and its body."""
    w, h = cell
    for c in vietnamese_letters():
        parts = unicodedata.normalize("NFD", c)
        above = [m for m in parts[1:] if m in "\u0300\u0301\u0302\u0303\u0306\u0309"]
        if not above:
            continue
        g = cell_glyph(c, "", w, h)
        rows = [any(g.getpixel((x, y)) for x in range(w)) for y in range(h)]
        first = rows.index(True)
        # the letter body: the longest run of inked rows; above it, at least one blank row
        runs, start = [], None
        for y, ink in enumerate(rows + [False]):
            if ink and start is None:
                start = y
            elif not ink and start is not None:
                runs.append((start, y))
                start = None
        body = max(runs, key=lambda r: r[1] - r[0])
        assert body[0] > first, (c, runs)          # marks sit above the body, not inside it


def test_horn_is_bold_in_raster_lines():
    """Raster lines (DejaVu Sans and Sans Bold at 20 px): the horn adds a visible flag."""
    for path in (find_font("", SANS), find_font("", ["DejaVuSans-Bold.ttf"])):
        for with_horn, bare in (("ƯU TIÊN", "UU TIÊN"), ("Người", "Nguoi")):
            a, b = render_line(with_horn, path, 20), render_line(bare, path, 20)
            if a.size != b.size:
                b = b.crop((0, 0, *a.size)) if b.width >= a.width else b
                canvas = Image.new("1", a.size, 0)
                canvas.paste(b, (0, a.height - b.height))
                b = canvas
            assert dots(a, b) >= 2 * HARD_DOTS, (with_horn, dots(a, b))


def test_the_narrow_font_is_what_the_driver_uses_when_present():
    assert find_font("", SANS_NARROW)
