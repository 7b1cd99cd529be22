"""Byte framings for serial LED number boards (see docs/counter.md, "Number display").

`qms-ascii` (default) is our own documented framing, deliberately close to what cheap
RS-485 counter boards sold in Vietnam and China accept (a start byte, a 2-digit bus address,
a command letter, ASCII digits, an end byte and a checksum): a local vendor can program a
board for it in an afternoon, and a USB-serial adapter plus a terminal program can test it.

`alpha` is the Alpha Sign Communications Protocol (Adaptive Micro Systems), a public,
widely cloned protocol spoken by many off-the-shelf LED message boards: a "write TEXT
file" command with the hold or flash mode.
"""
from __future__ import annotations

import re

STX, ETX, EOT, SOH, ESC, NUL = 0x02, 0x03, 0x04, 0x01, 0x1B, 0x00

_ALLOWED = re.compile(r"[^0-9A-Z \-]")


def fit(text: str, width: int) -> str:
    """Board text: upper-case ASCII digits/letters/-/space, right-aligned in `width` cells.
    Anything else becomes a space; too long keeps the rightmost cells (the number's end)."""
    text = _ALLOWED.sub(" ", text.upper())
    return text[-width:].rjust(width)


def xor_checksum(data: bytes) -> bytes:
    c = 0
    for b in data:
        c ^= b
    return f"{c:02X}".encode("ascii")


def qms_ascii_frame(address: int, text: str, width: int, blink: bool) -> bytes:
    """STX, address "00".."99" (00 = every board), 'D' steady or 'F' flashing, the text,
    ETX, then the XOR of the bytes from the address to ETX as two hex digits."""
    if not 0 <= address <= 99:
        raise ValueError(f"board address {address} is not 0..99")
    body = f"{address:02d}{'F' if blink else 'D'}{fit(text, width)}".encode("ascii") + bytes([ETX])
    return bytes([STX]) + body + xor_checksum(body)


def alpha_frame(address: int, text: str, width: int, blink: bool) -> bytes:
    """Alpha protocol: 5 NULs (auto-baud), SOH, type 'Z' (all sign types), the address as
    two hex digits ("00" = broadcast), STX, command 'A' (write TEXT file) to file label 'A',
    ESC, display position ' ' (middle line), mode 'b' hold or 'c' flash, the text, EOT."""
    if not 0 <= address <= 0xFF:
        raise ValueError(f"board address {address} is not 0..255")
    mode = b"c" if blink else b"b"
    return (bytes([NUL] * 5 + [SOH]) + b"Z" + f"{address:02X}".encode("ascii") + bytes([STX])
            + b"AA" + bytes([ESC]) + b" " + mode + fit(text, width).encode("ascii") + bytes([EOT]))


def parse_qms_ascii(frame: bytes) -> tuple[int, str, bool]:
    """The inverse of `qms_ascii_frame` (for tests and board firmware authors): raises ValueError."""
    if len(frame) < 7 or frame[0] != STX or frame[-3] != ETX:
        raise ValueError("not a qms-ascii frame")
    body, check = frame[1:-2], frame[-2:]
    if xor_checksum(body) != check:
        raise ValueError("bad checksum")
    address, cmd, text = int(body[:2]), chr(body[2]), body[3:-1].decode("ascii")
    if cmd not in "DF":
        raise ValueError(f"unknown command {cmd!r}")
    return address, text, cmd == "F"


FRAMERS = {"qms-ascii": qms_ascii_frame, "alpha": alpha_frame}
