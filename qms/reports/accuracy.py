"""How good was the wait printed on tickets? Computed from a point's event log alone.

For every ticket the service issued (offline tickets carry no estimate) and later called:
error = |est_wait_s printed on the ticket - actual wait (first call - issued_at)|.
The baseline is the naive estimate a simple queue machine prints:
people ahead x average service time / open counters, where
- people ahead is the count printed on the ticket (TicketIssued.people_ahead),
- average service time is the mean of the service's service times (done - call) seen so
  far that day, starting from the configured `avg_service_minutes`,
- open counters are the counters configured for the service that are open at that moment
  (have acted today and are not paused); before any opened, all of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qms.config.site import SiteConfig
from qms.reports.log import read_rows
from qms.reports.stats import LocalTime


@dataclass
class Accuracy:
    tickets: int
    mae_s: float
    naive_mae_s: float
    bias_s: float               # mean of (estimate - actual): < 0 means we promise too little wait

    def as_dict(self) -> dict:
        return {"estimated_tickets": self.tickets,
                "wait_mae_minutes": round(self.mae_s / 60, 2),
                "wait_mae_naive_minutes": round(self.naive_mae_s / 60, 2),
                "wait_bias_minutes": round(self.bias_s / 60, 2),
                "mae_ratio_vs_naive": round(self.mae_s / self.naive_mae_s, 3) if self.naive_mae_s else None}


def estimate_accuracy(cfg: SiteConfig, db: str | Path, since: str, until: str) -> Accuracy:
    rows, _ = read_rows(db, since, until)
    serves = {s.id: [c.number for c in cfg.counters if s.id in c.services] for s in cfg.services}
    prior = {s.id: s.avg_service_minutes * 60_000 for s in cfg.services}
    active: set[int] = set()
    paused: set[int] = set()
    sums: dict[str, list[float]] = {}           # service -> [total ms, count]
    day, local = None, LocalTime(cfg)
    predicted: dict[str, tuple[int, float]] = {}    # ticket -> (ours ms, naive ms)
    issued_at: dict[str, int] = {}
    called_at: dict[str, tuple[int, str]] = {}
    errors: list[tuple[float, float, float]] = []
    for r in rows:
        if r.type == "ticket.issued":
            if r.source == "offline":
                continue
            if day != local(r.at)[0]:          # a new day: no counter has acted yet
                day = local(r.at)[0]
                active.clear(), paused.clear(), sums.clear()
            counters = serves.get(r.service, [])
            open_ = [n for n in counters if n in active and n not in paused] or counters
            total, n = sums.get(r.service, (0.0, 0))
            avg = (prior.get(r.service, 8 * 60_000) + total) / (n + 1)
            naive = r.people_ahead * avg / max(1, len(open_))
            predicted[r.ticket_id] = (r.est_wait_s * 1000, naive)
            issued_at[r.ticket_id] = r.issued_at
        elif r.type == "ticket.called":
            active.add(r.counter)
            if r.ticket_id in predicted and r.ticket_id not in called_at:
                ours, naive = predicted[r.ticket_id]
                actual = r.at - issued_at[r.ticket_id]
                errors.append((ours - actual, naive - actual, actual))
            called_at[r.ticket_id] = (r.at, r.service)
        elif r.type == "ticket.done" and r.ticket_id in called_at:
            at, service = called_at[r.ticket_id]
            s = sums.setdefault(service, [0.0, 0])
            s[0] += r.at - at
            s[1] += 1
        elif r.type == "counter.paused":
            active.add(r.counter)
            paused.add(r.counter)
        elif r.type == "counter.resumed":
            active.add(r.counter)
            paused.discard(r.counter)
    n = len(errors)
    if not n:
        return Accuracy(0, 0.0, 0.0, 0.0)
    return Accuracy(n, sum(abs(e[0]) for e in errors) / n / 1000,
                    sum(abs(e[1]) for e in errors) / n / 1000, sum(e[0] for e in errors) / n / 1000)
