"""Config section `[city]`: where this point finds the city's central tier (docs/city.md).

Only for what the point shows from the city: another point with a markedly shorter wait
on the citizen's ticket page, and the other points of this center on the board and on the
hall display (qms/citylink reads it). The uplink's address and token are not here (they are
the uplink unit's settings). Absent, or an empty `public_url`: nothing from the city.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

PUBLIC_URL = r"https?://[^\s/?#]+(/[^\s?#]*)?"


class CityConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # the city page's address, e.g. "https://city.example.vn" (its /api/v1 is read)
    public_url: str = ""
    # a page never waits for the city: the answer is fetched in the background, kept this long
    cache_seconds: Annotated[float, msgspec.Meta(ge=1, le=600)] = 30.0
    timeout_seconds: Annotated[float, msgspec.Meta(ge=0.1, le=30)] = 2.0
    # the board and the hall display list the other points of this center (site.center)
    board_points: bool = True
