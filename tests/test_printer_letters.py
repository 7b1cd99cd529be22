"""Every Vietnamese letter form comes out, in every mode: none missing, none turned into '?'.

The tickets are rendered from the real ESC/POS bytes by the printer emulator and saved
under artifacts/test-printer/ to be looked at.
"""
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from qms.cli.printer import letter_lines
from qms.config.printer import PrinterConfig
from qms.drivers.escpos_render import render
from qms.drivers.glyphs import SANS, SANS_BOLD, cell_glyph, find_font, line_font_px, render_line
from qms.drivers.ticket import sample_ticket, vietnamese_letters
from qms.drivers.ticket_encoder import TicketEncoder

ART = Path("artifacts/test-printer")
LETTERS = vietnamese_letters()


def letters_ticket():
    return sample_ticket(footer=tuple(letter_lines()))


def rendered(cfg: PrinterConfig, name: str):
    data = TicketEncoder(cfg).encode(letters_ticket())
    r = render(data, cfg.paper_width_px, cfg.profile)
    ART.mkdir(parents=True, exist_ok=True)
    assert len(r.pages) == 1
    r.pages[0].save(ART / f"letters-{name}.png")
    assert not r.unknown, r.unknown
    assert not [c for c in r.chars if c.source == "missing"]
    # the ticket has no '?': a resident one is a letter the printer could not print
    assert not [c for c in r.chars if c.source == "resident" and c.char == "?"]
    return r


def test_letter_lines_hold_all_134_forms_in_nfc():
    text = "".join(letter_lines())
    assert set(LETTERS) <= set(text)
    assert len(LETTERS) == len(set(LETTERS)) == 134


@pytest.mark.parametrize("path", [find_font("", SANS), find_font("", SANS_BOLD)])
def test_font_has_every_letter(path):
    font = ImageFont.truetype(path, 22)

    def drawn(c):
        img = Image.new("L", (40, 40), 0)
        ImageDraw.Draw(img).text((5, 30), c, font=font, fill=255, anchor="ls")
        return img.tobytes()

    notdef = drawn("\ue000")                  # what the font draws for a letter it lacks
    assert not [c for c in LETTERS if drawn(c) == notdef]


@pytest.mark.parametrize("width", [576, 384])
def test_glyph_mode_prints_every_letter_with_its_own_shape(width):
    r = rendered(PrinterConfig(vietnamese="glyphs", paper_width_px=width), f"glyphs-{width}")
    cells = r.chars

    def same(cell, letter):
        if cell.source == "user":
            return cell.bitmap.tobytes() == cell_glyph(letter).tobytes()
        return cell.char == letter

    for line in letter_lines():
        n = len(line)
        assert any(all(same(cells[i + k], line[k]) for k in range(n))
                   for i in range(len(cells) - n + 1)), f"not printed as sent: {line}"
    downloaded = {c.bitmap.tobytes() for c in cells if c.source == "user"}
    assert len(downloaded) >= 134


@pytest.mark.parametrize("width", [576, 384])
def test_raster_mode_prints_every_letter_line_as_an_image(width):
    r = rendered(PrinterConfig(vietnamese="raster", paper_width_px=width), f"raster-{width}")
    received = {(img.size, img.tobytes()) for img in r.image_log}
    font = find_font("", SANS)
    for line in letter_lines():
        expected = render_line(line, font, line_font_px(1))
        padded = expected.crop((0, 0, (expected.width + 7) // 8 * 8, expected.height))
        assert (padded.size, padded.tobytes()) in received, line


@pytest.mark.parametrize("codepage", ["tcvn3", "cp1258"])
def test_codepage_mode_carries_every_letter(codepage):
    r = rendered(PrinterConfig(vietnamese="codepage", codepage=codepage), f"codepage-{codepage}")
    printed = "".join(c.char for c in r.chars).replace("\u00a0", "")
    if codepage == "tcvn3":
        for line in letter_lines():
            assert line in printed
    else:   # CP1258 sends tone marks as separate characters: the NFC text must come back
        import unicodedata
        assert all(unicodedata.normalize("NFC", line) in unicodedata.normalize("NFC", printed)
                   for line in letter_lines())
    assert r.images == 1             # only the QR code: no line needed an image
