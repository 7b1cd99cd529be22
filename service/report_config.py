"""Config section of the statistics reports."""
import msgspec


class ReportConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    target_wait_minutes: int = 30
