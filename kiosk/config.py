"""Config sections of the kiosk (and robot) and of the counter terminal."""
import msgspec


class KioskConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    request_timeout_s: float = 1.0
    robot: bool = False


class CounterTerminalConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rating_seconds: float = 30.0
