"""Estimated wait for a new ticket.

Method (documented in docs/queue.md): the service time of each service is a moving
average of observed service times (done - called), starting from the configured
`avg_service_minutes`. Each counter that serves a service gives it a share of its time,
1 / (number of services it serves). The wait for a ticket with `k` people ahead is
(k + 0.5) x average service time / (sum of the shares of the open counters), where
"open" means active today and not paused; before any counter opened, all the counters
configured for the service count.

The estimator's state is changed only from events (via `observe_*`), so a replay of
the log rebuilds it exactly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.config import SiteConfig
    from service.queue import QueueCore, Ticket


class WaitEstimator:
    def __init__(self, cfg: "SiteConfig"):
        self.cfg = cfg
        self.alpha = cfg.queue.service_time_alpha
        self.prior_s = {s.id: s.avg_service_minutes * 60.0 for s in cfg.services}
        self.reset_day()

    def reset_day(self) -> None:
        self.avg_s = dict(self.prior_s)

    def observe_call(self, core: "QueueCore", t: "Ticket", at: int) -> None:
        pass

    def observe_service(self, core: "QueueCore", t: "Ticket", duration_ms: int) -> None:
        d = min(max(duration_ms / 1000.0, 10.0), 4 * 3600.0)   # ignore absurd outliers
        a = self.alpha
        self.avg_s[t.service] = (1 - a) * self.avg_s[t.service] + a * d

    def capacity(self, core: "QueueCore", service: str) -> float:
        shares = [(c, 1.0 / len(c.services)) for c in core.counters.values() if service in c.services]
        open_ = sum(sh for c, sh in shares if c.active and not c.paused)
        if open_ > 0:
            return open_
        if any(c.active for c, _ in shares):
            return 0.0        # counters exist but are all paused: no estimate beyond the prior
        return sum(sh for _, sh in shares)

    def estimate(self, core: "QueueCore", service: str, people_ahead: int, priority: bool,
                 now: int) -> int:
        cap = self.capacity(core, service)
        if cap <= 0:
            cap = 0.5
        return int(round((people_ahead + 0.5) * self.avg_s[service] / cap))
