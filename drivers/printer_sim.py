"""A simulated ESC/POS printer behind a pseudo-terminal.

The real code path drives it: python-escpos' `Serial` over pyserial opens the pty's
device file like a USB-serial adapter. The printer interprets what it receives
(`EscposRenderer`), answers DLE EOT status requests, can be put into any fault state,
and saves each cut ticket as a PNG.

A ticket sent while the printer cannot print is swallowed, as a real one would, and
never saved: it did not come out.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import tty
from pathlib import Path

from PIL import Image

from qms.drivers.escpos_render import EscposRenderer
from qms.drivers.printer_status import PrinterStatus

log = logging.getLogger(__name__)

# answers to DLE EOT 1 (printer), 2 (offline cause), 4 (paper sensor) for each state
_ANSWERS = {
    PrinterStatus.READY: {1: 0x12, 2: 0x12, 4: 0x12},
    PrinterStatus.PAPER_NEAR_END: {1: 0x12, 2: 0x12, 4: 0x1E},
    PrinterStatus.PAPER_OUT: {1: 0x1A, 2: 0x32, 4: 0x72},
    PrinterStatus.COVER_OPEN: {1: 0x1A, 2: 0x16, 4: 0x12},
    PrinterStatus.OFFLINE: {1: 0x1A, 2: 0x52, 4: 0x12},
}


class SimulatedPrinter:
    def __init__(self, paper_width_px: int = 576, profile: str = "default",
                 out_dir: str | Path | None = None):
        self.renderer = EscposRenderer(paper_width_px, profile, on_status=self._answer, on_cut=self._cut)
        self.out_dir = Path(out_dir) if out_dir else None
        self.state = PrinterStatus.READY
        self.silent = False            # True: answers nothing (unplugged, or no status support)
        self.paper_left: int | None = None   # tickets that still fit on the roll (None: endless)
        self.tickets: list[Image.Image] = []  # tickets that came out
        self.saved: list[Path] = []
        self.lost = 0                  # jobs swallowed while the printer could not print
        self.received = 0              # bytes received
        self._blocked = False
        self._lock = threading.Lock()
        self._printed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self.path = ""

    # -- life -----------------------------------------------------------------
    def start(self) -> SimulatedPrinter:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)        # a printer port: no echo, no line editing
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-printer", daemon=True)
        self._thread.start()
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        return self

    def stop(self) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join(timeout=2)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> SimulatedPrinter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- control --------------------------------------------------------------
    def set_state(self, state: PrinterStatus) -> None:
        if state == PrinterStatus.UNKNOWN:
            raise ValueError("a printer is not in state unknown; set .silent instead")
        with self._lock:
            self.state = state

    def wait_tickets(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` tickets came out in total."""
        with self._printed:
            return self._printed.wait_for(lambda: len(self.tickets) >= count, timeout)

    # -- the printer ----------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:
                continue
            with self._lock:
                self.received += len(data)
                if not self.state.can_print and _has_print_data(data):
                    self._blocked = True
                self.renderer.feed(data)
                answers, self.renderer.answers = self.renderer.answers, []
            for a in answers:
                os.write(self._master, a)

    def _answer(self, n: int) -> bytes | None:
        if self.silent:
            return None
        byte = _ANSWERS[self.state].get(n)
        return bytes([byte]) if byte is not None else None

    def _cut(self, page: Image.Image) -> None:
        if self._blocked or not self.state.can_print:
            self._blocked = False
            self.lost += 1
            return
        if self.paper_left is not None:
            if self.paper_left <= 0:       # the roll ended in this ticket
                self.state = PrinterStatus.PAPER_OUT
                self.lost += 1
                return
            self.paper_left -= 1
        self.tickets.append(page)
        if self.out_dir:
            path = self.out_dir / f"ticket-{len(self.tickets):04d}.png"
            page.save(path)
            self.saved.append(path)
            log.info("simulated printer: ticket saved to %s", path)
        self._printed.notify_all()


def _has_print_data(data: bytes) -> bool:
    """Anything but status requests (DLE EOT n) counts as printing."""
    rest = data
    while rest.startswith(b"\x10\x04") and len(rest) >= 3:
        rest = rest[3:]
    return bool(rest)
