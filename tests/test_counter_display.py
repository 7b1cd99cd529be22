"""The counter number display: board framings, the serial backend through a real pty, the
simulated board rendered to PNG."""
from __future__ import annotations

import os
import pty
import termios
import tty

from PIL import Image

from qms.config.counter import NumberDisplayConfig
from qms.counter.board_protocols import alpha_frame, fit, parse_qms_ascii, qms_ascii_frame
from qms.counter.number_display import SerialNumberDisplay, SimulatedNumberDisplay, open_number_display


def test_fit_right_aligns_and_cleans():
    assert fit("1005", 4) == "1005"
    assert fit("--", 4) == "  --"
    assert fit("l-3", 4) == " L-3"
    assert fit("12345", 4) == "2345"
    assert fit("Số", 4) == "  S "            # nothing a board cannot show is sent


def test_qms_ascii_frame_bytes_and_round_trip():
    f = qms_ascii_frame(2, "1005", 4, blink=False)
    assert f == b"\x0202D1005\x03" + f[-2:]
    body = f[1:-2]
    x = 0
    for b in body:
        x ^= b
    assert f[-2:] == f"{x:02X}".encode()
    assert parse_qms_ascii(f) == (2, "1005", False)
    assert parse_qms_ascii(qms_ascii_frame(0, "--", 4, blink=True)) == (0, "  --", True)


def test_qms_ascii_parser_rejects_a_damaged_frame():
    f = bytearray(qms_ascii_frame(7, "2001", 4, blink=False))
    f[5] ^= 0x01
    try:
        parse_qms_ascii(bytes(f))
    except ValueError as e:
        assert "checksum" in str(e)
    else:
        raise AssertionError("a damaged frame was accepted")


def test_alpha_frame_is_a_write_text_command():
    f = alpha_frame(2, "1005", 4, blink=True)
    assert f == b"\x00" * 5 + b"\x01Z02\x02AA\x1b c1005\x04"
    assert alpha_frame(0, "--", 4, blink=False).endswith(b"\x1b b  --\x04")


def _pty_pair():
    master, slave = pty.openpty()
    tty.setraw(master)
    attrs = termios.tcgetattr(slave)
    tty.setraw(slave)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    return master, slave


def _read_all(fd: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        out += os.read(fd, n - len(out))
    return out


def test_serial_display_writes_frames_through_real_pyserial():
    master, slave = _pty_pair()
    try:
        cfg = NumberDisplayConfig(kind="serial", port=os.ttyname(slave), protocol="qms-ascii")
        d = open_number_display(cfg, counter=3)
        assert isinstance(d, SerialNumberDisplay) and d.address == 3
        assert d.show("1042") and d.show("1042", blink=True) and d.show("--")
        frames = [_read_all(master, 11) for _ in range(3)]
        assert [parse_qms_ascii(f) for f in frames] == [
            (3, "1042", False), (3, "1042", True), (3, "  --", False)]
        d.close()
    finally:
        os.close(master)
        os.close(slave)


def test_serial_display_without_a_board_reports_and_never_raises(tmp_path):
    cfg = NumberDisplayConfig(kind="serial", port=str(tmp_path / "ttyNOPE"), address=9)
    d = open_number_display(cfg, counter=3)
    assert d.show("1001") is False and d.show("1002") is False
    assert d.errors == 2 and d.last == ("1002", False)


def _lit(img) -> int:
    """Pixels of lit segments."""
    return dict((c, n) for n, c in img.convert("RGB").getcolors(1 << 16)).get((255, 40, 30), 0)


def test_simulated_display_renders_png(artifacts):
    cfg = NumberDisplayConfig()
    d = SimulatedNumberDisplay(cfg, caption="QUẦY 2", png=artifacts / "counter-display-1005.png")
    d.show("1005")
    img = Image.open(artifacts / "counter-display-1005.png")
    assert img.size == (4 * 114 + 24, 160 + 48 + 70)
    lit = _lit(img)
    assert lit > 10_000                                   # segments are drawn
    d.render("--").save(artifacts / "counter-display-idle.png")
    d.render("1005", blink=True).save(artifacts / "counter-display-recall-blink.png")
    idle_lit = _lit(d.render("--"))
    assert 0 < idle_lit < lit / 4                         # two dashes only
    assert d.frames == [("1005", False)]
