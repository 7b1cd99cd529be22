"""The answers of the city's public read-only API that a point reads (/api/v1/suggest,
/api/v1/city; qms/city/server.py writes them). Tolerant: unknown fields are ignored, so a
newer city does not blank an older point's pages or hall display."""
from __future__ import annotations

import msgspec

# The city names a point when its wait is at most half and at least 15 minutes shorter than
# a new ticket's here (qms/city/server.py); the same rule is applied again to this ticket's
# own remaining wait, so a citizen near the front is not sent elsewhere.
MIN_GAIN_S = 15 * 60


class Suggestion(msgspec.Struct):
    site: str
    name: str
    est_wait_s: float
    center: str = ""
    address: str = ""
    waiting: int | None = None


class SuggestReply(msgspec.Struct):
    suggestion: Suggestion | None = None


class PointService(msgspec.Struct):
    id: str
    name_vi: str = ""
    name_en: str = ""
    waiting: int | None = None
    est_wait_s: float | None = None
    open: bool = False


class CityPoint(msgspec.Struct):
    site: str
    center: str
    name: str
    address: str = ""
    stale: bool = True
    open: bool = False
    services: list[PointService] = []


suggest_decoder = msgspec.json.Decoder(SuggestReply)
board_decoder = msgspec.json.Decoder(list[CityPoint])


def markedly_shorter(other_s: float, mine_s: float | None) -> bool:
    return mine_s is not None and other_s * 2 <= mine_s and mine_s - other_s >= MIN_GAIN_S
