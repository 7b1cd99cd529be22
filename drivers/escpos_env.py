"""Importing python-escpos the fast way, and its printer profiles."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from qms.drivers.printer_status import PrinterConfigError


def _prepare() -> None:
    # escpos parses its capabilities file and makes a new temp dir on every import
    # (~0.25 s) unless told where to keep the parsed copy.
    if "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qms-escpos"
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            cache = Path(tempfile.gettempdir())
        os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(cache)


_prepare()

import escpos.printer  # noqa: E402  (after the environment is set)
from escpos.capabilities import CAPABILITIES  # noqa: E402

printer = escpos.printer


def profile_names() -> list[str]:
    return sorted(CAPABILITIES["profiles"])


def check_profile(name: str) -> None:
    if name not in CAPABILITIES["profiles"]:
        raise PrinterConfigError(
            f"unknown printer profile {name!r} (printer.profile); known: {', '.join(profile_names())}")


def tell_paper_width(esc, paper_width_px: int) -> None:
    """Give a python-escpos printer's profile the real paper width (images are checked against it)."""
    profile = esc.profile
    data = dict(profile.profile_data)
    data["media"] = {**data.get("media", {}), "width": {"pixels": paper_width_px, "mm": "Unknown"}}
    profile.profile_data = data


def supports(profile_name: str, feature: str) -> bool:
    return bool(CAPABILITIES["profiles"][profile_name]["features"].get(feature))


def code_page_slots(profile_name: str) -> dict[str, int]:
    """Encoding name -> ESC t slot number in this profile."""
    pages = CAPABILITIES["profiles"][profile_name]["codePages"]
    return {enc: int(slot) for slot, enc in pages.items() if enc != "Unknown"}


def code_page_table(encoding: str) -> dict[int, str]:
    """Byte (0x80..0xFF) -> character of a code page, from python-escpos' tables."""
    data = CAPABILITIES["encodings"][encoding]
    if "data" in data:
        chars = "".join(data["data"])
        if encoding.startswith("TCVN-3"):
            chars = chars.replace("Ð", "Đ")    # the table has the Icelandic Ð where TCVN-3 has Đ
        return {0x80 + i: c for i, c in enumerate(chars) if c != " "}
    table = {}
    for b in range(0x80, 0x100):
        try:
            table[b] = bytes([b]).decode(data["python_encode"])
        except (UnicodeDecodeError, KeyError, LookupError):
            pass
    return table


def dummy(profile_name: str, paper_width_px: int):
    """A python-escpos printer that only collects the bytes it would send."""
    check_profile(profile_name)
    esc = printer.Dummy(profile=profile_name)
    tell_paper_width(esc, paper_width_px)
    return esc
