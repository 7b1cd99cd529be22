"""What the kiosk needs from a ticket printer, and what the citizen is told when it fails.

The kiosk depends only on `KioskPrinter`: `print_ticket(PrintedTicket)` (raises a
`PrinterError` when the ticket did not come out) and `status()` (a `PrinterStatus`
value: ready, paper_near_end, paper_out, cover_open, offline, unknown).

- `DriverPrinter`: the real driver (drivers/printer.py: ESC/POS over serial, USB,
  network or file, Vietnamese rendering, DLE EOT status, or its simulated printer behind
  a pty that saves PNG tickets), as configured in `[printer]`.
- `MemoryPrinter`: keeps tickets in memory, for screen tests and `--printer memory`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from pathlib import Path
from typing import Protocol

from qms.drivers import printer_status as ps


class PrinterError(Exception):
    """The ticket did not come out. `message_vi`/`message_en` are shown to the citizen."""
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

    def local_time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.issued_at / 1000, self.tz)


class KioskPrinter(Protocol):
    def print_ticket(self, ticket: PrintedTicket) -> None: ...
    def status(self) -> str: ...
    def close(self) -> None: ...


class DriverPrinter:
    """The printer driver behind the kiosk's interface."""

    def __init__(self, driver):
        self.driver = driver             # qms.drivers.printer.TicketPrinter

    def status(self) -> str:
        return self.driver.status().value

    def print_ticket(self, ticket: PrintedTicket) -> None:
        from qms.drivers.ticket import TicketPrint
        job = TicketPrint(
            center_name=ticket.center, point_name=ticket.site_name, service_vi=ticket.service_vi,
            service_en=ticket.service_en, number=ticket.number, issued_at=ticket.local_time().replace(tzinfo=None),
            ticket_id=ticket.ticket_id, priority_label=ticket.priority_vi or None,
            people_ahead=ticket.people_ahead, est_wait_minutes=round(ticket.est_wait_s / 60) or None,
            qr_url=ticket.qr, offline=ticket.offline)
        try:
            self.driver.print_ticket(job)
        except ps.PrinterError as e:
            raise ERRORS_BY_STATUS.get(e.status.value, PrinterError)(str(e)) from e

    def close(self) -> None:
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
