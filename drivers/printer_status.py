"""Printer states, how to read them from DLE EOT answers, and the errors a print can end in."""
from __future__ import annotations

import enum


class PrinterStatus(enum.Enum):
    READY = "ready"
    PAPER_NEAR_END = "paper_near_end"
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"
    UNKNOWN = "unknown"         # nothing (valid) answered: not known to be able to print

    @property
    def can_print(self) -> bool:
        return self in (PrinterStatus.READY, PrinterStatus.PAPER_NEAR_END)

    @property
    def message_vi(self) -> str:
        return _MESSAGES_VI[self]


_MESSAGES_VI = {
    PrinterStatus.READY: "Máy in sẵn sàng",
    PrinterStatus.PAPER_NEAR_END: "Máy in sắp hết giấy",
    PrinterStatus.PAPER_OUT: "Máy in hết giấy",
    PrinterStatus.COVER_OPEN: "Nắp máy in đang mở",
    PrinterStatus.OFFLINE: "Máy in không hoạt động",
    PrinterStatus.UNKNOWN: "Không rõ trạng thái máy in",
}

# DLE EOT n: real-time status requests; the printer answers one byte each.
DLE_EOT_PRINTER = b"\x10\x04\x01"      # bit 3: offline
DLE_EOT_OFFLINE_CAUSE = b"\x10\x04\x02"  # bit 2: cover open, bit 5: stopped by paper end, bit 6: error
DLE_EOT_PAPER = b"\x10\x04\x04"        # bits 2+3: near end, bits 5+6: paper out


def is_status_byte(b: int) -> bool:
    """Every DLE EOT answer has bits 1 and 4 set and bits 0 and 7 clear (0x12 pattern)."""
    return b & 0x93 == 0x12


def is_transmit_status_byte(b: int) -> bool:
    """A GS r answer has bits 4 and 7 clear: never mistaken for a (late) DLE EOT answer."""
    return b & 0x90 == 0


def decode_status(printer: int | None, cause: int | None, paper: int | None) -> PrinterStatus:
    """Turn the answers to DLE EOT 1, 2 and 4 into one state (None = no valid answer)."""
    if printer is None:
        return PrinterStatus.UNKNOWN
    if printer & 0x08:
        if cause is not None and cause & 0x04:
            return PrinterStatus.COVER_OPEN
        if cause is not None and cause & 0x20:
            return PrinterStatus.PAPER_OUT
        if paper is not None and paper & 0x60:
            return PrinterStatus.PAPER_OUT
        return PrinterStatus.OFFLINE
    if paper is None:
        return PrinterStatus.UNKNOWN
    if paper & 0x60:
        return PrinterStatus.PAPER_OUT
    if paper & 0x0C:
        return PrinterStatus.PAPER_NEAR_END
    return PrinterStatus.READY


class PrinterError(Exception):
    """The ticket did not come out (or may not have). `status` says why, for the kiosk screen."""
    status = PrinterStatus.UNKNOWN

    def __init__(self, message: str = "", status: PrinterStatus | None = None):
        if status is not None:
            self.status = status
        super().__init__(message or self.status.message_vi)


class PaperOut(PrinterError):
    status = PrinterStatus.PAPER_OUT


class CoverOpen(PrinterError):
    status = PrinterStatus.COVER_OPEN


class PrinterOffline(PrinterError):
    """Offline, unplugged, not answering or not found."""
    status = PrinterStatus.OFFLINE


class PrinterConfigError(PrinterError):
    """The printer section of the config cannot work (unknown profile, missing font...)."""


ERROR_FOR_STATUS: dict[PrinterStatus, type[PrinterError]] = {
    PrinterStatus.PAPER_OUT: PaperOut,
    PrinterStatus.COVER_OPEN: CoverOpen,
    PrinterStatus.OFFLINE: PrinterOffline,
    PrinterStatus.UNKNOWN: PrinterOffline,
}
