"""Config section of the ticket printer."""
import msgspec


class PrinterConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    backend: str = "simulated"
    paper_width_px: int = 576
