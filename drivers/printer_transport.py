"""Links to a printer: serial, USB, network (raw TCP 9100) and file, each over python-escpos.

A transport moves bytes and answers status queries; it knows nothing about tickets.
Every failure of the link becomes `PrinterOffline` with a message that says what to check.
"""
from __future__ import annotations

import select
import socket
import time

from qms.drivers import escpos_env
from qms.drivers.printer_status import PrinterConfigError, PrinterOffline, is_status_byte

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
        try:
            esc = self._make()
            esc.open(raise_not_found=True)
            self._after_open(esc)
        except DeviceNotFoundError as e:
            raise PrinterOffline(f"cannot open {self.description}: {str(e).splitlines()[-1]}") from None
        except OSError as e:
            raise PrinterOffline(f"cannot open {self.description}: {e}") from None
        self.esc = esc

    def close(self) -> None:
        esc, self.esc = self.esc, None
        if esc is not None:
            try:
                esc.close()      # flushes first, which fails on a link that is gone
            except Exception:    # noqa: BLE001
                try:
                    esc._device.close()
                except Exception:  # noqa: BLE001 - nothing more can be done for a dead link
                    pass
                esc._device = False   # or python-escpos tries (and fails) again on garbage collection

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

    def _write_chunk(self, chunk: bytes) -> None:
        self.esc._raw(chunk)

    def _query(self, request: bytes, timeout: float) -> int | None:
        raise NotImplementedError


class SerialTransport(Transport):
    def __init__(self, device: str, baudrate: int = 115200, flow_control: str = "rtscts",
                 chunk_bytes: int = 1024, profile: str = "default"):
        super().__init__(chunk_bytes)
        self.device, self.baudrate, self.flow_control, self.profile = device, baudrate, flow_control, profile
        self.description = f"serial printer {device}"

    def _make(self):
        # python-escpos' dsrdtr is not flow control on Linux; RTS/CTS is switched on below
        return escpos_env.printer.Serial(devfile=self.device, baudrate=self.baudrate, timeout=1,
                                         xonxoff=self.flow_control == "xonxoff", dsrdtr=False,
                                         profile=self.profile)

    def _after_open(self, esc) -> None:
        if self.flow_control == "rtscts":
            esc.device.rtscts = True

    def _write_chunk(self, chunk: bytes) -> None:
        dev = self.esc.device
        # a printer holding CTS low (buffer full, paper out) must not hang the kiosk forever
        dev.write_timeout = 2.0 + len(chunk) * 10 * 3 / self.baudrate
        self.esc._raw(chunk)
        dev.flush()

    def _query(self, request: bytes, timeout: float) -> int | None:
        dev = self.esc.device
        dev.reset_input_buffer()
        dev.write(request)
        dev.flush()
        deadline = time.monotonic() + timeout
        old = dev.timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                dev.timeout = left
                got = dev.read(1)                 # exactly one byte: the printer sends one
                if not got:
                    return None
                if is_status_byte(got[0]):
                    return got[0]                 # skip noise (e.g. a stray XON) before it
            return None
        finally:
            dev.timeout = old


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
            if is_status_byte(got[0]):
                return got[0]
        return None


class UsbTransport(Transport):
    def __init__(self, vendor: int, product: int, chunk_bytes: int = 1024, profile: str = "default"):
        super().__init__(chunk_bytes)
        if not escpos_env.printer.Usb.is_usable():
            raise PrinterConfigError("USB printers need pyusb and libusb (pip install pyusb; "
                                     "apt-get install libusb-1.0-0), or use backend = \"file\" "
                                     "with /dev/usb/lp0")
        if not vendor or not product:
            raise PrinterConfigError("printer.usb_vendor and printer.usb_product are needed for "
                                     "backend = \"usb\" (see `lsusb`)")
        self.vendor, self.product, self.profile = vendor, product, profile
        self.description = f"USB printer {vendor:04x}:{product:04x}"

    def _make(self):
        return escpos_env.printer.Usb(idVendor=self.vendor, idProduct=self.product, profile=self.profile)

    def _query(self, request: bytes, timeout: float) -> int | None:
        dev = self.esc.device
        dev.write(self.esc.out_ep, request, int(timeout * 1000))
        try:
            got = bytes(dev.read(self.esc.in_ep, 16, int(timeout * 1000)))
        except Exception as e:              # pyusb raises USBTimeoutError on silence
            if "timeout" in type(e).__name__.lower() or "timed out" in str(e).lower():
                return None
            raise
        return next((b for b in got if is_status_byte(b)), None)


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
