"""Config section of the citizen web page, the booking API and the service-level alerts.

Tokens are never stored in the config: only their SHA-256 (`qms web --new-token NAME`
prints a fresh token once and the line to paste here). A token is 256 random bits, so a
plain hash is enough; a slow password hash would only make every API call slower.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
ClientId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
PerMinute = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]


class ApiToken(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: ClientId                   # who holds it: an integrator ("dvc-hanoi") or a kiosk
    sha256: Sha256Hex              # hex SHA-256 of the token
    # booking: create/read/cancel bookings; checkin: turn a booking code into a ticket (kiosks)
    scope: Literal["booking", "checkin"]


class WebConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = False
    bind: str = "0.0.0.0"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8080
    device_id: str = "web"         # MQTT client id of `qms web` (role "web")
    tokens: list[ApiToken] = []

    # booked numbers
    booking_per_reference_per_day: Annotated[int, msgspec.Meta(ge=1, le=20)] = 2
    booking_cap_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50   # of a service's daily cap
    booking_days_ahead: Annotated[int, msgspec.Meta(ge=0, le=90)] = 14
    checkin_early_minutes: Annotated[int, msgspec.Meta(ge=0, le=240)] = 15
    booking_min_window_minutes: Annotated[int, msgspec.Meta(ge=5, le=600)] = 15

    # service-level alerts (0 = off)
    alert_wait_minutes: Annotated[int, msgspec.Meta(ge=0, le=600)] = 45
    alert_pause_minutes: Annotated[int, msgspec.Meta(ge=0, le=600)] = 20
    alert_check_seconds: Annotated[float, msgspec.Meta(ge=0.1, le=600)] = 10.0

    # abuse limits, per client address (per token for the API)
    pages_per_minute: PerMinute = 120
    api_per_minute: PerMinute = 60
    checkin_failures_per_minute: PerMinute = 10
    max_streams: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 400
    follow_interval_ms: Annotated[int, msgspec.Meta(ge=20, le=5000)] = 100


def ticket_url(public_url: str, ticket_id: str) -> str:
    """The address printed as a QR code on a ticket."""
    return f"{public_url.rstrip('/')}/t/{ticket_id}"
