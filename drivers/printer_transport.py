"""Links to a printer: serial, USB, network (raw TCP 9100) and file, each over python-escpos.

A transport moves bytes and answers status queries; it knows nothing about tickets.
Every failure of the link becomes `PrinterOffline` with a message that says what to check.
"""
from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable

from qms.drivers import escpos_env
from qms.drivers.printer_status import (
    PrinterConfigError,
    PrinterOffline,
    is_status_byte,
    is_transmit_status_byte,
)

DeviceNotFoundError = __import__("escpos.exceptions", fromlist=["DeviceNotFoundError"]).DeviceNotFoundError


class Transport:
    """Common part: an opened python-escpos printer object, written in chunks."""
    can_query = True
    description = "printer"

    def __init__(self, chunk_bytes: int = 1024):
        self.chunk_bytes = chunk_bytes
        self.esc = None

    @property
    def is_open(self) -> bool:
        return self.esc is not None

    def open(self) -> None:
        self.close()
        esc = None
        try:
            esc = self._make()
            esc.open(raise_not_found=True)
            self._after_open(esc)
        except (DeviceNotFoundError, OSError) as e:
            if esc is not None:
                self._discard(esc)
            why = str(e).splitlines()[-1] if isinstance(e, DeviceNotFoundError) else e
            raise PrinterOffline(f"cannot open {self.description}: {why}") from None
        self.esc = esc

    def _discard(self, esc) -> None:
        """Close without python-escpos' flush (tcdrain: unbounded), also at garbage collection."""
        try:
            if esc._device:
                self._close_device(esc)
        except Exception:  # noqa: BLE001 - nothing more can be done for a dead link
            pass
        esc._device = False

    def close(self) -> None:
        esc, self.esc = self.esc, None
        if esc is not None:
            self._discard(esc)      # not esc.close(): it flushes, unbounded on a stuck link

    def write(self, data: bytes) -> None:
        if self.esc is None:
            raise PrinterOffline(f"{self.description} is not open")
        try:
            for i in range(0, len(data), self.chunk_bytes):
                self._write_chunk(data[i:i + self.chunk_bytes])
        except Exception as e:
            self.close()
            raise PrinterOffline(f"{self.description} stopped taking data "
                                 f"(offline, paper out or cover open?): {e}") from None

    def query(self, request: bytes, timeout: float) -> int | None:
        """Send a DLE EOT request; the one status byte, or None when nothing valid answers."""
        if self.esc is None:
            raise PrinterOffline(f"{self.description} is not open")
        try:
            return self._query(request, timeout)
        except Exception as e:
            self.close()
            raise PrinterOffline(f"{self.description}: {e}") from None

    # -- per link -------------------------------------------------------------
    def _make(self):
        raise NotImplementedError

    def _after_open(self, esc) -> None:
        pass

    def _close_device(self, esc) -> None:
        esc.close()

    def exchange(self, request: bytes, timeout: float) -> int | None:
        """Send a GS r request, processed in order with the data (e.g. after a cut), and
        return its answer within `timeout`, or None. A DLE EOT answer still on its way is
        skipped: it would claim the job done before the printer got to it."""
        if self.esc is None:
            raise PrinterOffline(f"{self.description} is not open")
        try:
            return self._exchange(request, timeout)
        except Exception as e:
            self.close()
            raise PrinterOffline(f"{self.description}: {e}") from None

    def _exchange(self, request: bytes, timeout: float) -> int | None:
        return self._query(request, timeout)

    def _write_chunk(self, chunk: bytes) -> None:
        self.esc._raw(chunk)

    def _query(self, request: bytes, timeout: float) -> int | None:
        raise NotImplementedError


class SerialTransport(Transport):
    """A serial port. Every wait is bounded: pyserial's flush() is tcdrain, which never
    times out, so it is never called (a printer holding CTS low would hang the kiosk)."""

    def __init__(self, device: str, baudrate: int = 115200, flow_control: str = "rtscts",
                 chunk_bytes: int = 1024, profile: str = "default", write_timeout: float = 3.0):
        super().__init__(chunk_bytes)
        self.device, self.baudrate, self.flow_control, self.profile = device, baudrate, flow_control, profile
        self.write_timeout = write_timeout
        self.description = f"serial printer {device}"

    def _make(self):
        # python-escpos' dsrdtr is not flow control on Linux: RTS/CTS and DSR are handled below
        return escpos_env.printer.Serial(devfile=self.device, baudrate=self.baudrate, timeout=1,
                                         xonxoff=self.flow_control == "xonxoff", dsrdtr=False,
                                         profile=self.profile)

    def _after_open(self, esc) -> None:
        if self.flow_control == "rtscts":
            esc.device.rtscts = True
        elif self.flow_control == "dsrdtr":
            esc.device.dtr = True              # "we are ready" to a printer that watches DTR

    def _chunk_timeout(self, size: int) -> float:
        return self.write_timeout + size * 10 / self.baudrate

    def _write_chunk(self, chunk: bytes) -> None:
        dev = self.esc.device
        deadline = time.monotonic() + self._chunk_timeout(len(chunk))
        if self.flow_control == "dsrdtr":
            self._wait_dsr(dev, deadline)
        # a printer holding CTS low (buffer full, paper out, off) fails the write, never hangs it
        self._write_all(dev, chunk, deadline)
        self._drain(dev, deadline)

    @staticmethod
    def _write_all(dev, data: bytes, deadline: float) -> None:
        """Write with a deadline that only a port that stops taking data can miss (pyserial's
        write timeout also fires when the whole chunk went out but the kiosk was slow to
        get back to it, and a job that went out whole must not count as cut off)."""
        fd, rest = dev.fileno(), memoryview(data)
        while rest:
            try:
                rest = rest[os.write(fd, rest):]
                continue
            except BlockingIOError:
                pass
            if not select.select([], [fd], [], max(0.0, deadline - time.monotonic()))[1]:
                raise TimeoutError("the printer stopped taking data (flow control held)")

    def _wait_dsr(self, dev, deadline: float) -> None:
        while not dev.dsr:
            if time.monotonic() >= deadline:
                raise TimeoutError("the printer holds DSR low (busy, off, or a cable without DSR: "
                                   "set printer.flow_control)")
            time.sleep(0.005)

    @staticmethod
    def _drain(dev, deadline: float) -> None:
        """tcdrain with a deadline: wait until the port's output queue is empty."""
        while dev.out_waiting:
            if time.monotonic() >= deadline:
                raise TimeoutError("the printer stopped taking data (flow control held)")
            time.sleep(0.002)

    def _query(self, request: bytes, timeout: float) -> int | None:
        return self._ask(request, timeout, accept=is_status_byte)

    def _exchange(self, request: bytes, timeout: float) -> int | None:
        return self._ask(request, timeout, accept=is_transmit_status_byte)

    def _ask(self, request: bytes, timeout: float, accept: Callable[[int], bool]) -> int | None:
        """Send `request`; the first byte answered within `timeout` that `accept`s (the
        answer's kind: a late answer to another kind of request is skipped), or None on silence."""
        dev = self.esc.device
        dev.reset_input_buffer()
        deadline = time.monotonic() + timeout
        self._write_all(dev, request, deadline + self.write_timeout)
        self._drain(dev, deadline + self.write_timeout)
        old = dev.timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                dev.timeout = left
                got = dev.read(1)                 # exactly one byte: the printer sends one
                if not got:
                    return None
                if accept(got[0]):
                    return got[0]                 # skip noise (a stray XON, a late answer) before it
            return None
        finally:
            dev.timeout = old

    def _close_device(self, esc) -> None:
        dev = esc.device
        try:
            dev.reset_output_buffer()       # closing a tty with queued output waits up to 30 s
        except Exception:  # noqa: BLE001
            pass
        dev.close()


class NetworkTransport(Transport):
    def __init__(self, host: str, port: int = 9100, chunk_bytes: int = 1024, profile: str = "default"):
        super().__init__(chunk_bytes)
        if not host:
            raise PrinterConfigError("printer.host is empty (needed for backend = \"network\")")
        self.host, self.port, self.profile = host, port, profile
        self.description = f"network printer {host}:{port}"

    def _make(self):
        return escpos_env.printer.Network(host=self.host, port=self.port, timeout=5, profile=self.profile)

    def _query(self, request: bytes, timeout: float) -> int | None:
        return self._ask(request, timeout, accept=is_status_byte)

    def _exchange(self, request: bytes, timeout: float) -> int | None:
        return self._ask(request, timeout, accept=is_transmit_status_byte)

    def _ask(self, request: bytes, timeout: float, accept: Callable[[int], bool]) -> int | None:
        sock: socket.socket = self.esc.device
        while select.select([sock], [], [], 0)[0]:      # drop stale answers
            if not sock.recv(256):
                raise ConnectionError("connection closed by the printer")
        sock.sendall(request)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                return None
            got = sock.recv(1)
            if not got:
                raise ConnectionError("connection closed by the printer")
            if accept(got[0]):
                return got[0]
        return None


# bulk endpoints (in, out) of models that differ from python-escpos' 0x82/0x01
USB_ENDPOINTS: dict[tuple[int, int], tuple[int, int]] = {
    (0x0416, 0x5011): (0x81, 0x03),    # Winbond-based POS58/POS80 clones (Xprinter, Goojprt...)
}


class UsbTransport(Transport):
    def __init__(self, vendor: int, product: int, chunk_bytes: int = 1024, profile: str = "default",
                 in_ep: int = 0, out_ep: int = 0, write_timeout: float = 3.0):
        super().__init__(chunk_bytes)
        if not escpos_env.printer.Usb.is_usable():
            raise PrinterConfigError("USB printers need pyusb and libusb (pip install pyusb; "
                                     "apt-get install libusb-1.0-0), or use backend = \"file\" "
                                     "with /dev/usb/lp0")
        if not vendor or not product:
            raise PrinterConfigError("printer.usb_vendor and printer.usb_product are needed for "
                                     "backend = \"usb\" (see `lsusb`)")
        self.vendor, self.product, self.profile = vendor, product, profile
        known_in, known_out = USB_ENDPOINTS.get((vendor, product), (0x82, 0x01))
        self.in_ep, self.out_ep = in_ep or known_in, out_ep or known_out
        self.write_timeout = write_timeout
        self.description = f"USB printer {vendor:04x}:{product:04x}"

    def _make(self):
        # python-escpos' default timeout 0 means "wait forever" in libusb
        return escpos_env.printer.Usb(idVendor=self.vendor, idProduct=self.product, profile=self.profile,
                                      in_ep=self.in_ep, out_ep=self.out_ep,
                                      timeout=int(self.write_timeout * 1000))

    def _query(self, request: bytes, timeout: float) -> int | None:
        return self._ask(request, timeout, accept=is_status_byte)

    def _exchange(self, request: bytes, timeout: float) -> int | None:
        return self._ask(request, timeout, accept=is_transmit_status_byte)

    def _ask(self, request: bytes, timeout: float, accept: Callable[[int], bool]) -> int | None:
        dev = self.esc.device
        dev.write(self.esc.out_ep, request, int(timeout * 1000))
        try:
            got = bytes(dev.read(self.esc.in_ep, 16, int(timeout * 1000)))
        except Exception as e:              # pyusb raises USBTimeoutError on silence
            if "timeout" in type(e).__name__.lower() or "timed out" in str(e).lower():
                return None
            raise
        return next((b for b in got if accept(b)), None)


class FileTransport(Transport):
    """A device file such as /dev/usb/lp0: write only, so the status stays unknown."""
    can_query = False

    def __init__(self, path: str, chunk_bytes: int = 1024, profile: str = "default"):
        super().__init__(chunk_bytes)
        self.path, self.profile = path, profile
        self.description = f"printer file {path}"

    def _make(self):
        return escpos_env.printer.File(devfile=self.path, auto_flush=True, profile=self.profile)

    def _query(self, request: bytes, timeout: float) -> int | None:
        return None
