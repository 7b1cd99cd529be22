"""`qms simulate`: play a realistic day through the real central service.

The citizens and the clerks are simulated; the service is not. Each action becomes a real
protocol command (JSON with the envelope, on the device's command topic) handed to
`CentralService.process` - the same entry point the MQTT loop uses - with the service's
clock injected, so a whole day runs in seconds and lands in a real event log that
`qms report` reads. Acks and retained state come back through `LoopbackLink`, which
stands in for the broker connection (no Mosquitto needed).

The day (DayProfile): arrivals by hour with people queueing before the doors open, a
morning peak and a lunchtime wave; a service mix; log-normal service times per service
(true means may differ from the configured averages, as they do in real centers);
no-shows that grow with the wait; staggered lunch breaks; transfers; ratings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import heapq
import itertools
import json
import logging
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from qms.config.site import Device, SiteConfig, minutes_of
from qms.mqtt.outbox import new_id
from qms.protocol import messages as m
from qms.protocol.topics import Topics

log = logging.getLogger("qms.simulate")

MIN = 60_000

# share of walk-ins per service of the default ward menu (chứng thực dominates, see
# shared/notes/domain.md); services not listed get a share by their daily cap
WARD_MIX = {"chung-thuc": 0.45, "nhan-ket-qua": 0.18, "ho-tich": 0.12, "bhxh-bhyt": 0.07,
            "ho-kinh-doanh": 0.05, "van-hoa-xa-hoi": 0.05, "dat-dai": 0.05, "xay-dung": 0.03}
# real mean service time / configured average: configs are rarely exact
WARD_SPEED = {"chung-thuc": 1.2, "ho-tich": 0.8, "dat-dai": 1.1, "nhan-ket-qua": 0.8}
# weight of arrivals per local hour: queue before opening, morning peak, lunchtime wave
ARRIVALS_BY_HOUR = {7: 1.0, 8: 1.6, 9: 1.4, 10: 1.0, 11: 0.8, 12: 1.1, 13: 0.9, 14: 0.8,
                    15: 0.6, 16: 0.4}


@dataclass
class DayProfile:
    tickets: int = 320                     # arrivals (some are refused at cut-off or cap)
    arrivals_by_hour: dict[int, float] = field(default_factory=lambda: dict(ARRIVALS_BY_HOUR))
    mix: dict[str, float] = field(default_factory=dict)        # default: WARD_MIX / caps
    speed: dict[str, float] = field(default_factory=lambda: dict(WARD_SPEED))
    service_sigma: float = 0.5             # log-normal shape of service times
    priority_share: float = 0.08
    no_show_base: float = 0.03             # chance a called citizen is gone...
    no_show_per_hour: float = 0.12         # ...growing with the time waited
    transfer_share: float = 0.02
    rating_share: float = 0.7
    rating_weights: tuple[float, ...] = (0.03, 0.07, 0.35, 0.55)    # level 1..n
    lunch_minutes: int = 45                # staggered breaks from 11:30
    rated: bool = True                     # False: a point without rating keys
    # how clerks take their breaks: "pause" (press pause, resume after), "no_pause" (leave
    # after their citizen without pressing anything, call again when back), "skip" (work
    # through), or "mixed" (each clerk draws one of the three every day)
    break_mode: str = "pause"
    late_open: dict[int, int] = field(default_factory=dict)      # counter -> minutes late
    close_early: dict[int, str] = field(default_factory=dict)    # counter -> "HH:MM": stops then
    meetings: list[tuple[int, str, int]] = field(default_factory=list)  # (counter, "HH:MM", minutes)


# Named days for the accuracy benchmark (bench/report.py): each is a way real centers
# depart from the plan the config describes.
def scenario(name: str, tickets: int = 320) -> DayProfile:
    if name == "breaks_paused":
        return DayProfile(tickets=tickets)
    if name == "breaks_no_pause":
        return DayProfile(tickets=tickets, break_mode="no_pause")
    if name == "breaks_skipped":
        return DayProfile(tickets=tickets, break_mode="skip")
    if name == "breaks_mixed":
        return DayProfile(tickets=tickets, break_mode="mixed")
    if name == "late_opening":      # two counters start 40 and 25 minutes late
        return DayProfile(tickets=tickets, late_open={2: 40, 4: 25})
    if name == "closing_early":     # two clerks leave at 15:00 and 15:30
        return DayProfile(tickets=tickets, close_early={1: "15:00", 3: "15:30"})
    if name == "meeting":           # a counter paused an hour for a meeting, mid-morning
        return DayProfile(tickets=tickets, meetings=[(2, "09:30", 60), (6, "14:00", 45)])
    if name == "busy_monday":       # the week's rush: more people, heavier morning
        hours = {**ARRIVALS_BY_HOUR, 7: 1.6, 8: 2.2, 9: 1.8}
        return DayProfile(tickets=int(tickets * 1.4), arrivals_by_hour=hours)
    raise ValueError(f"unknown scenario {name!r}")


SCENARIOS = ("breaks_paused", "breaks_no_pause", "breaks_skipped", "breaks_mixed", "late_opening",
             "closing_early", "meeting", "busy_monday")


class LoopbackLink:
    """Stands in for `MqttLink`: keeps the service's acks and retained state in memory."""

    def __init__(self) -> None:
        self.acks: dict[str, m.Ack] = {}
        self.retained: dict[str, bytes] = {}
        self.facts = 0

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                correlation: bytes | None = None, response_topic: str | None = None):
        if "/ack/" in topic:
            ack = m.decode_ack(payload)
            self.acks[ack.id] = ack
        elif retain:
            self.retained[topic] = payload
        else:
            self.facts += 1

    def publish_many(self, messages) -> None:
        for topic, payload, qos, retain, corr in messages:
            self.publish(topic, payload, qos, retain, corr)

    def stop(self) -> None:
        pass

    def wait_connected(self, timeout: float) -> bool:
        return True


@dataclass
class _Citizen:
    ticket_id: str
    service: str
    arrived: int
    will_rate: bool
    rating: int
    patience_draw: float


@dataclass
class _Clerk:
    counter: int
    dev: str
    services: list[str]
    state: str = "off"            # off | idle | waking | busy | paused | away | gone
    lunch_at: int = 0
    lunch_minutes: int = 0        # from [[hours.breaks]]; 0: the profile's
    current: str | None = None
    break_mode: str = "pause"
    leave_at: int = 0             # closes early: stops after the citizen being served then
    meetings: list[tuple[int, int]] = field(default_factory=list)   # (at, minutes), in order


class DaySimulation:
    """One simulated day at one point, through a real CentralService."""

    def __init__(self, cfg: SiteConfig, db: Path, day: dt.date, profile: DayProfile | None = None,
                 seed: int = 1):
        from qms.service.app import CentralService  # the real service
        self.cfg = cfg
        self.profile = profile or DayProfile()
        self.rng = random.Random(seed)
        self.topics = Topics(cfg.site.id)
        self.day = day
        self.now = self._at(day, cfg.hours.open) - 60 * MIN
        self._ensure_counter_devices()
        self.kiosk = next((d.id for d in cfg.devices if d.role == "kiosk"), "sim-kiosk")
        self.svc = CentralService(cfg, db, clock=lambda: self.now, device_id="service")
        self.svc.link = self.link = LoopbackLink()    # the MQTT link is never started
        # a simulation's log is disposable: skip the per-commit fsync that makes it durable
        self.svc.store.conn.execute("PRAGMA synchronous=OFF")
        self.seq: dict[str, itertools.count] = {}   # per device, as real devices number them
        self.queue: list[tuple[int, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.citizens: dict[str, _Citizen] = {}
        self.clerks = [_Clerk(c.number, self._counter_dev(c.number), list(c.services))
                       for c in cfg.counters]
        self.counts = {"arrivals": 0, "issued": 0, "refused": 0, "commands": 0}
        self._planned = False

    # ------------------------------------------------------------ set-up
    def _at(self, day: dt.date, hhmm: str) -> int:
        mins = minutes_of(hhmm)
        t = dt.datetime.combine(day, dt.time(mins // 60, mins % 60), self.cfg.tz)
        return int(t.timestamp() * 1000)

    def _ensure_counter_devices(self) -> None:
        have = {d.counter for d in self.cfg.devices if d.role == "counter"}
        for c in self.cfg.counters:
            if c.number not in have:
                self.cfg.devices.append(Device(id=f"sim-counter-{c.number}", role="counter",
                                               counter=c.number))

    def _counter_dev(self, n: int) -> str:
        return next(d.id for d in self.cfg.devices if d.role == "counter" and d.counter == n)

    def _mix(self) -> dict[str, float]:
        if self.profile.mix:
            return self.profile.mix
        mix = {s.id: WARD_MIX.get(s.id, s.daily_cap / 2000) for s in self.cfg.services}
        total = sum(mix.values())
        return {k: v / total for k, v in mix.items()}

    # ------------------------------------------------------------ plumbing
    def at(self, t: int, fn: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (t, next(self.order), fn))

    def send(self, role: str, dev: str, type_: str, **fields) -> m.Ack:
        msg = {"v": 1, "id": new_id(), "dev": dev, "seq": next(self.seq.setdefault(dev, itertools.count(1))), "ts": self.now,
               "type": type_, **fields}
        self.svc.process([(self.topics.command(role, dev), msgspec.json.encode(msg), None)])
        self.counts["commands"] += 1
        return self.link.acks.pop(msg["id"])

    def run(self, until: int | None = None) -> DaySimulation:
        """Play the day (or up to `until`, Unix ms; call again to go on)."""
        if not self._planned:
            self._planned = True
            self._plan_arrivals()
            self._plan_clerks()
        while self.queue and (until is None or self.queue[0][0] <= until):
            t, _, fn = heapq.heappop(self.queue)
            self.now = max(self.now, t)
            fn()
        return self

    def close(self) -> None:
        self.svc.store.close()

    # ------------------------------------------------------------ citizens
    def _plan_arrivals(self) -> None:
        p, rng = self.profile, self.rng
        first = self._at(self.day, self.cfg.hours.open) - self.cfg.hours.early_minutes * MIN
        last = self._at(self.day, self.cfg.hours.close)
        hours = {h: w for h, w in p.arrivals_by_hour.items()}
        weights = list(hours.values())
        mix = self._mix()
        services, shares = list(mix), list(mix.values())
        midnight = self._at(self.day, "00:00")
        for _ in range(p.tickets):
            h = rng.choices(list(hours), weights)[0]
            t = midnight + h * 60 * MIN + int(rng.random() * 60 * MIN)
            t = min(max(t, first), last)
            service = rng.choices(services, shares)[0]
            prio = rng.random() < p.priority_share and bool(self.cfg.priority_classes)
            self.at(t, lambda s=service, pr=prio: self._arrive(s, pr))

    def _arrive(self, service: str, priority: bool) -> None:
        p, rng = self.profile, self.rng
        self.counts["arrivals"] += 1
        prio = rng.choice(self.cfg.priority_classes).id if priority else None
        ack = self.send("kiosk", self.kiosk, "ticket.request", service=service, priority=prio)
        if not ack.ok:
            self.counts["refused"] += 1
            return
        t = ack.result["ticket"]
        self.counts["issued"] += 1
        levels = len(p.rating_weights)
        self.citizens[t["ticket_id"]] = _Citizen(
            t["ticket_id"], service, self.now, p.rated and rng.random() < p.rating_share,
            rng.choices(range(1, levels + 1), p.rating_weights)[0], rng.random())
        self._wake(service)

    def _shows_up(self, c: _Citizen) -> bool:
        waited_h = (self.now - c.arrived) / (60 * MIN)
        p = self.profile.no_show_base + self.profile.no_show_per_hour * waited_h
        return c.patience_draw >= min(p, 0.5)

    def _service_ms(self, service: str) -> int:
        s = self.cfg.service(service)
        mean = s.avg_service_minutes * self.profile.speed.get(service, 1.0) * MIN
        sigma = self.profile.service_sigma
        # log-normal with the given mean: mu = ln(mean) - sigma^2 / 2
        return int(self.rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma))

    # ------------------------------------------------------------ clerks
    def _plan_clerks(self) -> None:
        opening = self._at(self.day, self.cfg.hours.open)
        lunch = self._at(self.day, "11:30")
        planned = {n: (b.start, b.minutes) for b in self.cfg.hours.breaks for n in b.counters}
        p = self.profile
        for i, k in enumerate(self.clerks):
            k.break_mode = (self.rng.choice(["pause", "no_pause", "skip"]) if p.break_mode == "mixed"
                            else p.break_mode)
            late = p.late_open.get(k.counter, 0) * MIN
            self.at(opening + late + int(self.rng.random() * 4 * MIN), lambda k=k: self._start(k))
            if k.counter in p.close_early:
                k.leave_at = self._at(self.day, p.close_early[k.counter])
                self.at(k.leave_at, lambda k=k: k.state == "idle" and self._leave(k))
            k.meetings = sorted((self._at(self.day, hhmm), mins) for n, hhmm, mins in p.meetings
                                if n == k.counter)
            for at, _ in k.meetings:
                self.at(at, lambda k=k: k.state == "idle" and self._meeting(k))
            if k.counter in planned:    # the center's own rotation ([[hours.breaks]])
                k.lunch_at = self._at(self.day, planned[k.counter][0])
                k.lunch_minutes = planned[k.counter][1]
            elif len(self.clerks) > 1:  # half the counters eat first, the other half after
                k.lunch_at = lunch + (i % 2) * self.profile.lunch_minutes * MIN
            if k.break_mode == "skip":
                k.lunch_at = 0
            if k.lunch_at:              # a clerk with nobody to serve goes at the time
                self.at(k.lunch_at, lambda k=k: k.state == "idle" and self._lunch(k))
        self.closing = self._at(self.day, self.cfg.hours.close)

    def _start(self, k: _Clerk) -> None:
        k.state = "busy"
        self._next(k)

    def _wake(self, service: str | None, counter: int | None = None) -> None:
        for k in self.clerks:
            if k.state == "idle" and (k.counter == counter or service in k.services):
                k.state = "waking"
                self.at(self.now + int((5 + 20 * self.rng.random()) * 1000), lambda k=k: self._start(k))

    def _next(self, k: _Clerk) -> None:
        ack = self.send("counter", k.dev, "counter.next")
        if not ack.ok:
            log.warning("counter %s: next refused: %s", k.counter, ack.error)
            k.state = "idle"
            return
        self._rate_later(k)
        t = ack.result["ticket"]
        if t is None or t["state"] != "called":
            k.current = None
            k.state = "gone" if self.now >= self.closing else "idle"
            return
        k.current = t["ticket_id"]
        c = self.citizens[k.current]
        if self._shows_up(c):
            walk = int((15 + 30 * self.rng.random()) * 1000)
            self.at(self.now + walk + self._service_ms(t["service"]), lambda: self._finish(k, c))
        else:
            self.at(self.now + 40_000, lambda: self.send("counter", k.dev, "counter.recall"))
            self.at(self.now + 90_000, lambda: self._no_show(k))

    def _no_show(self, k: _Clerk) -> None:
        self.send("counter", k.dev, "counter.no_show")
        k.current = None
        self._after_ticket(k)

    def _finish(self, k: _Clerk, c: _Citizen) -> None:
        if self.rng.random() < self.profile.transfer_share:
            others = [s.id for s in self.cfg.services if s.id != c.service
                      and any(s.id in kk.services for kk in self.clerks)]
            if others:
                to = self.rng.choice(others)
                self.send("counter", k.dev, "counter.transfer", to_service=to)
                c.service = to
                k.current = None
                self._wake(to)
                self._after_ticket(k)
                return
        self._after_ticket(k)

    def _after_ticket(self, k: _Clerk) -> None:
        leave = k.leave_at and self.now >= k.leave_at
        lunch = k.lunch_at and self.now >= k.lunch_at
        meeting = k.meetings and self.now >= k.meetings[0][0]
        if leave or lunch or meeting:         # a clerk serving someone goes after them
            if k.current is not None:
                self.send("counter", k.dev, "counter.done")
                self._rate_later(k)
                k.current = None
            if leave:
                self._leave(k)
            elif lunch:
                self._lunch(k)
            else:
                self._meeting(k)
            return
        self._next(k)

    def _lunch(self, k: _Clerk) -> None:
        k.lunch_at = 0
        back = self.now + (k.lunch_minutes or self.profile.lunch_minutes) * MIN
        if k.break_mode == "no_pause":        # just leaves; calls again when back
            k.state = "away"
            self.at(back, lambda: self._start(k))
            return
        k.state = "paused"
        self.send("counter", k.dev, "counter.pause", reason="Nghỉ trưa")
        self.at(back, lambda: self._resume(k))

    def _meeting(self, k: _Clerk) -> None:
        _, minutes = k.meetings.pop(0)
        k.state = "paused"
        self.send("counter", k.dev, "counter.pause", reason="Họp")
        self.at(self.now + minutes * MIN, lambda: self._resume(k))

    def _leave(self, k: _Clerk) -> None:
        """Closes early: pauses the counter for the rest of the day, as staff are told to."""
        k.leave_at = 0
        k.state = "gone"
        self.send("counter", k.dev, "counter.pause", reason="Nghỉ")

    def _resume(self, k: _Clerk) -> None:
        self.send("counter", k.dev, "counter.resume")
        k.state = "busy"
        self._next(k)

    def _rate_later(self, k: _Clerk) -> None:
        """The citizen just served rates on the counter's keys a few seconds later."""
        served = k.current
        if served is None:
            return
        c = self.citizens[served]
        if c.will_rate:
            c.will_rate = False
            self.at(self.now + int((5 + 20 * self.rng.random()) * 1000),
                    lambda: self.send("counter", k.dev, "rating.submit", ticket_id=served,
                                      level=c.rating))


def working_days(cfg: SiteConfig, first: dt.date, n: int) -> list[dt.date]:
    days, d = [], first
    while len(days) < n:
        if d.isoweekday() in cfg.hours.weekdays:
            days.append(d)
        d += dt.timedelta(days=1)
    return days


def simulate(cfg: SiteConfig, db: Path, days: list[dt.date], profile: DayProfile | None = None,
             seed: int = 1) -> dict:
    """Play each day through the real service into `db`; return the counts and the wait
    estimate's accuracy (service.report_accuracy) over those days."""
    from qms.reports.accuracy import estimate_accuracy
    counts: dict[str, int] = {}
    for i, day in enumerate(days):
        sim = DaySimulation(cfg, db, day, profile, seed + i).run()
        sim.close()
        for k, v in sim.counts.items():
            counts[k] = counts.get(k, 0) + v
    acc = estimate_accuracy(cfg, db, days[0].isoformat(), days[-1].isoformat())
    return {"days": [d.isoformat() for d in days], **counts, **acc.as_dict()}


# ------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="site config (TOML)")
    p.add_argument("--db", help="event log to write (default: <state_dir>/simulated.sqlite); "
                                "never point this at the live service's log")
    p.add_argument("--day", help="first day, YYYY-MM-DD (default: today)")
    p.add_argument("--days", type=int, default=1, help="number of working days (default 1)")
    p.add_argument("--tickets", type=int, default=DayProfile.tickets, help="arrivals per day")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-ratings", action="store_true", help="a point without rating keys")


def run(args) -> int:
    from qms.config.site import ConfigError, load_config
    try:
        cfg = load_config(args.config)
        first = dt.date.fromisoformat(args.day) if args.day else dt.datetime.now(cfg.tz).date()
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not 1 <= args.days <= 366 or not 0 <= args.tickets <= 5000:
        print("error: --days must be 1..366 and --tickets 0..5000", file=sys.stderr)
        return 2
    db = Path(args.db) if args.db else cfg.state_dir() / "simulated.sqlite"
    profile = DayProfile(tickets=args.tickets, rated=not args.no_ratings)
    result = simulate(cfg, db, working_days(cfg, first, args.days), profile, args.seed)
    result["db"] = str(db)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0
