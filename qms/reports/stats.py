"""The figures of a report, computed from event logs alone (see docs/reports.md).

One pass over each point's events folds them into per-ticket facts; a second pass over
the tickets adds each one to the groups it belongs to (whole report, point, service,
counter, hour of day, day). What belongs where:

- issued, wait (first call - issued_at), not called: by the service the ticket was issued
  for and the hour it was issued; the wait also by the counter that first called it.
- served, service time (done - last call), priority served, no-shows: by the service and
  counter that served (or last called) it, and the hour that happened.
- transferred: by the service being served and the counter that transferred it.
- refused, ratings, print_failed (issued tickets a kiosk could not print): as the event says.

Median is the usual median; p90 is the nearest-rank 90th percentile (the smallest value
with at least 90 % of values at or below it), so every figure is a real observed wait.
"""
from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from qms.config.site import SiteConfig, minutes_of
from qms.reports.log import read_rows

SECTIONS = ("total", "point", "service", "counter", "hour", "day")
REFUSED_CAP = {"daily_cap"}
REFUSED_CUTOFF = {"past_cutoff"}


@dataclass
class Point:
    """One point of a center: its config and its event log (a SQLite file, or `rows`: a
    function (since, until) -> (rows, skipped) reading another store, e.g. the city's)."""
    cfg: SiteConfig
    db: Path
    rows: Callable[[str, str], tuple[list, int]] | None = None


class Figures(msgspec.Struct, kw_only=True):
    """One row of a report. Times are minutes, shares percent; None where there is no data."""
    section: str
    key: str
    label_vi: str
    label_en: str
    issued: int = 0
    served: int = 0
    no_show: int = 0
    transferred: int = 0
    refused_cap: int = 0
    refused_cutoff: int = 0
    refused_other: int = 0
    not_called: int = 0
    priority_served: int = 0
    wait_median_min: float | None = None
    wait_p90_min: float | None = None
    wait_max_min: float | None = None
    within_target_pct: float | None = None
    service_median_min: float | None = None
    service_p90_min: float | None = None
    service_max_min: float | None = None
    ratings: int = 0
    rating_1: int = 0
    rating_2: int = 0
    rating_3: int = 0
    rating_4: int = 0
    rating_5: int = 0
    rating_mean: float | None = None
    print_failed: int = 0

    @property
    def refused(self) -> int:
        return self.refused_cap + self.refused_cutoff + self.refused_other

    def rating_count(self, level: int) -> int:
        return getattr(self, f"rating_{level}")

    def rating_share_pct(self, level: int) -> float | None:
        return round(100.0 * self.rating_count(level) / self.ratings, 1) if self.ratings else None


class Report(msgspec.Struct, kw_only=True):
    center: str
    points: list[str]
    since: str
    until: str
    target_wait_minutes: int
    rating_levels: int
    rows: list[Figures]
    skipped_events: int = 0
    timezone: str = ""                  # the site's: "generated at" is said in it

    def section(self, name: str) -> list[Figures]:
        return [r for r in self.rows if r.section == name]

    @property
    def total(self) -> Figures:
        return self.section("total")[0]


# ---------------------------------------------------------------- statistics helpers
def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def nearest_rank(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _minutes(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 60_000, 1)


# ---------------------------------------------------------------- accumulation
class _Acc:
    __slots__ = ("issued", "served", "no_show", "transferred", "refused_cap", "refused_cutoff",
                 "refused_other", "not_called", "priority_served", "waits", "service_times",
                 "ratings", "print_failed")

    def __init__(self) -> None:
        self.issued = self.served = self.no_show = self.transferred = 0
        self.refused_cap = self.refused_cutoff = self.refused_other = 0
        self.not_called = self.priority_served = self.print_failed = 0
        self.waits: list[int] = []
        self.service_times: list[int] = []
        self.ratings = [0] * 6

    def counts(self) -> list[int]:
        """The counts, in the order of COUNTS (what a city's per-day aggregate stores)."""
        return [self.issued, self.served, self.no_show, self.transferred, self.refused_cap,
                self.refused_cutoff, self.refused_other, self.not_called, self.priority_served,
                self.print_failed, *self.ratings[1:]]

    def figures(self, section: str, key: str, label_vi: str, label_en: str,
                target_ms: int) -> Figures:
        return make_figures(section, key, label_vi, label_en, self.counts(),
                            dist_of(sorted(self.waits), target_ms), dist_of(sorted(self.service_times), target_ms))


# issued .. print_failed, then ratings 1..5
COUNTS = ("issued", "served", "no_show", "transferred", "refused_cap", "refused_cutoff", "refused_other",
          "not_called", "priority_served", "print_failed")
N_COUNTS = len(COUNTS) + 5


class Dist(msgspec.Struct, array_like=True):
    """What a report says of a distribution of times (ms): median, nearest-rank p90, max,
    and how many are at or below the target."""
    n: int
    median: float
    p90: float
    max: float
    within: int


def dist_of(sorted_values: list, target_ms: int) -> Dist | None:
    if not sorted_values:
        return None
    return Dist(len(sorted_values), median(sorted_values), nearest_rank(sorted_values, 0.9), sorted_values[-1],
                sum(1 for w in sorted_values if w <= target_ms))


def make_figures(section: str, key: str, label_vi: str, label_en: str, counts, waits: Dist | None,
                 times: Dist | None) -> Figures:
    """One row of a report from its counts (in COUNTS order) and its two distributions: the
    one place that rounds and divides, for a point's fold and the city's merged aggregates."""
    c = [int(x) for x in counts]
    ratings = [0, *c[len(COUNTS):]]
    n_rated = sum(ratings)
    return Figures(
        section=section, key=key, label_vi=label_vi, label_en=label_en,
        **dict(zip(COUNTS, c)),
        wait_median_min=_minutes(waits.median) if waits else None,
        wait_p90_min=_minutes(waits.p90) if waits else None,
        wait_max_min=_minutes(waits.max) if waits else None,
        within_target_pct=round(100.0 * waits.within / waits.n, 1) if waits else None,
        service_median_min=_minutes(times.median) if times else None,
        service_p90_min=_minutes(times.p90) if times else None,
        service_max_min=_minutes(times.max) if times else None,
        ratings=n_rated, rating_1=ratings[1], rating_2=ratings[2],
        rating_3=ratings[3], rating_4=ratings[4], rating_5=ratings[5],
        rating_mean=round(sum(i * n for i, n in enumerate(ratings)) / n_rated, 2) if n_rated else None,
    )


class _Ticket:
    __slots__ = ("service", "priority", "issued_at", "first_call", "first_counter", "call_at",
                 "counter", "current_service", "state", "ended_at")

    def __init__(self, service: str, priority: str | None, issued_at: int):
        self.service = self.current_service = service
        self.priority = priority
        self.issued_at = issued_at
        self.first_call: int | None = None
        self.first_counter = 0
        self.call_at = 0
        self.counter = 0
        self.state = "waiting"
        self.ended_at = 0


class LocalTime:
    """(day, hour) of a Unix ms time in the site's zone, cached per quarter hour: every
    real time zone's offset is a multiple of 15 minutes."""

    def __init__(self, cfg: SiteConfig):
        self.tz = cfg.tz
        self.cache: dict[int, tuple[str, int]] = {}

    def __call__(self, ms: int) -> tuple[str, int]:
        q = ms // 900_000
        v = self.cache.get(q)
        if v is None:
            t = dt.datetime.fromtimestamp(q * 900, self.tz)
            v = self.cache[q] = (t.date().isoformat(), t.hour)
        return v


class _Groups:
    """The accumulators of a fold, by (section, key). A wait or a service time goes to
    several groups at once: `add_wait` / `add_service_time` say which, so another kind of
    groups (qms.city.daily's) can keep each time once, with the groups it belongs to."""

    def __init__(self) -> None:
        self.acc: dict[tuple[str, str], _Acc] = {}

    def __call__(self, section: str, key: str) -> _Acc:
        k = (section, key)
        a = self.acc.get(k)
        if a is None:
            a = self.acc[k] = _Acc()
        return a

    def add_wait(self, ms: int, issue_groups: tuple[_Acc, ...], first_counter: _Acc) -> None:
        for a in issue_groups:
            a.waits.append(ms)
        first_counter.waits.append(ms)

    def add_service_time(self, ms: int, done_groups: tuple[_Acc, ...]) -> None:
        for a in done_groups:
            a.service_times.append(ms)


def _fold_point(groups: _Groups, point_key: str, multi: bool, cfg: SiteConfig, rows) -> None:
    local = LocalTime(cfg)
    total = groups("total", "")
    point = groups("point", point_key)

    def counter_key(n: int) -> str:
        return f"{point_key}:{n}" if multi else str(n)

    by_quarter: dict[int, tuple[_Acc, _Acc]] = {}        # local hour is constant per quarter
    by_service: dict[str, _Acc] = {}
    by_counter: dict[int, _Acc] = {}

    def event_groups(service: str, counter: int | None, at: int) -> tuple[_Acc, ...]:
        """The groups an event at `at` for this service (and counter) adds to, always in the
        order total, point, service, hour, day (, counter)."""
        q = at // 900_000
        hd = by_quarter.get(q)
        if hd is None:
            day, hour = local(at)
            hd = by_quarter[q] = (groups("hour", f"{hour:02d}"), groups("day", day))
        sa = by_service.get(service)
        if sa is None:
            sa = by_service[service] = groups("service", service)
        if not counter:
            return (total, point, sa) + hd
        ca = by_counter.get(counter)
        if ca is None:
            ca = by_counter[counter] = groups("counter", counter_key(counter))
        return (total, point, sa) + hd + (ca,)

    tickets: dict[str, _Ticket] = {}
    for r in rows:
        kind = r.type
        if kind == "ticket.issued":
            tickets[r.ticket_id] = _Ticket(r.service, r.priority, r.issued_at)
        elif kind == "ticket.called":
            t = tickets.get(r.ticket_id)
            if t is None:
                continue
            if t.first_call is None:
                t.first_call, t.first_counter = r.at, r.counter
            t.call_at, t.counter, t.current_service, t.state = r.at, r.counter, r.service, "called"
        elif kind == "ticket.done":
            t = tickets.get(r.ticket_id)
            if t is not None and t.state == "called":
                t.state, t.ended_at, t.counter = "done", r.at, r.counter
        elif kind == "ticket.no_show":
            t = tickets.get(r.ticket_id)
            if t is not None and t.state == "called":
                t.state, t.ended_at = "no_show", r.at
        elif kind == "ticket.transferred":
            t = tickets.get(r.ticket_id)
            if t is None:
                continue
            for a in event_groups(t.current_service, r.from_counter, r.at):
                a.transferred += 1
            t.state, t.current_service = "waiting", r.to_service
        elif kind == "ticket.refused":
            for a in event_groups(r.service, None, r.at):
                if r.reason in REFUSED_CAP:
                    a.refused_cap += 1
                elif r.reason in REFUSED_CUTOFF:
                    a.refused_cutoff += 1
                else:
                    a.refused_other += 1
        elif kind == "ticket.print_failed":
            for a in event_groups(r.service, None, r.at):
                a.print_failed += 1
        elif kind == "rating.submitted":
            if 1 <= r.level <= 5:
                for a in event_groups(r.service, r.counter, r.at):
                    a.ratings[r.level] += 1

    for t in tickets.values():
        issue_groups = event_groups(t.service, None, t.issued_at)
        called = t.first_call is not None
        for a in issue_groups:
            a.issued += 1
            a.not_called += not called
        if called:
            groups.add_wait(t.first_call - t.issued_at, issue_groups,
                            groups("counter", counter_key(t.first_counter)))
        if t.state == "done":
            prio = t.priority is not None
            done_groups = event_groups(t.current_service, t.counter, t.ended_at)
            for a in done_groups:
                a.served += 1
                a.priority_served += prio
            groups.add_service_time(t.ended_at - t.call_at, done_groups)
        elif t.state == "no_show":
            for a in event_groups(t.current_service, t.counter, t.ended_at):
                a.no_show += 1


# ---------------------------------------------------------------- the report
def days_between(since: str, until: str) -> list[str]:
    d0, d1 = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    return [(d0 + dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]


def _hours_open(points: list[Point]) -> range:
    lo = min(max(0, minutes_of(p.cfg.hours.open) - p.cfg.hours.early_minutes) // 60 for p in points)
    hi = max((minutes_of(p.cfg.hours.close) - 1) // 60 for p in points)
    return range(lo, hi + 1)


def build_report(points: list[Point], since: str, until: str, target_wait_minutes: int | None = None,
                 rating_levels: int | None = None) -> Report:
    """Figures for the days since..until (inclusive) over the given points (the first is the
    main point: its config names the center and gives the report settings)."""
    main = points[0].cfg
    target = target_wait_minutes or main.report.target_wait_minutes
    multi = len(points) > 1
    groups = _Groups()
    skipped = 0
    for p in points:
        rows, bad = p.rows(since, until) if p.rows else read_rows(p.db, since, until)
        skipped += bad
        _fold_point(groups, p.cfg.site.id, multi, p.cfg, rows)
    target_ms = target * 60_000

    def row(section: str, key: str, vi: str, en: str) -> Figures:
        acc = groups.acc.get((section, key)) or _Acc()
        return acc.figures(section, key, vi, en, target_ms)

    return assemble(points, since, until, target, rating_levels, groups.acc.keys(), row, skipped)


def assemble(points: list[Point], since: str, until: str, target: int, rating_levels: int | None,
             keys, row, skipped: int) -> Report:
    """The report's rows in their order: `keys` are the (section, key) groups the fold
    found, `row(section, key, label_vi, label_en)` makes one row (of a fold, or of the
    city's merged per-day aggregates)."""
    main = points[0].cfg
    multi = len(points) > 1
    keys = list(keys)
    rows = [row("total", "", "Tổng cộng", "Total")]
    if multi:
        rows += [row("point", p.cfg.site.id, p.cfg.site.name, p.cfg.site.name) for p in points]
    rows += _service_rows(points, keys, row)
    rows += _counter_rows(points, multi, keys, row)
    hours = set(_hours_open(points)) | {int(k) for s, k in keys if s == "hour"}
    rows += [row("hour", f"{h:02d}", f"{h:02d}:00–{h + 1:02d}:00", f"{h:02d}:00–{h + 1:02d}:00")
             for h in sorted(hours)]
    days = days_between(since, until)
    if len(days) > 1:
        rows += [row("day", d, d, d) for d in days]
    return Report(timezone=main.site.timezone, center=main.site.center, points=[p.cfg.site.name for p in points], since=since,
                  until=until, target_wait_minutes=target,
                  rating_levels=rating_levels or main.report.rating_levels, rows=rows,
                  skipped_events=skipped)


def _service_rows(points: list[Point], keys, row) -> list[Figures]:
    names: dict[str, tuple[str, str]] = {}
    for p in points:
        for s in p.cfg.services:
            names.setdefault(s.id, (s.name_vi, s.name_en))
    for s, k in keys:                # a service no longer configured still shows in the report
        if s == "service":
            names.setdefault(k, (k, k))
    return [row("service", sid, vi, en) for sid, (vi, en) in names.items()]


def _counter_rows(points: list[Point], multi: bool, keys, row) -> list[Figures]:
    out, seen = [], set()
    for p in points:
        for c in p.cfg.counters:
            key = f"{p.cfg.site.id}:{c.number}" if multi else str(c.number)
            seen.add(key)
            vi = c.name_vi or f"Quầy {c.number}"
            en = c.name_en or f"Counter {c.number}"
            if multi:
                vi, en = f"{p.cfg.site.name} · {vi}", f"{p.cfg.site.name} · {en}"
            out.append(row("counter", key, vi, en))
    for s, k in keys:
        if s == "counter" and k not in seen:
            out.append(row("counter", k, f"Quầy {k}", f"Counter {k}"))
    return out
