"""The ticket encoder: golden bytes, sizes, and each way of printing Vietnamese."""
import datetime as dt

import msgspec
import pytest

from qms.config.printer import PrinterConfig
from qms.drivers.escpos_render import render
from qms.drivers.glyphs import cell_glyph, glyph_columns
from qms.drivers.printer_status import PrinterConfigError
from qms.drivers.ticket import TicketPrint, sample_ticket, vietnamese_letters
from qms.drivers.ticket_encoder import TicketEncoder
from qms.drivers.ticket_layout import NORMAL, Text, ticket_blocks

INIT = b"\x1b@\x1b2"
LINE_STYLE = b"\x1d!\x00\x1bE\x00\x1ba\x01\x1dB\x00"      # size 1x1, bold off, centered, no invert
CUT_PART = b"\x1d!\x00\x1bE\x00\x1ba\x00\x1bd\x06\x1dV\x01"      # reset, feed 6 lines, partial cut


def encoder(**kw) -> TicketEncoder:
    return TicketEncoder(PrinterConfig(**kw))


def test_golden_ascii_job_is_plain_escpos():
    data = encoder().encode_items([Text("People ahead: 4")])
    assert data == INIT + LINE_STYLE + b"\x1bt\x00People ahead: 4\n" + CUT_PART


def test_golden_codepage_tcvn3_switches_table_per_letter_case():
    # python-escpos' TCVN-3 tables: lower case in slot 30, upper case (and Đ) in slot 31
    data = encoder(vietnamese="codepage", codepage="tcvn3").encode_items([Text("Đi ơi")])
    assert data == INIT + LINE_STYLE + b"\x1bt\x1f\xa7i \x1bt\x1e\xaci\n" + CUT_PART


def test_golden_glyph_download_framing():
    data = encoder(vietnamese="glyphs").encode_items([Text("Đi")])
    # codes the job's text does not use ('-' of the rule and 'i' taken): 0x21-0x2C, 0x2E-0x68,
    # 0x6A-0x7E; the longest run is filled first (one ESC & per run): Đ goes to '.' (0x2E)
    glyph = b"\x0c" + glyph_columns(cell_glyph("Đ"))
    assert len(glyph) == 1 + 12 * 3
    assert data == (INIT + b"\x1b&\x03\x2e\x2e" + glyph + b"\x1b%\x01"
                    + LINE_STYLE + b"\x1bt\x00.i\n" + b"\x1b%\x00" + CUT_PART)


def test_glyph_codes_never_collide_with_text_of_the_job():
    t = sample_ticket()
    data = encoder(vietnamese="glyphs").encode(t)
    r = render(data)
    user_codes = {c.code for c in r.chars if c.source == "user"}
    resident_codes = {c.code for c in r.chars if c.source == "resident"}
    assert user_codes and not (user_codes & resident_codes)


@pytest.mark.parametrize("width", [576, 384])
def test_size_targets(width):
    t = sample_ticket()
    assert len(encoder(vietnamese="glyphs", paper_width_px=width).encode(t)) <= 2048
    assert len(encoder(vietnamese="raster", paper_width_px=width).encode(t)) <= 8192


def test_native_qr_when_profile_supports_it_else_image():
    t = sample_ticket()
    native = encoder(qr="native").encode(t)
    image = encoder(qr="image").encode(t)
    assert b"\x1d(k" in native and b"\x1d(k" not in image
    assert len(image) > len(native) + 1000
    assert render(native).last_qr_data == t.qr_url


def test_codepage_mode_sends_what_the_page_cannot_carry_as_an_image():
    # CP1258 has no "ư" + hook... it has ư and the combining hook: composable. A Greek letter is not.
    enc = encoder(vietnamese="codepage", codepage="cp1258")
    data = enc.encode_items([Text("Ngưởi"), Text("α ngày")])
    r = render(data)
    assert r.images == 1
    assert "".join(c.char for c in r.chars).replace("\u00a0", "").startswith("Ngươ\u0309i")


def test_unknown_profile_and_missing_font_are_config_errors():
    with pytest.raises(PrinterConfigError, match="unknown printer profile"):
        encoder(profile="no-such-printer")
    with pytest.raises(PrinterConfigError, match="font file not found"):
        encoder(font="/nonexistent/font.ttf")
    with pytest.raises(PrinterConfigError, match="no tcvn3 code page"):
        encoder(vietnamese="codepage", profile="simple")


def test_bad_template_placeholder_is_a_config_error():
    with pytest.raises(msgspec.ValidationError, match=r"printer.texts.ahead_vi.*\{people\}"):
        msgspec.convert({"texts": {"ahead_vi": "Còn {people} người"}}, PrinterConfig)
    with pytest.raises(msgspec.ValidationError, match="layout"):
        msgspec.convert({"layout": ["center", "logo"]}, PrinterConfig)


def test_layout_is_configurable_without_code():
    cfg = msgspec.convert({"layout": ["number", "service"], "english": False,
                           "texts": {"ahead_vi": "Còn {n} người"}}, PrinterConfig)
    items = ticket_blocks(sample_ticket(), cfg)
    assert [type(i).__name__ for i in items] == ["BigNumber", "Text"]
    cfg2 = msgspec.convert({"layout": ["ahead"], "english": False,
                            "texts": {"ahead_vi": "Còn {n} người"}}, PrinterConfig)
    assert ticket_blocks(sample_ticket(people_ahead=7), cfg2) == [Text("Còn 7 người", NORMAL)]


def test_ticket_text_is_nfc_and_control_characters_cannot_become_commands():
    t = sample_ticket(service_vi="Chu\u031bng tha\u0302\u0301y\x1b@\x1dV", footer=("a\x00b",))
    assert t.service_vi.startswith("Chư")
    items = ticket_blocks(t, PrinterConfig())
    texts = [i.text for i in items if isinstance(i, Text)]
    assert all("\x1b" not in s and "\x00" not in s for s in texts)
    data = encoder().encode(t)
    assert data.count(b"\x1dV") == 1          # only our own cut


def test_offline_ticket_is_marked_and_optional_blocks_drop_out():
    t = TicketPrint(center_name="TT", point_name="Điểm", service_vi="Hộ tịch", number=2951,
                    issued_at=dt.datetime(2025, 1, 2, 7, 45), ticket_id="K1-2951", offline=True)
    texts = [i.text for i in ticket_blocks(t, PrinterConfig()) if isinstance(i, Text)]
    assert "K1-2951 *" in texts
    assert not any("Trước bạn" in s or "ƯU TIÊN" in s or "Quét" in s for s in texts)
    assert "07:45  02/01/2025" in texts


def test_big_number_fits_the_paper():
    t = sample_ticket(number=9123)
    for width in (384, 576):
        r = render(encoder(paper_width_px=width, number_scale=8).encode(t), width)
        assert r.pages and not r.unknown


def test_all_letters_have_distinct_downloaded_glyphs_with_visible_marks():
    letters = vietnamese_letters()
    assert len(letters) == 134
    bitmaps = {c: cell_glyph(c).tobytes() for c in letters}
    assert len(set(bitmaps.values())) == 134
    # each mark survives the reduction to 12 x 24 dots: differs from its bare letter
    for c in letters:
        import unicodedata
        bare = unicodedata.normalize("NFD", c)[0]
        if bare != c:
            assert bitmaps[c] != cell_glyph(bare).tobytes(), c


@pytest.mark.parametrize("printer, cause, paper, state", [
    (0x12, None, 0x12, "ready"),
    (0x12, None, 0x1E, "paper_near_end"),
    (0x12, None, 0x72, "paper_out"),
    (0x1A, 0x32, 0x72, "paper_out"),
    (0x1A, 0x16, 0x12, "cover_open"),
    (0x1A, 0x52, 0x12, "offline"),
    (0x1A, None, None, "offline"),
    (None, None, None, "unknown"),
    (0x12, None, None, "unknown"),
])
def test_status_bytes_decode(printer, cause, paper, state):
    from qms.drivers.printer_status import decode_status
    assert decode_status(printer, cause, paper).value == state


def test_garbage_is_not_a_status_byte():
    from qms.drivers.printer_status import is_status_byte
    assert is_status_byte(0x12) and is_status_byte(0x72) and is_status_byte(0x1E)
    assert not is_status_byte(0x11) and not is_status_byte(0x13) and not is_status_byte(0x00)


def test_bad_ticket_fields_are_clear_errors():
    with pytest.raises(TypeError, match="issued_at"):
        sample_ticket(issued_at="08:15")
    with pytest.raises(ValueError, match="number"):
        sample_ticket(number=-3)
