"""Config section of the statistics reports (`[report]` in the site config)."""
from typing import Annotated, Literal

import msgspec


class ReportPoint(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Another point of the same center (a sub-point), included by `qms report --center`."""
    config: str                     # its site config; relative paths are relative to this file
    db: str = ""                    # its event log; default <its state_dir>/service.sqlite


class ReportConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # share of citizens called within this wait is the center's headline figure
    target_wait_minutes: Annotated[int, msgspec.Meta(ge=1, le=480)] = 30
    # how many levels the counters' rating keys have; level 1 is the least satisfied
    rating_levels: Annotated[int, msgspec.Meta(ge=2, le=5)] = 4
    lang: Literal["vi", "en"] = "vi"
    points: list[ReportPoint] = []
