"""What the kiosk needs from a ticket printer, and what the citizen is told when it fails.

The kiosk depends only on `KioskPrinter`: `print_ticket(PrintedTicket)` (raises a
`PrinterError` when the ticket did not come out) and `status()` (a `PrinterStatus`
value: ready, paper_near_end, paper_out, cover_open, offline, unknown).

- `DriverPrinter`: the real driver (drivers/printer.py: ESC/POS over serial, USB,
  network or file, Vietnamese rendering, DLE EOT status, or its simulated printer behind
  a pty that saves PNG tickets), as configured in `[printer]`. Its status is polled on a
  thread of its own: `status()` never touches the printer and never blocks (the kiosk
  asks it on its UI thread); `print_ticket` runs on the kiosk's printer thread.
- `MemoryPrinter`: keeps tickets in memory, for screen tests and `--printer memory`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from pathlib import Path
from typing import Protocol

from qms.drivers import printer_status as ps

log = logging.getLogger("qms.kiosk.printing")


class PrinterError(Exception):
    """The ticket did not come out. `message_vi`/`message_en` are shown to the citizen:
    before a number is issued (the class's wording), or, raised by `print_ticket`, with
    the issued number on screen (`NOT_PRINTED_VI`: what to do with it)."""
    status = "unknown"
    message_vi = "Máy in đang gặp sự cố, vui lòng liên hệ cán bộ hướng dẫn."
    message_en = "The printer has a problem. Please ask a staff member for help."


class PaperOut(PrinterError):
    status = "paper_out"
    message_vi = "Máy in hết giấy, vui lòng liên hệ cán bộ hướng dẫn."
    message_en = "The printer is out of paper. Please ask a staff member for help."


class CoverOpen(PrinterError):
    status = "cover_open"
    message_vi = "Nắp máy in đang mở, vui lòng liên hệ cán bộ hướng dẫn."
    message_en = "The printer cover is open. Please ask a staff member for help."


class PrinterOffline(PrinterError):
    status = "offline"
    message_vi = "Máy in chưa sẵn sàng, vui lòng liên hệ cán bộ hướng dẫn."
    message_en = "The printer is not ready. Please ask a staff member for help."


# an issued ticket that did not print: the number stays on screen and is valid
NOT_PRINTED_VI = ("{problem} nên vé chưa in được. Số của bạn vẫn có hiệu lực: vui lòng ghi nhớ số "
                  "trên màn hình và báo cán bộ hướng dẫn.")
NOT_PRINTED_EN = ("{problem}, so your ticket was not printed. Your number is valid: please note the "
                  "number on screen and tell a staff member.")
_PROBLEM = {"paper_out": ("Máy in hết giấy", "The printer is out of paper"),
            "cover_open": ("Nắp máy in đang mở", "The printer cover is open"),
            "offline": ("Máy in không hoạt động", "The printer is not working"),
            "unknown": ("Máy in gặp sự cố", "The printer has a problem")}


def not_printed(err: PrinterError) -> PrinterError:
    """`err` worded for a citizen who has a number but no paper."""
    vi, en = _PROBLEM.get(err.status, _PROBLEM["unknown"])
    err.message_vi, err.message_en = NOT_PRINTED_VI.format(problem=vi), NOT_PRINTED_EN.format(problem=en)
    return err


ERRORS_BY_STATUS: dict[str, type[PrinterError]] = {e.status: e for e in (PaperOut, CoverOpen, PrinterOffline)}


def can_print(status: str) -> bool:
    """Worth trying: a write-only link (file, no status) answers "unknown" and still prints."""
    return status not in ERRORS_BY_STATUS


@dataclasses.dataclass(slots=True)
class PrintedTicket:
    """A ticket as the kiosk shows and prints it. No personal data."""
    ticket_id: str
    number: int
    service: str
    center: str
    site_name: str
    service_vi: str
    service_en: str
    issued_at: int                      # Unix ms
    tz: dt.tzinfo
    people_ahead: int = 0
    est_wait_s: int = 0
    priority_vi: str = ""
    qr: str = ""
    offline: bool = False
    # why a long wait, when every counter serving it is away (qms.core.wait_text.away_phrase)
    away_vi: str = ""
    away_en: str = ""

    def local_time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.issued_at / 1000, self.tz)


class KioskPrinter(Protocol):
    def print_ticket(self, ticket: PrintedTicket) -> None: ...
    def status(self) -> str: ...
    def close(self) -> None: ...


class DriverPrinter:
    """The printer driver behind the kiosk's interface."""

    def __init__(self, driver, poll_s: float = 2.0):
        self.driver = driver             # qms.drivers.printer.TicketPrinter
        self.poll_s = poll_s
        self.reprinted = 0               # tickets printed again after a cut-off first try
        self._status = "unknown"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._poll()                     # the first answer before the kiosk's first screen
        self._poller = threading.Thread(target=self._poll_loop, name="printer-status", daemon=True)
        self._poller.start()

    def status(self) -> str:
        """The last known state; never blocks (the printer is asked on another thread)."""
        return self._status

    def refresh(self) -> None:
        """Ask the printer again soon (after staff fixed it, say)."""
        self._wake.set()

    def _poll(self) -> None:
        try:
            self._status = self.driver.status().value
        except Exception:  # noqa: BLE001 - a poller that dies would freeze the status shown
            log.exception("printer status failed")
            self._status = "unknown"

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if not self._stop.is_set():
                self._poll()

    def print_ticket(self, ticket: PrintedTicket) -> None:
        from qms.drivers.ticket import TicketPrint
        job = TicketPrint(
            center_name=ticket.center, point_name=ticket.site_name, service_vi=ticket.service_vi,
            service_en=ticket.service_en, number=ticket.number, issued_at=ticket.local_time().replace(tzinfo=None),
            ticket_id=ticket.ticket_id, priority_label=ticket.priority_vi or None,
            people_ahead=ticket.people_ahead, est_wait_minutes=round(ticket.est_wait_s / 60) or None,
            qr_url=ticket.qr, offline=ticket.offline,
            wait_note_vi=ticket.away_vi or None, wait_note_en=ticket.away_en or None)
        try:
            if self.driver.print_ticket(job):
                self.reprinted += 1
        except ps.PrinterError as e:
            raise not_printed(ERRORS_BY_STATUS.get(e.status.value, PrinterError)(str(e))) from e
        finally:
            self._status = self.driver.last_status.value
            self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._poller.join(timeout=5)
        self.driver.close()


class MemoryPrinter:
    """A printer in memory; a test can run it out of paper (`state` or `paper`)."""

    def __init__(self, paper: int | None = None):
        self.paper = paper                  # tickets left; None = endless roll
        self.printed: list[PrintedTicket] = []
        self.state = "ready"
        self.lock = threading.Lock()
        self.first_byte_at: list[float] = []

    def status(self) -> str:
        if self.state == "ready" and self.paper is not None and self.paper <= 0:
            return "paper_out"
        return self.state

    def print_ticket(self, ticket: PrintedTicket) -> None:
        with self.lock:
            err = ERRORS_BY_STATUS.get(self.status())
            if err:
                raise err()
            self.first_byte_at.append(time.perf_counter())
            self.printed.append(ticket)
            if self.paper is not None:
                self.paper -= 1

    def close(self) -> None:
        pass


def make_printer(printer_cfg, state_dir: Path, memory: bool = False) -> KioskPrinter:
    """As configured in `[printer]` (opened; an absent printer is retried on each ticket)."""
    if memory:
        return MemoryPrinter()
    from qms.drivers.printer import open_printer
    return DriverPrinter(open_printer(printer_cfg, state_dir))
