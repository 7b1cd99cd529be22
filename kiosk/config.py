"""Config section of the kiosk (and robot)."""
import msgspec


class KioskConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    request_timeout_s: float = 1.0
    robot: bool = False

