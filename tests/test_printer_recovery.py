"""Jobs cut off in the middle, through the real serial path (python-escpos -> pyserial -> pty
-> simulated printer): each case ends with a ticket identical to what was sent (marked
"IN LẠI / REPRINT" when printed again) or with a reported failure, never a garbled one."""
import threading
import time

import pytest
import serial
from PIL import Image, ImageChops

from qms.config.printer import PrinterConfig
from qms.drivers.escpos_render import render
from qms.drivers.printer import make_printer
from qms.drivers.printer_sim import SimulatedPrinter
from qms.drivers.printer_status import CoverOpen, PrinterOffline, PrinterStatus
from qms.drivers.ticket import sample_ticket
from qms.kiosk.printing import DriverPrinter
from qms.kiosk.printing import PrinterError as KioskPrinterError


def same_picture(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


def expected(printer, ticket) -> Image.Image:
    return render(printer.encoder.encode(ticket), printer.encoder.cfg.paper_width_px).pages[0]


@pytest.fixture(params=["glyphs", "raster"])
def rig(request, tmp_path):
    """A simulated printer on a stable port name, and a printer driver on that name."""
    link = tmp_path / "ttyPRINTER"
    sim = SimulatedPrinter(link=link).start()
    cfg = PrinterConfig(backend="serial", device=str(link), vietnamese=request.param, status_timeout_ms=150,
                        reprint_window_s=4.0, write_timeout_ms=500)
    printer = make_printer(cfg)
    printer.open()
    yield sim, printer
    printer.close()
    sim.stop()


def call_later(seconds: float, fn) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(seconds), fn()), daemon=True)
    t.start()
    return t


def check_good_tickets(sim, printer, *tickets) -> None:
    """Every ticket that came out is exactly one of `tickets`, in order."""
    assert len(sim.tickets) == len(tickets)
    for got, want in zip(sim.tickets, tickets, strict=True):
        assert same_picture(got, expected(printer, want))


def test_without_recovery_a_cut_off_job_garbles_the_next_one(tmp_path):
    """The fault the driver must handle, shown on the simulated printer: half a job, then a
    whole one, and the whole one does not come out as sent."""
    with SimulatedPrinter() as sim:
        printer = make_printer(PrinterConfig(backend="serial", device=sim.path, vietnamese="glyphs"))
        printer.open()
        job = printer.encoder.encode(sample_ticket())
        printer.transport.write(job[:len(job) // 3])
        printer.transport.write(job)
        printer.transport.write(b"\x1dr\x01")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (sim.tickets or sim.waste or sim.renderer.pages):
            time.sleep(0.01)
        page = sim.renderer.pages[-1] if sim.renderer.pages else sim.renderer.page()
        assert not same_picture(page, expected(printer, sample_ticket()))
        printer.close()


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_cable_pulled_mid_job_and_plugged_back_prints_the_ticket_again(rig, where):
    sim, printer = rig
    first = sample_ticket(number=1001)
    printer.print_ticket(first)
    ticket = sample_ticket(number=1002)
    sim.cut_link_after(int(len(printer.encoder.encode(ticket)) * where))
    call_later(0.8, sim.replug)
    assert printer.print_ticket(ticket) is True            # True: printed again
    reprint = sample_ticket(number=1002, reprint=True)
    check_good_tickets(sim, printer, first, reprint)
    assert len(sim.waste) == 1                             # the torn top, cut away
    printer.print_ticket(sample_ticket(number=1003))       # and the next one is clean
    check_good_tickets(sim, printer, first, reprint, sample_ticket(number=1003))


def test_cable_pulled_for_good_is_a_failure_then_the_printer_recovers(rig):
    sim, printer = rig
    ticket = sample_ticket(number=1002)
    sim.cut_link_after(len(printer.encoder.encode(ticket)) // 2)
    started = time.monotonic()
    with pytest.raises(PrinterOffline):
        printer.print_ticket(ticket)
    assert time.monotonic() - started < printer.reprint_window_s + 3
    assert sim.tickets == []
    sim.replug()                                           # later: staff plugs it back
    printer.print_ticket(sample_ticket(number=1003))
    check_good_tickets(sim, printer, sample_ticket(number=1003))


@pytest.mark.parametrize("fault", [PrinterStatus.PAPER_OUT, PrinterStatus.COVER_OPEN])
def test_paper_out_or_cover_open_mid_job_then_fixed_reprints(rig, fault):
    sim, printer = rig
    ticket = sample_ticket(number=1002)
    sim.fault_after(len(printer.encoder.encode(ticket)) // 2, fault)
    call_later(1.0, lambda: sim.set_state(PrinterStatus.READY))
    assert printer.print_ticket(ticket) is True
    check_good_tickets(sim, printer, sample_ticket(number=1002, reprint=True))


def test_cover_left_open_mid_job_is_a_reported_failure(rig):
    sim, printer = rig
    ticket = sample_ticket(number=1002)
    sim.fault_after(len(printer.encoder.encode(ticket)) // 2, PrinterStatus.COVER_OPEN)
    with pytest.raises(CoverOpen):
        printer.print_ticket(ticket)
    assert sim.tickets == []
    sim.set_state(PrinterStatus.READY)
    printer.print_ticket(sample_ticket(number=1003))
    check_good_tickets(sim, printer, sample_ticket(number=1003))


def test_a_silent_printer_is_a_failure_and_nothing_is_claimed(rig):
    sim, printer = rig
    sim.silent = True
    with pytest.raises(PrinterOffline, match="no answer"):
        printer.print_ticket(sample_ticket(number=1002))
    assert sim.tickets == []
    sim.silent = False
    printer.print_ticket(sample_ticket(number=1003))
    check_good_tickets(sim, printer, sample_ticket(number=1003))


def test_cts_low_fails_in_bounded_time_and_never_blocks_the_kiosk_status(rig):
    sim, printer = rig
    kiosk = DriverPrinter(printer, poll_s=0.1)
    kiosk.print_ticket(_kiosk_ticket(1001))
    with printer._lock:                                    # a job or query holds the link...
        asked = threading.Thread(target=kiosk.status, daemon=True)
        asked.start()
        asked.join(5)                                      # (waited for only if it hangs)
        assert not asked.is_alive()                        # ...and the kiosk status still answers
    sim.hold()                                             # the printer takes nothing
    done = threading.Event()
    errors = []

    def job():
        try:
            kiosk.print_ticket(_kiosk_ticket(1002))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        done.set()
    threading.Thread(target=job, daemon=True).start()
    while not done.wait(0.02):                             # the UI thread asks all along
        kiosk.status()
    assert errors and isinstance(errors[0], KioskPrinterError)
    assert len(sim.tickets) == 1
    sim.release()
    kiosk.print_ticket(_kiosk_ticket(1003))
    assert len(sim.tickets) == 2
    kiosk.close()


def test_cts_low_released_within_the_window_reprints(rig):
    """Before a job: it waits for the printer (no paper used, no reprint mark)."""
    sim, printer = rig
    printer.print_ticket(sample_ticket(number=1001))
    sim.hold()
    call_later(1.5, sim.release)
    assert printer.print_ticket(sample_ticket(number=1002)) is False
    check_good_tickets(sim, printer, sample_ticket(number=1001), sample_ticket(number=1002))


def test_pad_recovery_for_printers_without_real_time_commands(tmp_path):
    link = tmp_path / "ttyPRINTER"
    with SimulatedPrinter(link=link) as sim:
        cfg = PrinterConfig(backend="serial", device=str(link), vietnamese="raster", status_timeout_ms=150,
                            recovery="pad", reprint_window_s=4.0)
        with make_printer(cfg) as printer:
            printer.print_ticket(sample_ticket(number=1001))
            ticket = sample_ticket(number=1002)
            sim.cut_link_after(len(printer.encoder.encode(ticket)) // 2)
            call_later(0.5, sim.replug)
            assert printer.print_ticket(ticket) is True
            assert sim.renderer.clears == 0                # no real-time command was used
            check_good_tickets(sim, printer, sample_ticket(number=1001), sample_ticket(number=1002, reprint=True))


def test_dsr_flow_control_waits_for_the_printer_and_gives_up_in_time(rig, monkeypatch):
    """A pty has no modem lines: the simulated printer's DSR is given to pyserial here."""
    sim, printer = rig
    dsr = {"high": False}
    monkeypatch.setattr(serial.Serial, "dsr", property(lambda self: dsr["high"]))
    monkeypatch.setattr(serial.Serial, "_update_dtr_state", lambda self: None)
    printer.transport.flow_control = "dsrdtr"
    started = time.monotonic()
    with pytest.raises(PrinterOffline):
        printer.print_job(printer.encoder.encode(sample_ticket()))
    assert time.monotonic() - started < 3
    assert sim.tickets == []
    dsr["high"] = True
    printer.print_ticket(sample_ticket(number=1003))
    check_good_tickets(sim, printer, sample_ticket(number=1003))


def _kiosk_ticket(number: int):
    import datetime as dt

    from qms.kiosk.printing import PrintedTicket
    return PrintedTicket(ticket_id="01JNQ8Z5K3M2", number=number, service="chung-thuc", center="Trung tâm",
                         site_name="Điểm chính", service_vi="Chứng thực", service_en="Certification",
                         issued_at=1741137300000, tz=dt.timezone(dt.timedelta(hours=7)))
