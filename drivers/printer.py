"""The ticket printer: an encoder (ticket -> ESC/POS bytes) composed with a transport.

    printer = open_printer(cfg.printer)          # or make_printer(...) then .open()
    printer.status()                              # PrinterStatus
    printer.print_ticket(ticket)                  # raises PaperOut, CoverOpen, PrinterOffline

A ticket counts as printed only when `print_ticket` returns: the printer is asked for its
state before the job and again after it, so a kiosk never counts a ticket that did not
come out. Opening is explicit and can be retried; a print on a closed printer opens it.
"""
from __future__ import annotations

import logging
import threading
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


class TicketPrinter:
    def __init__(self, encoder: TicketEncoder, transport: Transport, status_timeout: float = 0.3,
                 simulator: SimulatedPrinter | None = None):
        self.encoder = encoder
        self.transport = transport
        self.status_timeout = status_timeout
        self.simulator = simulator          # set for backend "simulated": switch its faults here
        self.last_status = PrinterStatus.UNKNOWN
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

    def _status(self) -> PrinterStatus:
        if not self.transport.is_open:
            try:
                self.transport.open()
            except PrinterError:
                return PrinterStatus.OFFLINE
        if not self.transport.can_query:
            return PrinterStatus.UNKNOWN
        try:
            ask = lambda request: self.transport.query(request, self.status_timeout)  # noqa: E731
            printer = ask(DLE_EOT_PRINTER)
            if printer is None:
                return PrinterStatus.UNKNOWN
            cause = ask(DLE_EOT_OFFLINE_CAUSE) if printer & 0x08 else None
            return decode_status(printer, cause, ask(DLE_EOT_PAPER))
        except PrinterOffline:
            return PrinterStatus.OFFLINE

    # -- printing ---------------------------------------------------------------
    def print_ticket(self, ticket: TicketPrint) -> None:
        self.print_job(self.encoder.encode(ticket))

    def print_job(self, data: bytes) -> None:
        """Send one job (ends with a cut); raises a PrinterError when it did not come out."""
        with self._lock:
            if not self.transport.is_open:
                self.transport.open()
            self._require_ready("before printing")
            self.transport.write(data)
            self._require_ready("after printing")

    def _require_ready(self, when: str) -> None:
        if not self.transport.can_query:
            return                          # a write-only link: nothing to ask
        self.last_status = self._status()
        if not self.last_status.can_print:
            st = self.last_status
            detail = "no answer to status request" if st == PrinterStatus.UNKNOWN else st.value
            raise ERROR_FOR_STATUS[st](f"{st.message_vi} ({detail}, {when})", st)


def make_transport(cfg: PrinterConfig, device: str | None = None) -> Transport:
    if cfg.backend in ("serial", "simulated"):
        return SerialTransport(device or cfg.device, cfg.baudrate, cfg.flow_control, cfg.chunk_bytes,
                               cfg.profile)
    if cfg.backend == "network":
        return NetworkTransport(cfg.host, cfg.port, cfg.chunk_bytes, cfg.profile)
    if cfg.backend == "usb":
        return UsbTransport(cfg.usb_vendor, cfg.usb_product, cfg.chunk_bytes, cfg.profile)
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
    return TicketPrinter(encoder, transport, cfg.status_timeout_ms / 1000, simulator)


def open_printer(cfg: PrinterConfig, state_dir: str | Path | None = None) -> TicketPrinter:
    """make_printer + open. The printer object is returned even when it is off: its
    `status()` says OFFLINE and the next `print_ticket` tries to open it again."""
    printer = make_printer(cfg, state_dir)
    try:
        printer.open()
    except PrinterOffline as e:
        log.warning("printer not available yet: %s", e)
    return printer
