"""A simulated ESC/POS printer behind a pseudo-terminal.

The real code path drives it: python-escpos' `Serial` over pyserial opens the pty's
device file like a USB-serial adapter. The printer interprets what it receives
(`EscposRenderer`), answers DLE EOT status requests, can be put into any fault state,
and saves each cut ticket as a PNG.

A ticket sent while the printer cannot print is swallowed, as a real one would, and
never saved: it did not come out.

Faults in the middle of a job, for recovery tests (each after `n` more bytes received):
`cut_link_after(n)` (cable pulled: the rest never arrives and the port disappears, the
printer keeps its half-received command; `replug()` brings a new port, at `link` when
given), `fault_after(n, PAPER_OUT | COVER_OPEN)`, `hold()`/`release()` (CTS low: the
printer takes nothing; what queued meanwhile never crossed the cable) and `silent`.
DLE EOT is answered on receipt, like a real printer's real-time commands; GS r in order.
A page that began before a clear or reset is the torn top of a cut-off job: kept in
`waste`, not in `tickets`.
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
                 out_dir: str | Path | None = None, link: str | Path | None = None):
        self.renderer = EscposRenderer(paper_width_px, profile, on_status=self._answer, on_cut=self._cut,
                                       realtime_status=True)
        self.out_dir = Path(out_dir) if out_dir else None
        self.link = Path(link) if link else None     # a stable name for the port (symlink)
        self.waste: list[Image.Image] = []    # torn tops of cut-off jobs
        self.held = False
        self._fault_at: tuple[int, PrinterStatus | None] | None = None   # (bytes, state; None = cut)
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
        self._plug()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-printer", daemon=True)
        self._thread.start()
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        return self

    def _plug(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)        # a printer port: no echo, no line editing
        self.path = os.ttyname(self._slave)
        if self.link:
            self.link.unlink(missing_ok=True)
            self.link.symlink_to(self.path)

    def _unplug(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.link:
            self.link.unlink(missing_ok=True)

    def stop(self) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join(timeout=2)
            self._thread = None
        with self._lock:
            self._unplug()

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

    def cut_link_after(self, n: int) -> None:
        with self._lock:
            self._fault_at = (self.received + n, None)

    def fault_after(self, n: int, state: PrinterStatus) -> None:
        with self._lock:
            self._fault_at = (self.received + n, state)

    def replug(self) -> None:
        """A new port for the same printer (it kept its state and half-received data)."""
        with self._lock:
            if self._master < 0:
                self._plug()

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        """CTS high again: what queued in the port meanwhile had never left the sender."""
        with self._lock:
            while self._master >= 0 and select.select([self._master], [], [], 0)[0]:
                try:
                    if not os.read(self._master, 65536):
                        break
                except OSError:
                    break
            self.held = False

    def tear(self) -> None:
        """Tear off what was printed since the last cut (a printer without cutter)."""
        with self._lock:
            self.renderer.tear()

    def wait_tickets(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` tickets came out in total."""
        with self._printed:
            return self._printed.wait_for(lambda: len(self.tickets) >= count, timeout)

    # -- the printer ----------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master < 0 or self.held:
                self._stop.wait(0.02)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(master, 65536)
            except (OSError, ValueError):
                continue
            with self._lock:
                if self._master != master or self.held:
                    continue                   # unplugged or held meanwhile: never arrived
                data = self._take(data)
                answers = [a for n in _realtime_requests(data) if (a := self._answer(n))]
                clears = self.renderer.clears
                self.renderer.feed(data)
                if self.renderer.clears != clears:
                    self._blocked = False      # the buffers were cleared: nothing left to print
                answers += self.renderer.answers
                self.renderer.answers = []
                try:
                    for a in answers:
                        os.write(master, a)
                except OSError:
                    pass
                if self._fault_at is not None and self._fault_at[1] is None and self.received >= self._fault_at[0]:
                    self._fault_at = None
                    self._unplug()             # the cable is pulled

    def _take(self, data: bytes) -> bytes:
        """Count the bytes received; apply a fault planned inside them."""
        if self._fault_at is not None:
            at, state = self._fault_at
            if self.received + len(data) >= at:
                keep = max(0, at - self.received)
                if state is None:
                    data = data[:keep]         # the rest is lost with the cable
                else:
                    self._fault_at = None
                    self._feed(data[:keep])
                    self.received += keep
                    self.state = state
                    data = data[keep:]
        self.received += len(data)
        if not self.state.can_print and _has_print_data(data):
            self._blocked = True
        return data

    def _feed(self, data: bytes) -> None:
        self.renderer.feed(data)

    def _answer(self, n: int) -> bytes | None:
        if self.silent:
            return None
        byte = _ANSWERS[self.state].get(n)
        return bytes([byte]) if byte is not None else None

    def _cut(self, page: Image.Image) -> None:
        if self.renderer.last_cut_interrupted or page.getextrema()[0] > 0:
            self.waste.append(page)        # the torn top of a cut-off job (or a blank trim)
            return
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


def _realtime_requests(data: bytes) -> list[int]:
    """The n of each DLE EOT n in `data`: a printer answers them on receipt."""
    out, i = [], data.find(b"\x10\x04")
    while 0 <= i < len(data) - 2:
        out.append(data[i + 2])
        i = data.find(b"\x10\x04", i + 3)
    return out


def _has_print_data(data: bytes) -> bool:
    """Anything but status requests (DLE EOT n) counts as printing."""
    rest = data
    while rest.startswith(b"\x10\x04") and len(rest) >= 3:
        rest = rest[3:]
    return bool(rest)
