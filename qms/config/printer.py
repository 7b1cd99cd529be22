"""Config section of the ticket printer (`[printer]` in the site TOML).

Everything a site may want to change on its printer is here, including the ticket
layout, so that no code changes for a new model, paper width or wording.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Blocks a ticket layout is made of, in the order they are printed.
Block = Literal["center", "point", "rule", "service", "number", "priority", "ahead",
                "wait", "issued", "qr", "ticket_id", "footer", "blank"]

DEFAULT_LAYOUT: list[Block] = ["center", "point", "rule", "service", "number", "priority",
                             "ahead", "wait", "issued", "qr", "footer", "ticket_id"]

# Placeholders each template may use (checked when the config is loaded).
_TEMPLATE_FIELDS = {"label": "Người cao tuổi", "n": 3, "minutes": 12, "time": "08:15",
                    "date": "05/03/2025", "weekday": "Thứ Tư"}


class TicketTexts(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Wording of the ticket. `{…}` are placeholders filled in at print time."""
    priority_vi: str = "ƯU TIÊN: {label}"
    ahead_vi: str = "Trước bạn còn {n} người"
    ahead_en: str = "People ahead of you: {n}"
    wait_vi: str = "Chờ dự kiến: ~{minutes} phút"
    wait_en: str = "Estimated wait: ~{minutes} min"
    issued_vi: str = "{time}  {date}"
    qr_vi: str = "Quét mã để theo dõi lượt"   # only when the QR carries a link (site.public_url)
    qr_en: str = "Scan to follow your turn"
    reprint_mark: str = "IN LẠI / REPRINT"   # on a ticket printed again after a cut-off job
    offline_mark: str = "*"        # appended to the ticket id line of an offline ticket

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            template = getattr(self, name)
            try:
                template.format(**_TEMPLATE_FIELDS)
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(
                    f"printer.texts.{name}: bad placeholder in {template!r} ({e}); "
                    f"allowed: {', '.join('{' + k + '}' for k in _TEMPLATE_FIELDS)}") from None


class PrinterConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # -- connection -------------------------------------------------------
    # simulated: a printer emulated behind a pty, each ticket saved as a PNG in out_dir
    backend: Literal["simulated", "serial", "usb", "network", "file"] = "simulated"
    device: str = "/dev/ttyUSB0"        # serial port, or file/device path for "file"
    baudrate: Literal[9600, 19200, 38400, 57600, 115200, 230400] = 115200
    # large images overflow printer buffers without flow control; "dsrdtr": the printer's
    # DSR line says when it takes data (many thermal printers wire BUSY there)
    flow_control: Literal["rtscts", "dsrdtr", "xonxoff", "none"] = "rtscts"
    chunk_bytes: Annotated[int, msgspec.Meta(ge=16, le=65536)] = 1024
    host: str = ""                      # network printers (raw TCP, usually port 9100)
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 9100
    usb_vendor: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)] = 0
    usb_product: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)] = 0
    # bulk endpoints; 0 = known for the model (0416:5011: 0x81/0x03), else python-escpos' 0x82/0x01
    usb_in_ep: Annotated[int, msgspec.Meta(ge=0, le=0xFF)] = 0
    usb_out_ep: Annotated[int, msgspec.Meta(ge=0, le=0xFF)] = 0
    # longest a write may block (printer busy, CTS/DSR low, USB stalled) before the job fails
    write_timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=60000)] = 3000
    status_timeout_ms: Annotated[int, msgspec.Meta(ge=20, le=5000)] = 300
    # after an interrupted or unknown job the printer is cleared before the next one:
    # "realtime": DLE ENQ 2 + DLE DC4 8 (clear buffers, processed on receipt; Epson TM and
    # most compatibles), then ESC @; "pad": NUL bytes that complete any command a cut-off
    # job left open, then ESC @ (printers without real-time commands; slower)
    recovery: Literal["realtime", "pad"] = "realtime"
    # a ticket whose job was cut off is printed again (marked "IN LẠI / REPRINT") if the
    # printer is back within this time; otherwise the kiosk reports it as not printed
    reprint_window_s: Annotated[float, msgspec.Meta(ge=0.0, le=120.0)] = 10.0
    out_dir: str = "tickets"            # simulated backend: ticket PNGs, relative to paths.state_dir
    # -- printer model ----------------------------------------------------
    profile: str = "default"            # python-escpos printer profile name
    paper_width_px: Annotated[int, msgspec.Meta(ge=256, le=832, multiple_of=8)] = 576
    # glyphs: accented letters downloaded as user-defined characters (ESC &), smallest;
    # raster: Vietnamese lines as images, works on every printer;
    # codepage: the printer's own Vietnamese code page, only for a model that passed selftest
    vietnamese: Literal["glyphs", "raster", "codepage"] = "raster"
    codepage: Literal["tcvn3", "cp1258"] = "tcvn3"
    font: str = ""                      # TTF for Vietnamese; default DejaVu Sans
    font_bold: str = ""
    qr: Literal["auto", "native", "image", "off"] = "auto"
    qr_module_px: Annotated[int, msgspec.Meta(ge=1, le=16)] = 6
    cut: Literal["partial", "full", "none"] = "partial"
    # -- layout -----------------------------------------------------------
    layout: list[Block] = msgspec.field(default_factory=lambda: list(DEFAULT_LAYOUT))
    english: bool = True                # English line under each Vietnamese one
    number_scale: Annotated[int, msgspec.Meta(ge=2, le=8)] = 6
    footer: list[str] = msgspec.field(default_factory=lambda: [
        "Chỉ có giá trị trong ngày.", "Valid today only. Thank you!"])
    texts: TicketTexts = msgspec.field(default_factory=TicketTexts)
