"""What the wait estimator learns from past days' events when the service starts
(CentralService._replay hands it the result of `service_times_from_history`).

Past days only shape the waits printed from then on, which the log records, so a replay
of today's log still rebuilds the same estimator state.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from qms.core.events import Event, TicketCalled, TicketDone

HISTORY_MIN_SAMPLES = 20       # a service needs this many past services to trust its history
NIGHT_MS = 6 * 3600_000        # a counter's first call after a silence this long opens its day
MIN_SERVICE_S, MAX_SERVICE_S = 10.0, 4 * 3600.0   # outside this, a service time is a mistake


@dataclass
class PastDays:
    """`means`: service -> mean service time in seconds (services seen often enough);
    `counts`: how many services each mean is from; `first_calls`: (counter, at) of each
    counter's first call of each day (the estimator turns them into a typical opening delay)."""
    means: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    first_calls: list[tuple[int, int]] = field(default_factory=list)


def service_times_from_history(events: Iterable[Event]) -> PastDays:
    """Mean service time (call to done) per service, in seconds, over past days' events:
    a center's real service times replace the configured guesses from the second day on.
    Also each counter's first call of each day."""
    called: dict[str, tuple[str, int]] = {}
    sums: dict[str, list[float]] = {}
    last_call: dict[int, int] = {}
    first_calls = []
    for e in events:
        if isinstance(e, TicketCalled):
            called[e.ticket_id] = (e.service, e.at)
            if e.at - last_call.get(e.counter, -NIGHT_MS) >= NIGHT_MS:
                first_calls.append((e.counter, e.at))
            last_call[e.counter] = e.at
        elif isinstance(e, TicketDone) and e.ticket_id in called:
            service, at = called.pop(e.ticket_id)
            d = (e.at - at) / 1000
            if MIN_SERVICE_S <= d <= MAX_SERVICE_S:
                sums.setdefault(service, []).append(d)
    return PastDays({s: sum(v) / len(v) for s, v in sums.items() if len(v) >= HISTORY_MIN_SAMPLES},
                    {s: len(v) for s, v in sums.items()}, first_calls)
