"""Config sections of the hall display and the voice announcer."""
import msgspec


class DisplayConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    width: int = 1920
    height: int = 1080
    last_calls: int = 6
    blink_seconds: float = 10.0
    ticker: str = ""


class VoiceConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    repeat: int = 2
    region: str = "north"
