"""The ticket printer: an encoder (ticket -> ESC/POS bytes) composed with a transport.

    printer = open_printer(cfg.printer)          # or make_printer(...) then .open()
    printer.status()                              # PrinterStatus
    printer.print_ticket(ticket)                  # raises PaperOut, CoverOpen, PrinterOffline

A ticket counts as printed only when the printer confirms it: after the cut the driver
sends GS r 1, which the printer answers only once it has processed everything before it,
then reads its state (DLE EOT). A job that was cut off (link lost, paper out or cover
opened inside it, no confirmation) may have left the printer inside a half-received
command that would swallow the next job's ESC @ and glyph definitions as data: before
the next job the printer is cleared (real-time buffer clear, or NUL padding) and reset,
and the ticket is printed again marked "IN LẠI / REPRINT" if the printer is back within
`printer.reprint_window_s`. Every wait is bounded; nothing here may run on a UI thread.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

from qms.config.printer import PrinterConfig
from qms.drivers.printer_sim import SimulatedPrinter
from qms.drivers.printer_status import (
    DLE_EOT_OFFLINE_CAUSE,
    DLE_EOT_PAPER,
    DLE_EOT_PRINTER,
    ERROR_FOR_STATUS,
    PrinterError,
    PrinterOffline,
    PrinterStatus,
    decode_status,
)
from qms.drivers.printer_transport import FileTransport, NetworkTransport, SerialTransport, Transport, UsbTransport
from qms.drivers.ticket import TicketPrint
from qms.drivers.ticket_encoder import TicketEncoder

log = logging.getLogger(__name__)


GS_R_PAPER = b"\x1dr\x01"              # transmit paper status: answered in order, after the cut
GS_R_PAPER_END = 0x0C                  # its answer's paper-end sensor bits
DLE_ENQ_CLEAR = b"\x10\x05\x02"        # real-time: recover from an error, clearing the buffers
DLE_DC4_CLEAR = b"\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08"   # real-time: clear buffers
ESC_INIT = b"\x1b@"
# the longest command a job of ours holds (a raster line of the widest paper, a glyph set)
# is shorter than this: NULs this long complete any command a cut-off job left open
PAD_BYTES = 16384


def recovery_bytes(mode: str) -> bytes:
    """Clear what a cut-off job left in the printer, and reset it."""
    clear = bytes(PAD_BYTES) if mode == "pad" else DLE_ENQ_CLEAR + DLE_DC4_CLEAR
    return clear + ESC_INIT


class TicketPrinter:
    def __init__(self, encoder: TicketEncoder, transport: Transport, status_timeout: float = 0.3,
                 simulator: SimulatedPrinter | None = None, recovery: str = "realtime",
                 reprint_window_s: float = 10.0, baudrate: int = 115200):
        self.encoder = encoder
        self.transport = transport
        self.status_timeout = status_timeout
        self.simulator = simulator          # set for backend "simulated": switch its faults here
        self.last_status = PrinterStatus.UNKNOWN
        self.recovery = recovery
        self.recovery_bytes = recovery_bytes(recovery)
        self.trim_bytes = encoder.trim()    # cuts the torn top of a cut-off job away
        self.torn = False                   # a job of ours stopped in the middle of the paper
        self.reprint_window_s = reprint_window_s
        self.retry_interval = 0.25
        self.baudrate = baudrate            # to bound the wait for a long job to come out
        self.confirm_timeout = max(3.0, status_timeout)   # feeding and cutting a ticket
        # a job was cut off, or the printer may hold garbage: clear it before the next job
        self.needs_recovery = True
        self.job_sent = False               # the current job's first byte went out
        self._lock = threading.Lock()       # one job or query at a time on the link

    # -- link -------------------------------------------------------------------
    def open(self) -> None:
        """Open the link; raises PrinterOffline (call again later to retry)."""
        with self._lock:
            self.transport.open()

    def close(self) -> None:
        with self._lock:
            self.transport.close()
        if self.simulator:
            self.simulator.stop()
            self.simulator = None

    def __enter__(self) -> TicketPrinter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- status -----------------------------------------------------------------
    def status(self) -> PrinterStatus:
        with self._lock:
            self.last_status = self._status()
            return self.last_status

    def _status(self, timeout: float | None = None) -> PrinterStatus:
        if not self.transport.is_open:
            try:
                self.transport.open()
            except PrinterError:
                return PrinterStatus.OFFLINE
        if not self.transport.can_query:
            return PrinterStatus.UNKNOWN
        try:
            wait = timeout or self.status_timeout
            ask = lambda request: self.transport.query(request, wait)  # noqa: E731
            printer = ask(DLE_EOT_PRINTER)
            if printer is None:
                return PrinterStatus.UNKNOWN
            cause = ask(DLE_EOT_OFFLINE_CAUSE) if printer & 0x08 else None
            return decode_status(printer, cause, ask(DLE_EOT_PAPER))
        except PrinterOffline:
            return PrinterStatus.OFFLINE

    # -- printing ---------------------------------------------------------------
    def print_ticket(self, ticket: TicketPrint) -> bool:
        """Print `ticket`; True when it had to be printed again (a cut-off first try).

        A printer that does not answer or is unplugged is waited for up to
        `reprint_window_s`; one that says it needs staff (paper out, cover open) before the
        job fails at once. Raises a PrinterError when no good copy came out."""
        deadline = time.monotonic() + self.reprint_window_s
        reprint = False
        while True:
            try:
                self.print_job(self.encoder.encode(dataclasses.replace(ticket, reprint=reprint)))
                if reprint:
                    log.info("ticket %s printed again", ticket.number)
                return reprint
            except PrinterError as e:
                if self.job_sent and not reprint:
                    log.warning("ticket %s cut off (%s); printing it again when the printer is back",
                                ticket.number, e)
                    reprint = True
                elif not reprint and e.status not in (PrinterStatus.UNKNOWN, PrinterStatus.OFFLINE):
                    raise                       # staff needed, and no paper used yet
                last = e
            while not self.status().can_print:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise last
                time.sleep(min(self.retry_interval, left))
            if time.monotonic() >= deadline:
                raise last

    def print_job(self, data: bytes) -> None:
        """Send one job (ends with a cut); raises a PrinterError when it did not come out."""
        with self._lock:
            self.job_sent = False
            if not self.transport.is_open:
                self.transport.open()
                self.needs_recovery = True      # the printer may hold half of an earlier job
            if self.needs_recovery:
                self._recover()
            else:
                self._require_ready("before printing")
            # from the first byte until confirmed, the job may end up cut off
            self.needs_recovery = self.job_sent = self.torn = True
            self.transport.write(data)
            self._confirm(len(data))
            self.needs_recovery = self.torn = False

    def _recover(self) -> None:
        """Clear what a cut-off job left in the printer, reset it, and check it can print."""
        data = self.recovery_bytes + (self.trim_bytes if self.torn else b"")
        if self.transport.can_query:
            self.transport.write(data)
            self.last_status = self._status()
            if self.last_status == PrinterStatus.UNKNOWN:   # busy finishing the padding: ask again
                self.last_status = self._status()
            if self.last_status != PrinterStatus.UNKNOWN:
                self.needs_recovery = False                 # it answered: the clear went through
            self._raise_unless_ready("before printing (printer cleared)")
        else:
            self.transport.write(data)
        self.needs_recovery = self.torn = False
        log.info("printer cleared and reset (%s)", self.recovery)

    def _confirm(self, size: int) -> None:
        if not self.transport.can_query:
            return                          # a write-only link: nothing to ask
        # GS r 1 is processed after everything sent before it: its answer means "cut done"
        wait = self.confirm_timeout + size * 10 / self.baudrate
        paper = self.transport.exchange(GS_R_PAPER, wait)
        if paper is None:
            self.last_status = PrinterStatus.UNKNOWN
            raise PrinterOffline("the printer did not confirm the ticket (no answer after the cut)")
        if paper & GS_R_PAPER_END:          # the roll ended before the cut, whatever it says now
            self.last_status = PrinterStatus.PAPER_OUT
            self._raise_unless_ready("after printing")
        # It has just answered, so it is there: the short status timeout (made to notice an
        # absent printer quickly) must not turn a slow answer into a reprint of a ticket that
        # came out. Its state says whether the job was swallowed (paper out, cover open).
        self.last_status = self._status(wait)
        self._raise_unless_ready("after printing")

    def _require_ready(self, when: str) -> None:
        if not self.transport.can_query:
            return                          # a write-only link: nothing to ask
        self.last_status = self._status()
        if self.last_status == PrinterStatus.UNKNOWN:    # garbage or a half job in the way: clear
            self._recover()
            return
        self._raise_unless_ready(when)

    def _raise_unless_ready(self, when: str) -> None:
        if not self.last_status.can_print:
            st = self.last_status
            detail = "no answer to status request" if st == PrinterStatus.UNKNOWN else st.value
            raise ERROR_FOR_STATUS[st](f"{st.message_vi} ({detail}, {when})", st)


def make_transport(cfg: PrinterConfig, device: str | None = None) -> Transport:
    if cfg.backend in ("serial", "simulated"):
        return SerialTransport(device or cfg.device, cfg.baudrate, cfg.flow_control, cfg.chunk_bytes,
                               cfg.profile, cfg.write_timeout_ms / 1000)
    if cfg.backend == "network":
        return NetworkTransport(cfg.host, cfg.port, cfg.chunk_bytes, cfg.profile)
    if cfg.backend == "usb":
        return UsbTransport(cfg.usb_vendor, cfg.usb_product, cfg.chunk_bytes, cfg.profile,
                            cfg.usb_in_ep, cfg.usb_out_ep, cfg.write_timeout_ms / 1000)
    return FileTransport(cfg.device, cfg.chunk_bytes, cfg.profile)


def make_printer(cfg: PrinterConfig, state_dir: str | Path | None = None) -> TicketPrinter:
    """A printer as configured, not yet opened. Raises PrinterConfigError on a bad config.

    backend "simulated" starts a simulated printer behind a pty (tickets saved as PNGs in
    out_dir, relative to `state_dir`, default ./var) and talks to it over the real serial code.
    """
    encoder = TicketEncoder(cfg)
    simulator = None
    device = None
    if cfg.backend == "simulated":
        out_dir = Path(state_dir or "var") / cfg.out_dir      # an absolute out_dir stays as is
        simulator = SimulatedPrinter(cfg.paper_width_px, cfg.profile, out_dir).start()
        device = simulator.path
    transport = make_transport(cfg, device)
    baud = cfg.baudrate if cfg.backend in ("serial", "simulated") else 1_000_000
    return TicketPrinter(encoder, transport, cfg.status_timeout_ms / 1000, simulator, cfg.recovery,
                         cfg.reprint_window_s, baud)


def open_printer(cfg: PrinterConfig, state_dir: str | Path | None = None) -> TicketPrinter:
    """make_printer + open. The printer object is returned even when it is off: its
    `status()` says OFFLINE and the next `print_ticket` tries to open it again."""
    printer = make_printer(cfg, state_dir)
    try:
        printer.open()
    except PrinterOffline as e:
        log.warning("printer not available yet: %s", e)
    return printer
