"""Taking in an offline ticket whose kiosk clock was wrong.

A kiosk prints offline tickets stamped with its own clock. A Raspberry Pi has no RTC:
after a power cut its clock says the last shutdown (yesterday 17:40, say) until NTP
syncs. Such a ticket is in a citizen's hand today; entering it under its stamp would
expire it (an earlier day) without anyone noticing. So a stamp from another day or from
the future is replaced by the service's time of intake, and the reason is recorded
beside the ticket (kv `offline_clock/<ticket id>`, in the same transaction as its event).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable


@dataclasses.dataclass(frozen=True, slots=True)
class Intake:
    issued_at: int               # what the ticket is entered under
    reason: str | None = None    # why that is not the kiosk's stamp (None: it is)

    def record(self, stamp: int) -> bytes:
        return json.dumps({"stamp": stamp, "entered": self.issued_at, "reason": self.reason}).encode()


def offline_intake(stamp: int, now: int, day_of: Callable[[int], str]) -> Intake:
    """The time an offline ticket stamped `stamp` by its kiosk is entered under at `now`."""
    if stamp > now:
        return Intake(now, f"kiosk clock ahead: stamped {(stamp - now) / 1000:.0f} s in the future")
    if day_of(stamp) != day_of(now):
        return Intake(now, f"kiosk clock behind: stamped on {day_of(stamp)}, taken in on {day_of(now)} "
                           "at the service's time, not expired")
    return Intake(stamp)


def record_key(ticket_id: str) -> str:
    return f"offline_clock/{ticket_id}"
