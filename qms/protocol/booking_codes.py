"""Booking codes: what a citizen gets when booking (`qms web`) and types or scans at a kiosk.

Crockford base32 without I, L, O, U: easy to read aloud and to type on a kiosk; 8
characters (40 bits; guessing is rate-limited too), printed as XXXX-XXXX. The web server
and the kiosk read codes with the same rules, from here.
"""
from __future__ import annotations

import re

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LEN = 8
_CODE_RE = re.compile(f"^[{CODE_ALPHABET}]{{{CODE_LEN}}}$")
_TYPO = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})


class NotABookingCode(ValueError):
    """What was typed or scanned is not a booking code."""

    def __init__(self) -> None:
        super().__init__("`code` must be a booking code like 7KQ2-M9XD")


def normalize_code(text: str) -> str:
    """What a citizen typed or a scanner read -> the canonical code; raises NotABookingCode."""
    if not isinstance(text, str) or len(text) > 40:
        raise NotABookingCode()
    code = text.strip().upper().translate(_TYPO)
    if not _CODE_RE.match(code):
        raise NotABookingCode()
    return code


def display_code(code: str) -> str:
    """XXXX-XXXX, as printed in the citizen's booking."""
    return f"{code[:4]}-{code[4:]}"
