"""End to end: TicketPrinter -> python-escpos Serial -> pyserial -> pty -> simulated printer."""
import socket
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from qms.cli.main import main as qms
from qms.config.printer import PrinterConfig
from qms.drivers.escpos_env import printer as escpos_printer
from qms.drivers.escpos_render import EscposRenderer, render
from qms.drivers.printer import TicketPrinter, make_printer, open_printer, recovery_bytes
from qms.drivers.printer_sim import SimulatedPrinter
from qms.drivers.printer_status import CoverOpen, PaperOut, PrinterError, PrinterOffline, PrinterStatus
from qms.drivers.printer_transport import NetworkTransport
from qms.drivers.ticket import sample_ticket
from qms.drivers.ticket_encoder import TicketEncoder

ART = Path("artifacts/test-printer")


@pytest.fixture
def printer(tmp_path):
    p = open_printer(PrinterConfig(backend="simulated", vietnamese="glyphs", out_dir=str(tmp_path / "out"),
                                   status_timeout_ms=150, reprint_window_s=1.0))
    yield p
    p.close()


def same_picture(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


def test_ticket_goes_through_the_real_serial_class_and_comes_out_as_sent(printer):
    assert isinstance(printer.transport.esc, escpos_printer.Serial)
    assert printer.transport.esc.device.rtscts            # python-escpos alone never sets it
    assert printer.status() == PrinterStatus.READY
    ticket = sample_ticket()
    printer.print_ticket(ticket)
    sim = printer.simulator
    assert sim.wait_tickets(1)
    assert sim.saved[0].is_file()
    expected = render(printer.encoder.encode(ticket)).pages[0]
    assert same_picture(sim.tickets[0], expected)
    ART.mkdir(parents=True, exist_ok=True)
    sim.tickets[0].save(ART / "e2e-ticket.png")
    assert sim.renderer.last_qr_data == ticket.qr_url


@pytest.mark.parametrize("state, error", [(PrinterStatus.PAPER_OUT, PaperOut),
                                          (PrinterStatus.COVER_OPEN, CoverOpen),
                                          (PrinterStatus.OFFLINE, PrinterOffline)])
def test_fault_states_are_reported_and_nothing_is_counted(printer, state, error):
    sim = printer.simulator
    sim.set_state(state)
    assert printer.status() == state
    with pytest.raises(error) as e:
        printer.print_ticket(sample_ticket())
    assert e.value.status == state and "before printing" in str(e.value)
    assert sim.tickets == []
    sim.set_state(PrinterStatus.READY)                    # fixed by staff: prints again
    printer.print_ticket(sample_ticket())
    assert sim.wait_tickets(1)


def test_paper_near_end_still_prints(printer):
    printer.simulator.set_state(PrinterStatus.PAPER_NEAR_END)
    assert printer.status() == PrinterStatus.PAPER_NEAR_END
    printer.print_ticket(sample_ticket())
    assert printer.simulator.wait_tickets(1)


def test_silence_is_unknown_and_no_ticket_is_claimed(printer):
    printer.simulator.silent = True
    assert printer.status() == PrinterStatus.UNKNOWN
    with pytest.raises(PrinterOffline, match="no answer"):
        printer.print_ticket(sample_ticket())
    assert printer.simulator.tickets == []


def test_paper_running_out_inside_a_ticket_is_an_error_after_printing(printer):
    sim = printer.simulator
    sim.paper_left = 1
    printer.print_ticket(sample_ticket(number=1001))
    with pytest.raises(PaperOut, match="after printing"):
        printer.print_ticket(sample_ticket(number=1002))
    assert len(sim.tickets) == 1 and sim.lost == 1
    assert printer.status() == PrinterStatus.PAPER_OUT


def test_unplugged_printer_is_offline_and_open_can_be_retried(tmp_path):
    link = tmp_path / "ttyPRINTER"
    cfg = PrinterConfig(backend="serial", device=str(link), status_timeout_ms=150)
    p = make_printer(cfg)
    with pytest.raises(PrinterOffline, match="cannot open"):
        p.open()
    assert p.status() == PrinterStatus.OFFLINE
    with pytest.raises(PrinterOffline):
        p.print_ticket(sample_ticket())
    with SimulatedPrinter() as sim:                       # plugged in: the same object works
        link.symlink_to(sim.path)
        p.print_ticket(sample_ticket())
        assert sim.wait_tickets(1)
        sim.stop()                                        # pulled out while open
        assert p.status() == PrinterStatus.OFFLINE
    p.close()


def test_xonxoff_flow_control(tmp_path):
    with SimulatedPrinter() as sim:
        cfg = PrinterConfig(backend="serial", device=sim.path, flow_control="xonxoff",
                            vietnamese="raster", chunk_bytes=256)
        with make_printer(cfg) as p:
            p.open()
            assert p.transport.esc.device.xonxoff and not p.transport.esc.device.rtscts
            p.print_ticket(sample_ticket())
            assert sim.wait_tickets(1)
            assert sim.received >= len(p.encoder.encode(sample_ticket()))


def test_file_transport_writes_the_job_and_cannot_know_the_status(tmp_path):
    out = tmp_path / "lp0"
    cfg = PrinterConfig(backend="file", device=str(out))
    with make_printer(cfg) as p:
        p.open()
        assert p.status() == PrinterStatus.UNKNOWN
        p.print_ticket(sample_ticket())
        p.transport.close()
    # the printer is cleared and reset first: it may hold half of a job cut off earlier
    assert out.read_bytes() == recovery_bytes("realtime") + TicketEncoder(cfg).encode(sample_ticket())


class TcpPrinter:
    """A raw-TCP (port 9100 style) printer on loopback around the same interpreter."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.renderer = EscposRenderer(on_status=lambda n: b"\x12")
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            while data := conn.recv(4096):
                self.renderer.feed(data)
                for a in self.renderer.answers:
                    conn.sendall(a)
                self.renderer.answers.clear()


def test_network_printer():
    tcp = TcpPrinter()
    p = TicketPrinter(TicketEncoder(PrinterConfig()), NetworkTransport("127.0.0.1", tcp.port))
    p.open()
    assert p.status() == PrinterStatus.READY
    p.print_ticket(sample_ticket())
    p.close()
    tcp.server.close()
    assert len(tcp.renderer.pages) == 1


def test_bad_backend_settings_are_clear_errors():
    with pytest.raises(PrinterError, match="printer.host"):
        make_printer(PrinterConfig(backend="network"))
    with pytest.raises(PrinterError, match="(pyusb|usb_vendor)"):
        make_printer(PrinterConfig(backend="usb"))


# -- the CLI ---------------------------------------------------------------------
def site_config(tmp_path, printer_toml: str) -> Path:
    text = Path("config/ward-example.toml").read_text(encoding="utf-8")
    text = text.replace('state_dir = "../var"', f'state_dir = "{tmp_path / "var"}"')
    path = tmp_path / "site.toml"
    path.write_text(text + "\n[printer]\n" + printer_toml, encoding="utf-8")
    return path


def test_cli_preview_selftest_status(tmp_path, capsys):
    cfg = site_config(tmp_path, 'backend = "simulated"\nvietnamese = "glyphs"\npaper_width_px = 384\n')
    png = tmp_path / "preview.png"
    assert qms(["printer", "preview", "-c", str(cfg), "-o", str(png), "--all-letters"]) == 0
    assert Image.open(png).width == 384 + 24
    assert qms(["printer", "status", "-c", str(cfg)]) == 0
    assert "ready" in capsys.readouterr().out
    assert qms(["printer", "selftest", "-c", str(cfg), "--modes", "glyphs", "raster"]) == 0
    saved = sorted((tmp_path / "var" / "tickets").glob("*.png"))
    assert len(saved) == 2


def test_cli_reports_bad_printer_config(tmp_path, capsys):
    cfg = site_config(tmp_path, 'profile = "no-such-model"\n')
    assert qms(["printer", "preview", "-c", str(cfg), "-o", str(tmp_path / "x.png")]) == 2
    assert "unknown printer profile" in capsys.readouterr().err
    cfg = site_config(tmp_path, 'vietnamese = "klingon"\n')
    assert qms(["printer", "status", "-c", str(cfg)]) == 2
    assert "printer.vietnamese" in capsys.readouterr().err


def test_cli_preview_and_selftest_without_a_cut(tmp_path, capsys):
    """cut = "none" (a printer without cutter): no IndexError, and selftest says "printed"
    only for what the simulated printer put out (torn off by hand)."""
    cfg = site_config(tmp_path, 'backend = "simulated"\nvietnamese = "glyphs"\ncut = "none"\n')
    png = tmp_path / "preview.png"
    assert qms(["printer", "preview", "-c", str(cfg), "-o", str(png)]) == 0
    assert Image.open(png).height > 400                     # the ticket, not an empty page
    assert qms(["printer", "selftest", "-c", str(cfg), "--preview", "-o", str(tmp_path / "st"),
                "--modes", "glyphs"]) == 0
    assert Image.open(tmp_path / "st" / "selftest-glyphs.png").height > 400
    assert qms(["printer", "selftest", "-c", str(cfg), "--modes", "glyphs", "raster"]) == 0
    assert "glyphs: printed" in capsys.readouterr().out
    assert len(sorted((tmp_path / "var" / "tickets").glob("*.png"))) == 2
