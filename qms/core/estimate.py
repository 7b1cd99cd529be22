"""Estimated wait for a ticket: a fast look-ahead run of the queue's own assignment policy.

Method (docs/queue-estimate.md): starting from the queue as it is now, play the counters
forward in time with expected service times and the same choice rule as
`QueueCore._pick` (targeted tickets, then the counter's services in its order of
preference, priority first with the interleave guard), and read off when each waiting
position would be called. The run knows:

- each counter's state: serving (free after the median remaining service time of the
  ticket it serves), idle (free now), paused (back after a typical pause), not yet opened
  (free at opening time plus how late counters started on past days; a counter still
  unopened long after opening is not staffed today);
- expected service time per service: today's mean of observed service times (done -
  called) with a prior from past days or the configured `avg_service_minutes`
  (qms/core/service_times.py);
- future arrivals at the rates seen in the last half hour (qms/core/arrivals.py): other
  services' tickets that a shared counter prefers, and priority tickets, overtake a
  waiting ticket.

Each service's line gets a zero-length marker at its end (one normal, one priority), so a
single run answers "how long for a new ticket" for every service at once; the run is
memoized until the queue changes. State changes only in `observe_*` (driven by events),
so a replay of the log rebuilds the estimator exactly.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import statistics
from typing import TYPE_CHECKING

from qms.config.site import Break, minutes_of
from qms.core.arrivals import NEVER, next_whole_at, recent_curves, whole
from qms.core.past_days import PastDays, service_times_from_history
from qms.core.service_times import ServiceTimes, time_left_s

__all__ = ["WaitEstimator", "service_times_from_history"]

if TYPE_CHECKING:
    from collections.abc import Iterator

    from qms.config.site import SiteConfig
    from qms.core.state import CounterState, QueueView, Ticket

PAUSE_GUESS_S = 30 * 60        # a paused counter is expected back after this long...
PAUSE_OVERDUE_S = 5 * 60       # ...or in this long once the guess has passed
UNSTAFFED_AFTER_S = 30 * 60    # a counter not opened this long after opening is not staffed
AWAY_SHOWN_S = 3 * 60          # a shorter absence is not worth explaining
IDLE_REACTION_S = 15.0         # an idle counter notices a new ticket after about this long
# A run's length in steps (one call each) is bounded by the queue it starts from: a calm
# queue needs about one step per waiting ticket plus the arrivals that overtake it. Under
# an arrival rate far past the counters' capacity the projected arrivals never end, and a
# marker behind them is never reached: the budget stops the run (~1 ms) and the estimate
# falls back to extending the last known call (or the plain formula) - an overloaded
# line's wait is open-ended anyway.
BASE_STEPS = 200
STEPS_PER_WAITING = 4


# Estimates made in one batch of commands share a run; a later batch reuses it only this
# soon after (site time). Under a benchmark's load that is one run per second at most; at a
# real center's pace (seconds between commands) every ticket gets a run of the queue as it
# is, not one from before the calls since.
REUSE_MS = 1_000


class WaitEstimator:
    def __init__(self, cfg: SiteConfig):
        self.cfg = cfg
        self.times = ServiceTimes(cfg)
        self.opening_delay_s = 0.0
        self.reset_day()

    @property
    def avg_s(self) -> dict[str, float]:
        """Expected service time per service, seconds."""
        return self.times.avg

    def learn_history(self, past: PastDays) -> None:
        """Start each day from what past days showed (service_times_from_history): their
        service times, and how late after opening time counters start calling."""
        self.times.learn_history(past)
        # how late after opening time a counter starts calling, typically (the median of
        # past days' first calls: today's own cannot tell more, each is at most as late as
        # now, when the counters still closed are later already)
        delays = [d for _, at in past.first_calls if (d := self._opening_delay(at)) is not None]
        self.opening_delay_s = statistics.median(delays) if delays else 0.0

    def reset_day(self) -> None:
        self.times.reset_day()
        self.observed = 0
        self.pause_started: dict[int, int] = {}     # counter -> paused_at, as last seen
        self.pause_total_s, self.pauses = 0.0, 0
        self._memo_key: tuple | None = None
        self._memo: tuple[dict, dict] | None = None
        self._memo_now = 0
        self._memo_shape: tuple | None = None
        self._in_batch = False

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Estimates made inside share one look-ahead run (the service wraps a batch of
        commands that arrived together in this, so a burst costs one run, not one each)."""
        self._in_batch = True
        try:
            yield
        finally:
            self._in_batch = False

    # ------------------------------------------------------------ learning (events only)
    def observe_call(self, core: QueueView, t: Ticket, at: int) -> None:
        """Learn how long today's pauses last: a paused counter's pause ends when it calls
        again. (Calls are the events the estimator sees; a resume is followed by a call.)"""
        for n, c in core.counters.items():
            if c.paused and c.paused_at is not None:
                self.pause_started[n] = c.paused_at
        counter = t.counter
        assert counter is not None, "a called ticket has its counter"
        started = self.pause_started.pop(counter, None)
        if started is not None and not core.counters[counter].paused:
            self.pause_total_s += max(0, at - started) / 1000
            self.pauses += 1

    def _opening_delay(self, at: int) -> float | None:
        """Seconds from the day's opening time to `at` (a counter's first call); None when
        it is too late to be a start at opening (a counter staffed later in the day)."""
        local = dt.datetime.fromtimestamp(at / 1000, self.cfg.tz)
        since_midnight = local.hour * 3600 + local.minute * 60 + local.second
        delay = since_midnight - minutes_of(self.cfg.hours.open) * 60
        return max(delay, 0.0) if delay <= UNSTAFFED_AFTER_S else None

    def pause_guess_s(self) -> float:
        """Expected length of a pause: today's mean, the prior counting as one pause."""
        return (PAUSE_GUESS_S + self.pause_total_s) / (1 + self.pauses)

    def observe_service(self, core: QueueView, t: Ticket, duration_ms: int) -> None:
        self.times.observe(t.service, duration_ms)
        self.observed += 1

    # ------------------------------------------------------------ estimates
    def estimate(self, core: QueueView, service: str, people_ahead: int, priority: bool,
                 now: int) -> int:
        calls = self._lookahead(core, now)[0]
        prio, normal = calls.get(service, ({}, {}))
        line = core.lines[service]
        if priority:
            pos = min(people_ahead, len(line.priority))
            known = prio
        else:
            pos = min(max(people_ahead - len(line.priority), 0), len(line.normal))
            known = normal
        at = known.get(pos)
        if at is None and known:
            # a position past the last run's end (tickets issued since, under load): extend
            # the run's last call by the line's service rate
            last = max(known)
            if pos > last:
                at = known[last] + (pos - last) * self.avg_s[service] / max(self._shares(core, service), 0.5)
        if at is None:         # no counter will get to it: the plain formula as a last resort
            return self._fallback(core, service, people_ahead)
        at -= (now - self._memo_now) / 1000       # time passed since the run
        return int(round(max(0.0, at)))

    @staticmethod
    def _shares(core: QueueView, service: str) -> float:
        return sum(1.0 / len(c.services) for c in core.counters.values() if service in c.services)

    def _fallback(self, core: QueueView, service: str, people_ahead: int) -> int:
        shares = self._shares(core, service)
        return int(round((people_ahead + 0.5) * self.avg_s[service] / max(shares, 0.5)))

    def _state_key(self, core: QueueView, now: int) -> tuple:
        return (now, id(core), core.day, len(core.tickets), self.observed, self.pauses,
                tuple((c.current, c.paused, c.active, c.priority_streak) for c in core.counters.values()),
                tuple((len(x.priority), len(x.normal)) for x in core.lines.values()),
                tuple(len(x) for x in core.targeted.values()))

    def away(self, core: QueueView, service: str, now: int) -> dict | None:
        """Why nobody can call a ticket of this service now, when every counter serving it
        is away (on its break, paused, not open yet) and the first is back in more than
        AWAY_SHOWN_S: {"reason": "break" | "pause" | "closed", "until": Unix ms,
        "counters": [...], "note": the pause's reason}. None otherwise. The faces say it
        next to the wait, so a long wait with nobody ahead is explained."""
        away = self._lookahead(core, now)[1].get(service)
        if away is None:
            return None
        out = dict(away)
        out["until"] = int(self._memo_now + away["back_s"] * 1000)
        if out["until"] - now < AWAY_SHOWN_S * 1000:
            return None
        del out["back_s"]
        return out

    def _lookahead(self, core: QueueView, now: int) -> tuple[dict, dict]:
        key = self._state_key(core, now)
        if key != self._memo_key:
            # within a batch (commands that arrived together), one run serves them all
            # while the counters stay the same; later positions are extended from it
            shape = (id(core), core.day, tuple((c.paused, c.active) for c in core.counters.values()))
            reuse = self._in_batch and shape == self._memo_shape and 0 <= now - self._memo_now < REUSE_MS
            if self._memo is None or not reuse:
                run = _Lookahead(self, core, now)
                self._memo = (run.run(), run.away_by_service())
                self._memo_now, self._memo_shape = now, shape
                self._memo_key = key        # a reused run is never taken for an exact one
        assert self._memo is not None
        return self._memo


class _Lookahead:
    """One forward run. Times are seconds from now."""

    def __init__(self, est: WaitEstimator, core: QueueView, now: int):
        self.est, self.core, self.now = est, core, now
        cfg = core.cfg
        local = dt.datetime.fromtimestamp(now / 1000, cfg.tz)
        self.midnight_s = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        self.avg = est.avg_s
        self.mode_interleave = cfg.queue.priority_mode == "interleave"
        self.burst = cfg.queue.priority_burst
        # lines: service -> [priority count, normal count]; markers sit at the ends
        self.prio = {s: len(x.priority) for s, x in core.lines.items()}
        self.normal = {s: len(x.normal) for s, x in core.lines.items()}
        # for the aging rule: when each ticket waiting now was issued (seconds from now)
        # (built only when the rule is on: a run per issued ticket should not pay for it)
        self.aging_s = cfg.queue.aging_minutes * 60
        lines = core.lines.items() if self.aging_s else ()
        self.issued_prio = {s: [(k[0] - now) / 1000 for k, _ in x.priority] for s, x in lines}
        self.issued_normal = {s: [(k[0] - now) / 1000 for k, _ in x.normal] for s, x in lines}
        self.taken_prio = dict.fromkeys(core.lines, 0)     # how many were called so far
        self.taken_normal = dict.fromkeys(core.lines, 0)
        self.calls: dict[str, tuple[dict[int, float], dict[int, float]]] = {
            s: ({}, {}) for s in core.lines}
        self.targeted = {n: [t.service for _, t in x.priority + x.normal]
                         for n, x in core.targeted.items()}
        self.open_at, self.stop_at = self._hours()
        self.curves, self.prio_share = recent_curves(core, now, self.stop_at)
        # projected tickets played so far (all, priority), and when the next one comes: a
        # curve is only read again then (the run asks at every step)
        self.played = dict.fromkeys(self.curves, 0)
        self.played_prio = dict.fromkeys(self.curves, 0)
        self.next_at = {s: next_whole_at(c, 0) for s, c in self.curves.items()}
        self.streak = {n: c.priority_streak for n, c in core.counters.items()}
        self.breaks = self._breaks()
        self.away: dict[int, tuple[str, float, str]] = {}
        self.staffed: set[int] | None = None

    def _hours(self) -> tuple[float, float]:
        cfg, midnight = self.core.cfg, self.midnight_s
        now_s = self.now / 1000
        open_at = midnight + minutes_of(cfg.hours.open) * 60 - now_s
        stop_at = midnight + (minutes_of(cfg.hours.close) - cfg.hours.cutoff_minutes) * 60 - now_s
        return open_at, stop_at

    def _window(self, b: Break) -> tuple[int, int]:
        """A configured break's window today, Unix ms: [start, start + length)."""
        start = int((self.midnight_s + minutes_of(b.start) * 60) * 1000)
        return start, start + b.minutes * 60_000

    def _break_of(self, n: int) -> Break | None:
        """Counter n's configured break that matters now: the one whose window holds now,
        else the next one today; None when all of its windows have passed."""
        best = None
        for b in self.core.cfg.hours.breaks:
            if n not in b.counters:
                continue
            start, end = self._window(b)
            if end <= self.now:
                continue                         # over: its window has passed
            if best is None or start < self._window(best)[0]:
                best = b
        return best

    def _breaks(self) -> dict[int, tuple[float, float, float]]:
        """Configured breaks the run still plans: counter -> (earliest start, window end,
        length), seconds from now. A break is bound to its window: once the window has
        passed it is over, and a counter that called someone or came back from a pause
        inside its window is working through it (or had it) and does not go."""
        out = {}
        for n, c in self.core.counters.items():
            b = self._break_of(n)
            if b is None or c.paused:
                continue                         # a paused counter: _free_at plans its return
            start, end = self._window(b)
            if self.now >= start and (
                    (c.last_call_at is not None and c.last_call_at >= start)
                    or (c.resumed_at is not None and c.resumed_at >= start)):
                continue
            out[n] = ((start - self.now) / 1000, (end - self.now) / 1000, b.minutes * 60.0)
        return out

    def _on_break_now(self, n: int, c: CounterState) -> float | None:
        """Seconds until a counter that is away on its configured break comes back: paused
        in its window (or just before it), or idle in it without having called anyone
        since it began (a clerk who eats without pressing pause). None: not on a break."""
        for b in self.core.cfg.hours.breaks:
            if n not in b.counters:
                continue
            start, end = self._window(b)
            if c.paused:
                if c.paused_at is not None and start - 600_000 <= c.paused_at < end:
                    back = (c.paused_at + b.minutes * 60_000 - self.now) / 1000
                    return back if back > 0 else PAUSE_OVERDUE_S
            elif (c.active and c.current is None and start <= self.now < end
                  and (c.last_call_at is None or c.last_call_at < start)
                  and (c.resumed_at is None or c.resumed_at < start)):
                left = max(c.free_since or start, start)
                return max((left + b.minutes * 60_000 - self.now) / 1000, 0.0)
        return None

    def _free_at(self) -> list[tuple[float, int]]:
        """When each staffed counter can next call someone. Notes in self.away why a
        counter that is not serving anyone is away: counter -> (kind, back in s, note)."""
        core = self.core
        any_active = any(c.active for c in core.counters.values())
        out = []
        for n, c in core.counters.items():
            if c.paused:
                back = self._on_break_now(n, c)
                kind = "break"
                if back is None:
                    kind = "pause"
                    away = (self.now - (c.paused_at or self.now)) / 1000
                    guess = self.est.pause_guess_s()
                    back = guess - away if away < guess else PAUSE_OVERDUE_S
                self.away[n] = (kind, max(back, 0.0), c.reason)
                out.append((max(back, 0.0), n))
            elif c.active:
                free = IDLE_REACTION_S
                if c.current is not None:
                    t = core.tickets[c.current]
                    mean = self.avg.get(t.service, 480.0)
                    elapsed = (self.now - (t.called_at or self.now)) / 1000
                    free = time_left_s(mean, elapsed)
                else:
                    back = self._on_break_now(n, c)
                    if back is not None:
                        self.breaks.pop(n, None)
                        self.away[n] = ("break", back, "")
                        free = max(free, back)
                out.append((free, n))
            elif not any_active or self.open_at > -UNSTAFFED_AFTER_S:
                back = max(self.open_at + self.est.opening_delay_s, 0.0)
                if self.open_at > 0:
                    self.away[n] = ("closed", self.open_at, "")
                out.append((back, n))
        return out

    def away_by_service(self) -> dict[str, dict]:
        """For each service whose staffed counters are all away: the first one back."""
        out = {}
        present = {n for n in self.core.counters} - set(self.away)
        staffed = self.staffed or set()
        for s in self.core.lines:
            serving = [n for n in staffed if s in self.core.counters[n].services]
            if not serving or any(n in present for n in serving):
                continue
            first = min(serving, key=lambda n: self.away[n][1])
            kind, back, note = self.away[first]
            out[s] = {"reason": kind, "back_s": back, "counters": sorted(serving), "note": note}
        return out

    def _add_arrivals(self, until: float) -> None:
        """Put the projected tickets that have arrived by `until` in their lines; of them, as
        many are priority tickets as the service's priority share says by then."""
        for s, at in self.next_at.items():
            if until < at:
                continue
            total = self.curves[s].at(until)
            n = whole(total)
            p = min(whole(total * self.prio_share[s]) - self.played_prio[s], n - self.played[s])
            self.prio[s] += p
            self.normal[s] += n - self.played[s] - p
            if self.aging_s:              # projected tickets age too, from when they come
                self.issued_prio[s].extend([at] * p)
                self.issued_normal[s].extend([at] * (n - self.played[s] - p))
            self.played[s], self.played_prio[s] = n, self.played_prio[s] + p
            self.next_at[s] = next_whole_at(self.curves[s], until)

    def _next_arrival(self, services: list[str], after: float) -> float | None:
        """When the next projected ticket for one of these services arrives, if ever
        (called once the arrivals until `after` are in)."""
        t = min((self.next_at.get(s, NEVER) for s in services), default=NEVER)
        return None if t == NEVER else t

    def _head(self, n: int, services: list[str], priority: bool) -> tuple[str, str] | None:
        """The first line with a ticket of this kind for counter n: ('target', service) or
        ('line', service)."""
        tl = self.targeted.get(n)
        if tl and not priority:          # targeted tickets: served first, order kept
            return "target", tl[0]
        lines = self.prio if priority else self.normal
        taken = self.taken_prio if priority else self.taken_normal
        for s in services:
            if taken[s] < lines[s]:
                return "line", s
        return None

    def _aged(self, services: list[str], t: float, priority: bool) -> str | None:
        """The service whose line head of this class is the oldest of this counter's that
        has waited past `queue.aging_minutes` at time t, if any."""
        issued, taken = ((self.issued_prio, self.taken_prio) if priority
                         else (self.issued_normal, self.taken_normal))
        lines = self.prio if priority else self.normal
        best = None
        for s in services:
            pos = taken[s]
            if pos < len(issued[s]) and pos < lines[s] and t - issued[s][pos] > self.aging_s:
                if best is None or issued[s][pos] < best[0]:
                    best = (issued[s][pos], s)
        return None if best is None else best[1]

    def run(self) -> dict:
        core = self.core
        heap = self._free_at()
        self.staffed = {n for _, n in heap}
        heapq.heapify(heap)
        services = {n: c.services for n, c in core.counters.items()}
        staffed = {s for _, n in heap for s in services[n]}
        # each line gets a marker at its end: the position of a ticket issued now
        marker_prio = dict(self.prio)
        marker_normal = dict(self.normal)
        for s in self.prio:
            self.prio[s] += 1
            self.normal[s] += 1
            if self.aging_s:                     # the marker is a ticket issued now: it ages
                self.issued_prio[s].append(0.0)
                self.issued_normal[s].append(0.0)
        pending = 2 * len(staffed & set(self.prio))
        waiting = sum(self.prio.values()) + sum(self.normal.values()) + sum(map(len, self.targeted.values()))
        max_steps = BASE_STEPS + STEPS_PER_WAITING * waiting
        steps = 0
        while heap and pending and steps < max_steps:
            steps += 1
            t, n = heapq.heappop(heap)
            brk = self.breaks.get(n)
            if brk is not None and t >= brk[0]:      # free after the break's start: it goes
                del self.breaks[n]
                if t < brk[1]:                       # ...if its window is not over by then
                    heapq.heappush(heap, (t + brk[2], n))
                    continue
            self._add_arrivals(t)
            p, q = self._head(n, services[n], True), self._head(n, services[n], False)
            if p is None and q is None:
                nxt = self._next_arrival(services[n], t)
                if nxt is not None:
                    heapq.heappush(heap, (nxt, n))
                continue
            use_prio = p is not None and (q is None or not self.mode_interleave
                                          or self.streak[n] < self.burst)
            head = p if use_prio else q
            assert head is not None
            kind, s = head
            aged = self._aged(services[n], t, use_prio) if self.aging_s else None
            if aged is not None:                  # QueueCore._pick's aging rule
                kind, s = "line", aged
            if kind == "target":
                self.targeted[n].pop(0)
                self.streak[n] = 0
                heapq.heappush(heap, (t + self.avg.get(s, 480.0), n))
                continue
            taken = self.taken_prio if use_prio else self.taken_normal
            marker = (marker_prio if use_prio else marker_normal)[s]
            pos = taken[s]
            taken[s] += 1
            if pos <= marker:
                self.calls[s][0 if use_prio else 1][pos] = t
            if pos == marker:                     # the marker costs no counter time
                pending -= 1
                heapq.heappush(heap, (t, n))
                continue
            self.streak[n] = self.streak[n] + 1 if use_prio else 0
            heapq.heappush(heap, (t + self.avg[s], n))
        return self.calls
