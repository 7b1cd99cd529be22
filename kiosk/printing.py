"""What the kiosk needs from a ticket printer, and the backends it can use.

The kiosk depends only on `TicketPrinter`: `print_ticket(ticket)` (raises a
`PrinterError` when the ticket did not come out) and `status()`. The full driver
(drivers/, Vietnamese rendering, status queries) is built on the printer branch; until
it is on main the kiosk ships two small backends:

- `SimulatedPrinter`: keeps tickets in memory and writes each as a text file; a test or
  the demo can make it run out of paper.
- `EscposPrinter`: python-escpos over a serial port (or a pty), text folded to ASCII
  (printer code pages mangle Vietnamese; the real driver prints it as strips) plus the
  number in double size and a native QR code.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
import unicodedata
from pathlib import Path
from typing import Protocol


class PrinterError(Exception):
    """The ticket did not come out. `message_vi`/`message_en` are shown to the citizen."""
    code = "printer_error"
    message_vi = "Máy in đang gặp sự cố, vui lòng liên hệ cán bộ hướng dẫn."
    message_en = "The printer has a problem. Please ask a staff member for help."


class PaperOut(PrinterError):
    code = "paper_out"
    message_vi = "Máy in hết giấy, vui lòng liên hệ cán bộ hướng dẫn."
    message_en = "The printer is out of paper. Please ask a staff member for help."


class PrinterOffline(PrinterError):
    code = "printer_offline"
    message_vi = "Máy in chưa sẵn sàng, vui lòng liên hệ cán bộ hướng dẫn."
    message_en = "The printer is not ready. Please ask a staff member for help."


ERRORS_BY_STATUS = {"paper_out": PaperOut, "offline": PrinterOffline, "error": PrinterError}


@dataclasses.dataclass(slots=True)
class PrintedTicket:
    """Everything a ticket shows. No personal data."""
    ticket_id: str
    number: int
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


class TicketPrinter(Protocol):
    def print_ticket(self, ticket: PrintedTicket) -> None: ...
    def status(self) -> str: ...        # "ok" | "paper_near_end" | "paper_out" | "offline" | "unknown"
    def close(self) -> None: ...


def can_print(status: str) -> bool:
    return status not in ERRORS_BY_STATUS


def ticket_lines(t: PrintedTicket) -> list[str]:
    """The ticket's text, top to bottom (the number is printed large between header and body)."""
    at = t.local_time()
    lines = [t.center, t.site_name, "SỐ THỨ TỰ", str(t.number), t.service_vi]
    if t.priority_vi:
        lines.append(f"Ưu tiên: {t.priority_vi}")
    lines.append(f"Số người chờ trước bạn: {t.people_ahead}")
    lines.append(f"{at:%H:%M} ngày {at:%d/%m/%Y} — chỉ có giá trị trong ngày")
    lines.append("Cảm ơn quý khách!")
    return lines


class SimulatedPrinter:
    """A printer in memory; each ticket is also written to `out_dir` as text."""

    def __init__(self, out_dir: str | Path | None = None, paper: int | None = None):
        self.out_dir = Path(out_dir) if out_dir else None
        self.paper = paper                  # tickets left; None = endless roll
        self.printed: list[PrintedTicket] = []
        self.state = "ok"
        self.lock = threading.Lock()
        self.first_byte_at: list[float] = []   # perf_counter of each ticket's first byte

    def status(self) -> str:
        if self.state == "ok" and self.paper is not None and self.paper <= 0:
            return "paper_out"
        return self.state

    def print_ticket(self, ticket: PrintedTicket) -> None:
        import time
        with self.lock:
            err = ERRORS_BY_STATUS.get(self.status())
            if err:
                raise err()
            self.first_byte_at.append(time.perf_counter())
            self.printed.append(ticket)
            if self.paper is not None:
                self.paper -= 1
            if self.out_dir:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                name = f"{ticket.local_time():%Y%m%d-%H%M%S}-{ticket.number}-{ticket.ticket_id[:8]}.txt"
                (self.out_dir / name).write_text("\n".join(ticket_lines(ticket)) + "\n", encoding="utf-8")

    def close(self) -> None:
        pass


def ascii_fold(text: str) -> str:
    """'Số thứ tự' -> 'So thu tu': readable on any code page."""
    text = text.replace("Đ", "D").replace("đ", "d").replace("—", "-")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


class EscposPrinter:
    """python-escpos over a serial device (a real port or a pty in tests)."""

    def __init__(self, devfile: str, baudrate: int = 115200, profile: str = "TM-T88V"):
        cache = os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR")
        if cache:       # escpos writes its parsed capabilities there, and fails if it is missing
            Path(cache).mkdir(parents=True, exist_ok=True)
        from escpos.printer import Serial
        self.devfile = devfile
        self.p = Serial(devfile=devfile, baudrate=baudrate, timeout=0.2, profile=profile)
        self._state = "ok"

    def status(self) -> str:
        return self._state

    def print_ticket(self, ticket: PrintedTicket) -> None:
        lines = [ascii_fold(s) for s in ticket_lines(ticket)]
        header, number, body = lines[:3], lines[3], lines[4:]
        p = self.p
        try:
            p.set(align="center")
            for s in header:
                p.text(s + "\n")
            p.set(align="center", double_width=True, double_height=True, bold=True)
            p.text(number + "\n")
            p.set(align="center")
            for s in body:
                p.text(s + "\n")
            if ticket.qr:
                p.qr(ticket.qr, native=True, size=6)
            p.cut()
        except Exception as e:  # noqa: BLE001 - serial faults come in many types
            self._state = "offline"
            raise PrinterOffline(str(e)) from e
        self._state = "ok"

    def close(self) -> None:
        try:
            self.p.close()
        except Exception:  # noqa: BLE001
            pass


def make_printer(backend: str, out_dir: Path) -> TicketPrinter:
    """`simulated` | `serial:/dev/ttyUSB0` (also a pty path)."""
    if backend == "simulated":
        return SimulatedPrinter(out_dir)
    if backend.startswith("serial:"):
        return EscposPrinter(backend.split(":", 1)[1])
    raise ValueError(f"unknown printer backend {backend!r} (use simulated or serial:/dev/...)")
