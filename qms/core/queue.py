"""The queue core: tickets, counters and assignment, as plain Python with no I/O.

Every change is an event. A handler (`issue`, `next`, ...) looks at the state and
returns the events it decides on, without touching the state; `apply` changes the
state for one event. The live service calls handler then apply; a restart replays
the day's log through `apply` alone and arrives at the same state.

Time is always passed in (Unix ms); the site's day boundary comes from its time zone.
"""
from __future__ import annotations

import bisect
import datetime as dt
from collections import deque

from qms.config.site import Service, SiteConfig
from qms.core import events as ev
from qms.core import refusals as R
from qms.core.estimate import AWAY_SHOWN_S, WaitEstimator
from qms.core.hours import check_open
from qms.core.offline import offline_block, online_last
from qms.core.state import CounterState, Ticket, WaitLine

CALLS_KEPT = 10


class QueueCore:
    def __init__(self, cfg: SiteConfig, estimator: WaitEstimator | None = None):
        self.cfg = cfg
        self.tz = cfg.tz
        self.estimator = estimator or WaitEstimator(cfg)
        self._day_memo: tuple[int, str] = (-1, "")
        self.day: str | None = None
        self._reset_day(None)
        self.dirty_counters: set[int] = set()
        self.dirty_services: set[str] = set()
        self.calls_dirty = False

    # ------------------------------------------------------------ day boundary
    def day_of(self, ms: int) -> str:
        # asked several times per command; a day (in any time zone) starts on a whole minute
        minute = ms // 60_000
        if minute != self._day_memo[0]:
            self._day_memo = (minute, dt.datetime.fromtimestamp(minute * 60, self.tz).date().isoformat())
        return self._day_memo[1]

    def _reset_day(self, day: str | None) -> None:
        self.day = day
        self.tickets: dict[str, Ticket] = {}
        self.by_number: dict[int, Ticket] = {}
        self.lines: dict[str, WaitLine] = {s.id: WaitLine() for s in self.cfg.services}
        self.targeted: dict[int, WaitLine] = {c.number: WaitLine() for c in self.cfg.counters}
        self.counters: dict[int, CounterState] = {
            c.number: CounterState(c.number, list(c.services)) for c in self.cfg.counters}
        self.issued: dict[str, int] = {s.id: 0 for s in self.cfg.services}
        self.served = 0                 # tickets done today (kept, not counted per view)
        self.next_n: dict[str, int] = {s.id: s.first for s in self.cfg.services}
        self.calls: deque[dict] = deque(maxlen=CALLS_KEPT)
        self.estimator.reset_day()
        self.dirty_counters = set(self.counters)
        self.dirty_services = set(self.lines)
        self.calls_dirty = True

    def roll(self, now: int) -> bool:
        """Start a new day if `now` is past the boundary. Returns True when it did."""
        day = self.day_of(now)
        if day != self.day:
            self._reset_day(day)
            return True
        return False

    # ------------------------------------------------------------ helpers
    def _local(self, ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, self.tz)

    def offline_block(self, service_id: str, device: str) -> range:
        """Numbers (without the service digit) that `device` may print while offline."""
        return offline_block(self.cfg, service_id, device)

    def _online_last(self, service_id: str) -> int:
        return online_last(self.cfg, service_id)

    def check_open(self, service_id: str, now: int) -> None:
        """Raise Refused if tickets for this service cannot be issued at `now`."""
        check_open(self.cfg, service_id, now)

    def people_ahead(self, service_id: str, priority: bool) -> int:
        line = self.lines[service_id]
        return len(line.priority) if priority else len(line)

    def _counter(self, n: int) -> CounterState:
        try:
            return self.counters[n]
        except KeyError:
            raise R.unknown("counter", n) from None

    def _current(self, c: CounterState) -> Ticket:
        if c.current is None:
            raise R.no_current(c.number)
        return self.tickets[c.current]

    # ------------------------------------------------------------ handlers (no state change)
    def issue(self, now: int, service: str, priority: str | None, ticket_id: str,
              source: str = "kiosk", dev: str = "") -> list[ev.Event]:
        """Raises Refused (closed, cut-off, cap); the caller logs a TicketRefused for it."""
        self.roll(now)
        if ticket_id in self.tickets:      # the same request again: same ticket
            return []
        try:
            s = self.cfg.service(service)
        except KeyError:
            raise R.unknown("service", service) from None
        if priority is not None and priority not in {p.id for p in self.cfg.priority_classes}:
            raise R.unknown("priority", priority)
        self.check_open(service, now)
        if self.issued[service] >= s.daily_cap or self.next_n[service] > self._online_last(service):
            raise R.daily_cap(s.name_vi, s.name_en)
        ahead = self.people_ahead(service, priority is not None)
        return [ev.TicketIssued(
            at=now, ticket_id=ticket_id, number=s.code * 1000 + self.next_n[service], service=service,
            priority=priority, issued_at=now, source=source, dev=dev, people_ahead=ahead,
            est_wait_s=self.estimator.estimate(self, service, ahead, priority is not None, now))]

    def accept_offline(self, now: int, cmd: ev.OfflineTicket) -> list[ev.Event]:
        """A ticket printed by a kiosk without the service. It is already in a citizen's hand,
        so it is never refused for its number: a number outside the kiosk's own offline
        block, or one another ticket has today, is replaced by a free one (the ack and a
        `ticket.renumbered` fact tell the kiosk and the displays); two tickets never share
        a number."""
        self.roll(now)
        try:
            s = self.cfg.service(cmd.service)
        except KeyError:
            raise R.unknown("service", cmd.service) from None
        if cmd.priority is not None and cmd.priority not in {p.id for p in self.cfg.priority_classes}:
            raise R.unknown("priority", cmd.priority)
        if cmd.number // 1000 != s.code:
            raise R.unknown("number", cmd.number)
        old = self.tickets.get(cmd.ticket_id)
        if old is not None:
            if old.number == cmd.number or not self._offline_number_ok(cmd):
                return []           # the same ticket again, or a paper number that cannot be honoured
            return [ev.TicketRenumbered(at=now, ticket_id=cmd.ticket_id, number=cmd.number,
                                       old_number=old.number)]
        number = cmd.number if self._offline_number_ok(cmd) else self._free_number(s)
        issued_at = min(cmd.issued_at, now)
        ahead = sum(1 for _, t in (self.lines[cmd.service].priority + self.lines[cmd.service].normal)
                    if t.issued_at <= issued_at)
        events: list[ev.Event] = [ev.TicketIssued(
            at=now, ticket_id=cmd.ticket_id, number=number, service=cmd.service,
            priority=cmd.priority, issued_at=issued_at, source="offline", dev=cmd.dev,
            people_ahead=ahead, est_wait_s=0)]
        if number != cmd.number:
            events.append(ev.TicketRenumbered(at=now, ticket_id=cmd.ticket_id, number=number,
                                             old_number=cmd.number))
        return events

    def _offline_number_ok(self, cmd: ev.OfflineTicket) -> bool:
        """The paper number is the kiosk's own to print and no other ticket has it today."""
        n = cmd.number % 1000
        if n not in self.offline_block(cmd.service, cmd.dev):
            return False
        holder = self.by_number.get(cmd.number)
        return holder is None or holder.ticket_id == cmd.ticket_id

    def _free_number(self, s: Service) -> int:
        """The next online number, else any number of the service nobody has today."""
        for n in [*range(self.next_n[s.id], s.last + 1), *range(s.first, self.next_n[s.id])]:
            if s.code * 1000 + n not in self.by_number:
                return s.code * 1000 + n
        raise R.daily_cap(s.name_vi, s.name_en)

    def _pick(self, c: CounterState, now: int = 0) -> Ticket | None:
        """The best waiting ticket for counter c: priority first (with the anti-starvation
        guard), then the counter's order of service preference, then the oldest. Within
        each class, a ticket that has waited past `queue.aging_minutes` goes first
        regardless of preference (the oldest such); it does not go before priority
        citizens: aging overrides the order of preference, not the priority rule."""
        lines = [self.targeted[c.number]] + [self.lines[s] for s in c.services]
        aging = self.cfg.queue.aging_minutes * 60_000 if now else 0

        def best(priority: bool) -> Ticket | None:
            if aging:
                old = [t for line in lines if (t := line.head(priority)) is not None
                       and now - t.issued_at > aging]
                if old:
                    return min(old, key=Ticket.sort_key)
            for line in lines:
                t = line.head(priority)
                if t is not None:
                    return t
            return None

        prio, normal = best(True), best(False)
        if prio is None or normal is None:
            return prio or normal
        q = self.cfg.queue
        if q.priority_mode == "interleave" and c.priority_streak >= q.priority_burst:
            return normal
        return prio

    def next(self, now: int, counter: int) -> list[ev.Event]:
        self.roll(now)
        c = self._counter(counter)
        if c.paused:
            raise R.counter_paused(counter)
        events: list[ev.Event] = []
        if c.current is not None:          # "next" finishes the one being served
            done = self.tickets[c.current]
            events.append(ev.TicketDone(at=now, ticket_id=done.ticket_id, number=done.number, counter=counter))
        t = self._pick(c, now)
        if t is not None:
            events.append(ev.TicketCalled(at=now, ticket_id=t.ticket_id, number=t.number, service=t.service,
                                         counter=counter, priority=t.priority, printed_number=t.printed_number))
        return events

    def recall(self, now: int, counter: int) -> list[ev.Event]:
        self.roll(now)
        c = self._counter(counter)
        t = self._current(c)
        if t.recalls >= self.cfg.queue.recall_cap:
            raise R.recall_cap(self.cfg.queue.recall_cap)
        return [ev.TicketRecalled(at=now, ticket_id=t.ticket_id, number=t.number, service=t.service,
                                 counter=counter, count=t.recalls + 1, printed_number=t.printed_number)]

    def no_show(self, now: int, counter: int) -> list[ev.Event]:
        self.roll(now)
        t = self._current(self._counter(counter))
        return [ev.TicketNoShow(at=now, ticket_id=t.ticket_id, number=t.number, counter=counter)]

    def done(self, now: int, counter: int) -> list[ev.Event]:
        self.roll(now)
        t = self._current(self._counter(counter))
        return [ev.TicketDone(at=now, ticket_id=t.ticket_id, number=t.number, counter=counter)]

    def call_number(self, now: int, counter: int, number: int) -> list[ev.Event]:
        """Call back a no-show within its window (it goes straight to this counter)."""
        self.roll(now)
        c = self._counter(counter)
        if c.paused:
            raise R.counter_paused(counter)
        t = self.by_number.get(number)
        window = self.cfg.queue.no_show_window_minutes * 60_000
        if t is None or t.state != "no_show" or now - (t.no_show_at or 0) > window:
            raise R.not_callable(number)
        events: list[ev.Event] = []
        if c.current is not None:
            cur = self.tickets[c.current]
            events.append(ev.TicketDone(at=now, ticket_id=cur.ticket_id, number=cur.number, counter=counter))
        events.append(ev.TicketCalled(at=now, ticket_id=t.ticket_id, number=t.number, service=t.service,
                                     counter=counter, priority=t.priority, printed_number=t.printed_number))
        return events

    def transfer(self, now: int, counter: int, to_service: str | None,
                 to_counter: int | None) -> list[ev.Event]:
        self.roll(now)
        t = self._current(self._counter(counter))
        if (to_service is None) == (to_counter is None):
            raise R.bad_transfer("give exactly one of to_service, to_counter")
        if to_counter is not None:
            if to_counter not in self.counters:
                raise R.unknown("counter", to_counter)
            if to_counter == counter:
                raise R.bad_transfer("a ticket cannot be transferred to its own counter")
            target = to_service or t.service
        else:
            if to_service not in self.lines:
                raise R.unknown("service", to_service)
            if to_service == t.service:
                raise R.bad_transfer("the ticket is already in that service")
            target = to_service
        return [ev.TicketTransferred(at=now, ticket_id=t.ticket_id, number=t.number, from_counter=counter,
                                    to_service=target, to_counter=to_counter)]

    def pause(self, now: int, counter: int, reason: str) -> list[ev.Event]:
        self.roll(now)
        c = self._counter(counter)
        if c.paused:
            return []
        return [ev.CounterPaused(at=now, counter=counter, reason=reason)]

    def resume(self, now: int, counter: int) -> list[ev.Event]:
        self.roll(now)
        c = self._counter(counter)
        if not c.paused and c.active:
            return []
        return [ev.CounterResumed(at=now, counter=counter)]

    def rate(self, now: int, counter: int, ticket_id: str, level: int) -> list[ev.Event]:
        self.roll(now)
        t = self.tickets.get(ticket_id)
        if t is None:
            raise R.not_rateable("unknown ticket")
        if t.state != "done" or t.counter != counter:
            raise R.not_rateable("the ticket was not served at this counter")
        if t.rated:                         # one rating per ticket (a re-sent command is
            raise R.not_rateable("the ticket was already rated")   # answered before this)
        return [ev.RatingSubmitted(at=now, ticket_id=ticket_id, counter=counter, service=t.service,
                                  level=level)]

    # ------------------------------------------------------------ apply (the only mutation)
    def apply(self, e: ev.Event) -> None:
        self.roll(e.at)
        getattr(self, "_on_" + type(e).__name__)(e)

    def _enqueue(self, t: Ticket) -> None:
        t.state = "waiting"
        if t.target_counter is not None:
            self.targeted[t.target_counter].add(t)
        else:
            self.lines[t.service].add(t)
        self.dirty_services.add(t.service)

    def _dequeue(self, t: Ticket) -> None:
        if t.target_counter is not None:
            self.targeted[t.target_counter].remove(t)
        else:
            self.lines[t.service].remove(t)
        self.dirty_services.add(t.service)

    def _on_TicketIssued(self, e: ev.TicketIssued) -> None:
        t = Ticket(e.ticket_id, e.number, e.service, e.priority, e.issued_at, e.source, e.dev,
                   e.people_ahead, e.est_wait_s)
        self.tickets[t.ticket_id] = t
        self.by_number[t.number] = t
        self.issued[t.service] += 1
        n = t.number % 1000
        # online numbers go up; an offline ticket renumbered into the online range takes
        # its number too (numbers of the kiosks' offline blocks do not move it)
        if n >= self.next_n[t.service] and (e.source != "offline" or n <= self._online_last(t.service)):
            self.next_n[t.service] = n + 1
        if self.day_of(e.issued_at) != self.day:
            t.state = "expired"             # printed offline on an earlier day
            return
        self._enqueue(t)

    def _on_TicketRenumbered(self, e: ev.TicketRenumbered) -> None:
        t = self.tickets[e.ticket_id]
        # the paper's number: `old_number` when the ticket already has the new number (an
        # offline ticket given a free one); none to remember when it moves to the paper's
        t.printed_number = e.old_number if e.number == t.number else None
        if self.by_number.get(t.number) is t:
            del self.by_number[t.number]
        t.number = e.number
        self.by_number[t.number] = t
        self.dirty_services.add(t.service)

    def _on_TicketRefused(self, e: ev.TicketRefused) -> None:
        pass

    def _on_TicketPrintFailed(self, e: ev.TicketPrintFailed) -> None:
        pass                                # the ticket keeps its place: nothing changes

    def _on_TicketCalled(self, e: ev.TicketCalled) -> None:
        t = self.tickets[e.ticket_id]
        c = self.counters[e.counter]
        if t.state == "waiting":
            self._dequeue(t)
        t.state, t.counter, t.called_at, t.recalls = "called", e.counter, e.at, 0
        t.target_counter = None
        if t.first_called_at is None:
            t.first_called_at = e.at
            self.estimator.observe_call(self, t, e.at)
        c.current, c.active, c.last_call_at = t.ticket_id, True, e.at
        c.priority_streak = c.priority_streak + 1 if t.priority else 0
        call = {"number": t.number, "counter": e.counter, "service": t.service, "ticket_id": t.ticket_id, "at": e.at}
        if t.printed_number is not None:        # only a renumbered ticket carries the paper's number
            call["printed_number"] = t.printed_number
        self.calls.appendleft(call)
        self.calls_dirty = True
        self.dirty_counters.add(e.counter)
        self.dirty_services.add(t.service)

    def _on_TicketRecalled(self, e: ev.TicketRecalled) -> None:
        self.tickets[e.ticket_id].recalls = e.count

    def _release(self, t: Ticket, at: int) -> None:
        if t.counter is not None:
            c = self.counters[t.counter]
            if c.current == t.ticket_id:
                c.current = None
                c.free_since = at
            self.dirty_counters.add(t.counter)

    def _on_TicketNoShow(self, e: ev.TicketNoShow) -> None:
        t = self.tickets[e.ticket_id]
        self._release(t, e.at)
        t.state, t.no_show_at = "no_show", e.at

    def _on_TicketDone(self, e: ev.TicketDone) -> None:
        t = self.tickets[e.ticket_id]
        self._release(t, e.at)
        t.state = "done"
        self.served += 1
        self.counters[e.counter].last_done = t.ticket_id
        if t.called_at is not None:
            self.estimator.observe_service(self, t, e.at - t.called_at)

    def _on_TicketTransferred(self, e: ev.TicketTransferred) -> None:
        t = self.tickets[e.ticket_id]
        self._release(t, e.at)
        self.dirty_services.add(t.service)
        t.service, t.target_counter = e.to_service, e.to_counter
        self._enqueue(t)                    # keeps its place: ordered by original issue time

    def _on_CounterPaused(self, e: ev.CounterPaused) -> None:
        c = self.counters[e.counter]
        c.paused, c.reason, c.paused_at, c.active = True, e.reason, e.at, True
        self.dirty_counters.add(e.counter)
        self.dirty_services.update(c.services)

    def _on_CounterResumed(self, e: ev.CounterResumed) -> None:
        c = self.counters[e.counter]
        c.paused, c.reason, c.paused_at, c.active = False, "", None, True
        c.resumed_at = e.at
        self.dirty_counters.add(e.counter)
        self.dirty_services.update(c.services)

    def _on_RatingSubmitted(self, e: ev.RatingSubmitted) -> None:
        self.tickets[e.ticket_id].rated = True

    # ------------------------------------------------------------ views (retained state)
    def counter_view(self, n: int) -> dict:
        c = self.counters[n]
        serving = None
        if c.current is not None:
            t = self.tickets[c.current]
            serving = {"ticket_id": t.ticket_id, "number": t.number, "service": t.service,
                       "called_at": t.called_at, "priority": t.priority}
            if t.printed_number is not None:    # a renumbered ticket: the number on its paper
                serving["printed_number"] = t.printed_number
        status = "paused" if c.paused else ("open" if c.active else "closed")
        return {"v": 1, "counter": n, "status": status, "reason": c.reason, "paused_at": c.paused_at,
                "serving": serving, "services": c.services, "day": self.day}

    def service_view(self, service_id: str, now: int) -> dict:
        s = self.cfg.service(service_id)
        line = self.lines[service_id]
        waiting = len(line)
        try:
            self.check_open(service_id, now)
            open_now = True
        except R.Refused:
            open_now = False
        oldest = min((e[0][0] for e in (line.priority[:1] + line.normal[:1])), default=None)
        return {
            "v": 1, "service": service_id, "waiting": waiting, "waiting_priority": len(line.priority),
            "est_wait_s": self.estimator.estimate(self, service_id, waiting, False, now),
            "away": self.estimator.away(self, service_id, now),
            "issued": self.issued[service_id], "cap_left": max(0, s.daily_cap - self.issued[service_id]),
            "open": open_now, "oldest_issued_at": oldest, "day": self.day,
        }

    def calls_view(self) -> dict:
        return {"v": 1, "calls": list(self.calls), "day": self.day}

    def summary_view(self, now: int) -> dict:
        # lines are sorted by (issued_at, number): each one's oldest ticket is its head
        lists = [lst for line in (*self.lines.values(), *self.targeted.values())
                 for lst in (line.priority, line.normal)]
        waiting = sum(len(lst) for lst in lists)
        longest = max((now - lst[0][0][0] for lst in lists if lst), default=0)
        return {
            "v": 1, "day": self.day, "waiting": waiting, "longest_wait_s": max(0, longest) // 1000,
            "counters_open": sum(1 for c in self.counters.values() if c.active and not c.paused),
            "counters_paused": sum(1 for c in self.counters.values() if c.paused),
            "issued": sum(self.issued.values()),
            "served": self.served,
            "at": now,
        }

    def ahead_of(self, t: Ticket) -> int:
        """Waiting tickets of its line issued before it (priority ones count for everyone;
        a priority ticket issued later may still overtake a normal one)."""
        if t.state != "waiting":
            return 0
        line = self.targeted[t.target_counter] if t.target_counter else self.lines[t.service]
        key = t.sort_key()
        ahead = bisect.bisect_left(line.priority, key, key=lambda e: e[0])
        if not t.priority:
            ahead += bisect.bisect_left(line.normal, key, key=lambda e: e[0])
        return ahead

    def ticket_view(self, t: Ticket, now: int, est_wait_s: int | None = None) -> dict:
        """The ticket as devices see it. `est_wait_s`: the estimate just made for it (the
        one its TicketIssued records, which is printed), instead of a new look-ahead run."""
        ahead = self.ahead_of(t)
        if t.state != "waiting":
            est_wait_s = 0
        elif est_wait_s is None:
            est_wait_s = self.estimator.estimate(self, t.service, ahead, bool(t.priority), now)
        return {
            "ticket_id": t.ticket_id, "number": t.number, "service": t.service, "priority": t.priority,
            "issued_at": t.issued_at, "state": t.state, "counter": t.counter, "people_ahead": ahead,
            "est_wait_s": est_wait_s,
            # why a long wait (checked only then: it may take a look-ahead run of its own)
            "away": self.estimator.away(self, t.service, now) if est_wait_s >= AWAY_SHOWN_S else None,
            "day": self.day, "source": t.source, "printed_number": t.printed_number,
        }

    # ------------------------------------------------------------ invariants (for tests)
    def check_invariants(self) -> None:
        serving = [c.current for c in self.counters.values() if c.current is not None]
        assert len(serving) == len(set(serving)), "a ticket is at two counters"
        in_lines = [t.ticket_id for line in list(self.lines.values()) + list(self.targeted.values())
                    for lst in (line.priority, line.normal) for _, t in lst]
        assert len(in_lines) == len(set(in_lines)), "a ticket waits twice"
        for tid in in_lines:
            assert self.tickets[tid].state == "waiting"
        for t in self.tickets.values():
            if t.state == "waiting":
                assert t.ticket_id in in_lines, "a waiting ticket is lost"
            if t.state == "called":
                assert t.counter is not None and self.counters[t.counter].current == t.ticket_id, \
                    "a called ticket has no counter"
        assert sum(self.issued.values()) == len(self.tickets)
        assert self.served == sum(1 for t in self.tickets.values() if t.state == "done")
        waiting = [t for t in self.tickets.values() if t.state == "waiting"]
        now = max((t.issued_at for t in self.tickets.values()), default=0) + 3_600_000
        summary = self.summary_view(now)
        assert summary["waiting"] == len(waiting)
        assert summary["longest_wait_s"] == max([(now - t.issued_at) // 1000 for t in waiting], default=0)
        for t in waiting:
            line = self.targeted[t.target_counter] if t.target_counter else self.lines[t.service]
            lst = line.priority if t.priority else line.priority + line.normal
            assert self.ahead_of(t) == sum(1 for k, _ in lst if k < t.sort_key())
