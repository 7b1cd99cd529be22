"""Config section of the citizen web page and booking API."""
import msgspec


class WebConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = False
    port: int = 8080
