"""Future arrivals for the wait estimator's look-ahead run (qms/core/estimate.py).

A curve answers two questions about one service's expected arrivals from now on:
`at(t)`, how many tickets are expected in the next t seconds (fractional), and
`time_of(k)`, when the expected count reaches k (None: not before the cut-off).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qms.core.state import QueueView

RATE_WINDOW_S = 30 * 60        # the recent arrival rate is measured over this window...
ARRIVAL_FADE_S = 30 * 60       # ...and projected ahead fading with this time constant


class FadingCurve:
    """The recent rate, trusted less the further ahead we look (peaks pass):
    expected arrivals in t seconds = rate x fade x (1 - e^(-t/fade)), none after `stop`."""

    __slots__ = ("rate", "fade", "stop")

    def __init__(self, rate: float, stop: float, fade: float = ARRIVAL_FADE_S):
        self.rate, self.stop, self.fade = rate, stop, fade

    def at(self, t: float) -> float:
        t = min(t, self.stop)
        return self.rate * self.fade * -math.expm1(-t / self.fade) if t > 0 else 0.0

    def time_of(self, k: float) -> float | None:
        x = 1 - k / (self.rate * self.fade)
        if x <= 0:
            return None
        t = -self.fade * math.log(x)
        return t if t < self.stop else None


def whole(expected: float) -> int:
    """Tickets the run plays as arrived once `expected` are expected: the k-th comes when
    k - 1/2 are expected (rounding, not truncating). Truncating would hold every ticket
    back until a whole one is expected, which for a quiet stream (one priority ticket an
    hour) means never within a typical wait, though some arrive in most hours."""
    return int(expected + 0.5 + 1e-9)      # (+1e-9: at(time_of(k - 1/2)) may fall short by a hair)


NEVER = float("inf")


def next_whole_at(curve: FadingCurve, after: float) -> float:
    """When the run's next whole ticket of this curve arrives after `after` (see whole);
    NEVER if not before the cut-off."""
    t = curve.time_of(whole(curve.at(max(after, 0.0))) + 0.5)
    if t is None:
        return NEVER
    return max(t, after + 1e-3)     # a crossing "now" by float rounding: just after now


def recent_curves(core: QueueView, now: int, stop: float) -> tuple[dict, dict[str, float]]:
    """service -> curve of its expected arrivals from now (from the rate of the last half
    hour), and each service's priority share."""
    counts = dict.fromkeys(core.lines, 0)
    prios = dict.fromkeys(core.lines, 0)
    since = now - RATE_WINDOW_S * 1000
    tickets = core.tickets
    if not tickets:
        return {}, dict.fromkeys(counts, 0.0)
    for t in reversed(tickets.values()):
        if t.issued_at < since:
            break
        if t.source != "offline" and t.service in counts:
            counts[t.service] += 1
            prios[t.service] += t.priority is not None
    day_first = next(iter(tickets.values())).issued_at
    window = min(max((now - max(since, day_first)) / 1000, 600.0), RATE_WINDOW_S)
    return ({s: FadingCurve(n / window, stop) for s, n in counts.items() if n},
            {s: prios[s] / n if n else 0.0 for s, n in counts.items()})
