"""Service times for the wait estimator (qms/core/estimate.py): how long a citizen takes at a
counter, per service, and how long a service already running still has to go.

The expected service time of a service is today's mean of observed service times (done -
called) with a prior that counts as a few services: the configured `avg_service_minutes`,
or, from the second day on, the mean of past days. A plain mean rather than a moving
average: single service times spread by ~50 %, so a short memory makes the mean itself
noisy, and a day's mean barely drifts.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

from qms.core.past_days import MAX_SERVICE_S, MIN_SERVICE_S, PastDays

if TYPE_CHECKING:
    from qms.config.site import SiteConfig

PRIOR_WEIGHT = 3               # the configured service time counts as this many services...
HISTORY_WEIGHT_MAX = 30        # ...past days' mean as up to this many (service times drift)
SERVICE_SIGMA = 0.5            # spread of service times (log-normal shape; CV ≈ 0.5)
MIN_LEFT_S = 5.0               # a running service always has at least this long to go

_normal = NormalDist()


class ServiceTimes:
    """Expected service time per service (`avg`, seconds): today's mean with a prior."""

    def __init__(self, cfg: SiteConfig):
        self.prior = {s.id: s.avg_service_minutes * 60.0 for s in cfg.services}
        self.prior_n = dict.fromkeys(self.prior, float(PRIOR_WEIGHT))
        self.reset_day()

    def learn_history(self, past: PastDays) -> None:
        """Past days' means (service_times_from_history) become the priors."""
        for s, secs in past.means.items():
            if s in self.prior:
                self.prior[s] = secs
                self.prior_n[s] = float(min(past.counts.get(s, HISTORY_WEIGHT_MAX), HISTORY_WEIGHT_MAX))
                self._update(s)

    def reset_day(self) -> None:
        self.total = dict.fromkeys(self.prior, 0.0)      # today's service times, summed...
        self.count = dict.fromkeys(self.prior, 0)        # ...and counted
        self.avg: dict[str, float] = {}
        for s in self.prior:
            self._update(s)

    def observe(self, service: str, duration_ms: int) -> None:
        self.total[service] += min(max(duration_ms / 1000.0, MIN_SERVICE_S), MAX_SERVICE_S)
        self.count[service] += 1
        self._update(service)

    def _update(self, s: str) -> None:
        n = self.prior_n[s]
        self.avg[s] = (n * self.prior[s] + self.total[s]) / (n + self.count[s])


def time_left_s(mean: float, elapsed: float, sigma: float = SERVICE_SIGMA) -> float:
    """Median time left of a service that has already run `elapsed` seconds, for log-normal
    service times of this mean. A service that runs long tends to run longer still, and the
    median, not the mean, is what a printed time should aim at: the error measured is
    absolute, and the time left is skewed (a few services run very long)."""
    mu = math.log(mean) - sigma * sigma / 2
    done = _normal.cdf((math.log(elapsed) - mu) / sigma) if elapsed > 0 else 0.0
    # the median of what is left: halfway through the probability not yet used up
    q = min(max(done + 0.5 * (1 - done), 1e-9), 1 - 1e-9)
    return max(math.exp(mu + sigma * _normal.inv_cdf(q)) - elapsed, MIN_LEFT_S)
