"""`BoardModel`: what the hall display shows, fed by (topic, payload) messages. No I/O, no pygame.

Inputs are the service's retained state (state/counter/<n>, state/service/<id>,
state/calls, state/summary, state/notice — formats of QueueCore.*_view), the facts
event/ticket.called and event/ticket.recalled, which also trigger announcements, and the
staff alerts alert/<kind>/<key> (retained; empty = cleared), shown in a small strip.
The other points of this center, read from the city by the app (qms.citylink), are set
with `set_points` and shown in a band of their own; they never announce.
Retained state alone never announces: a display that reboots must not call anybody again.
Every change marks the regions it affects dirty, so the renderer redraws only those.
"""
from __future__ import annotations

import logging
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import msgspec

from qms.protocol.alerts import ActiveAlerts
from qms.protocol.topics import Topics

log = logging.getLogger("qms.display")

# screen regions, redrawn independently
HEADER, HERO, CALLS, COUNTERS, SERVICES, TICKER, LINK, ALERTS, POINTS = (
    "header", "hero", "calls", "counters", "services", "ticker", "link", "alerts", "points")
ALL_REGIONS = frozenset({HEADER, HERO, CALLS, COUNTERS, SERVICES, TICKER, LINK, ALERTS, POINTS})


# ------------------------------------------------------------------ wire formats (tolerant:
# unknown fields are ignored so that a newer service does not blank older displays)
class Serving(msgspec.Struct):
    number: int
    service: str = ""
    ticket_id: str = ""


class CounterView(msgspec.Struct):
    counter: int
    status: Literal["open", "paused", "closed"]
    reason: str = ""
    serving: Serving | None = None


class ServiceView(msgspec.Struct):
    service: str
    waiting: int
    waiting_priority: int = 0
    est_wait_s: int | None = None
    open: bool = True
    away: dict | None = None       # every counter serving it is away (QueueCore.service_view)


class CallView(msgspec.Struct):
    number: int
    counter: int
    service: str = ""
    ticket_id: str = ""
    at: int = 0
    printed_number: int | None = None   # the citizen's paper says this (a renumbered ticket)


class CallsView(msgspec.Struct):
    calls: list[CallView]
    day: str = ""


class Notice(msgspec.Struct):
    text_vi: str = ""
    text_en: str = ""


class SummaryView(msgspec.Struct):
    waiting: int = 0
    counters_open: int = 0
    counters_paused: int = 0


class CalledFact(msgspec.Struct):
    ticket_id: str
    number: int
    counter: int
    at: int
    service: str = ""
    printed_number: int | None = None


@dataclass(frozen=True)
class Announce:
    number: int
    counter: int
    recall: bool = False
    printed_number: int | None = None   # said too: "… số 2041, vé in số 2003, …"


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


class BoardModel:
    def __init__(self, site_id: str, counters: list[int], services: list[str],
                 ticker: str = "", clock: Callable[[], float] = time.monotonic, kept_calls: int = 20):
        self.prefix = Topics(site_id).base + "/"
        self.clock = clock
        self.counters: dict[int, CounterView] = {n: CounterView(n, "closed") for n in counters}
        self.services: dict[str, ServiceView] = {s: ServiceView(s, 0) for s in services}
        self.calls: list[CallView] = []             # newest first
        self.kept_calls = kept_calls
        self.default_ticker = nfc(ticker)
        self.notice: Notice | None = None
        self.summary = SummaryView()
        self.alerts = ActiveAlerts()                # for staff: a small strip, not the hero
        self.points: list = []                      # the center's other points (qms.citylink CityPoint)
        self.connected = False
        self.hero: CallView | None = None
        self.hero_since: float | None = None        # when the current call started blinking
        self.dirty: set[str] = set(ALL_REGIONS)
        self.malformed = 0
        self._facts_seen: deque[tuple] = deque(maxlen=200)   # QoS 1 may deliver twice

    # ------------------------------------------------------------ inputs
    def set_connected(self, up: bool) -> None:
        if up != self.connected:
            self.connected = up
            self.dirty.add(LINK)

    def set_points(self, points: list | None) -> None:
        """The other points of this center as the city last said (None or [] = none to
        show: no city, or it is unreachable). Never announces anything."""
        points = list(points or [])
        if points != self.points:
            self.points = points
            self.dirty.add(POINTS)

    def handle(self, topic: str, payload: bytes) -> list[Announce]:
        """Apply one message; returns the announcements it triggers. Bad input is logged and
        ignored (the board keeps what it showed)."""
        if not topic.startswith(self.prefix):
            return []
        path = topic[len(self.prefix):].split("/")
        try:
            return self._route(path, payload)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as e:
            self.malformed += 1
            if self.malformed <= 20 or self.malformed % 1000 == 0:
                log.warning("ignored malformed message #%d on %s: %s", self.malformed, topic, str(e)[:200])
            return []

    def _route(self, path: list[str], payload: bytes) -> list[Announce]:
        match path:
            case ["state", "counter", n]:
                view = msgspec.json.decode(payload, type=CounterView)
                if str(view.counter) != n:
                    raise ValueError(f"counter {view.counter} on the topic of counter {n}")
                if self.counters.get(view.counter) != view:
                    self.counters[view.counter] = view
                    self.dirty.add(COUNTERS)
                    self._drop_finished_hero()
            case ["state", "service", sid]:
                view = msgspec.json.decode(payload, type=ServiceView)
                if view.service != sid:
                    raise ValueError(f"service {view.service!r} on the topic of {sid!r}")
                if self.services.get(sid) != view:
                    self.services[sid] = view
                    self.dirty.add(SERVICES)
            case ["state", "calls"]:
                self._set_calls(msgspec.json.decode(payload, type=CallsView).calls)
            case ["state", "notice"]:
                notice = msgspec.json.decode(payload, type=Notice) if payload else None
                if notice is not None:
                    notice = Notice(nfc(notice.text_vi), nfc(notice.text_en))
                if notice != self.notice:
                    self.notice = notice
                    self.dirty.add(TICKER)
            case ["state", "summary"]:
                self.summary = msgspec.json.decode(payload, type=SummaryView)
            case ["event", "ticket.called" | "ticket.recalled" as kind]:
                return self._fact(kind, msgspec.json.decode(payload, type=CalledFact))
            case ["alert", kind, key]:
                if self.alerts.apply(kind, key, payload):
                    self.dirty.add(ALERTS)
        return []

    def _fact(self, kind: str, f: CalledFact) -> list[Announce]:
        key = (kind, f.ticket_id, f.at)
        if key in self._facts_seen:
            return []
        self._facts_seen.append(key)
        printed = f.printed_number if f.printed_number != f.number else None
        call = CallView(f.number, f.counter, f.service, f.ticket_id, f.at, printed)
        recall = kind == "ticket.recalled"
        if not recall and not any(c.ticket_id == f.ticket_id and c.at == f.at for c in self.calls):
            self.calls = ([call] + self.calls)[: self.kept_calls]
            self.dirty.add(CALLS)
        # the counter now serves this ticket: show it before its retained state arrives
        old = self.counters.get(f.counter)
        if old is None or old.serving is None or old.serving.number != f.number:
            self.counters[f.counter] = CounterView(f.counter, "open", "",
                                                   Serving(f.number, f.service, f.ticket_id))
            self.dirty.add(COUNTERS)
        self.hero, self.hero_since = call, self.clock()
        self.dirty.add(HERO)
        return [Announce(f.number, f.counter, recall, printed)]

    def _drop_finished_hero(self) -> None:
        """The big call goes once its counter no longer serves that ticket (done, no-show,
        paused): "ĐANG MỜI 4001 → Quầy 4" next to a Quầy 4 tile showing free contradicts."""
        h = self.hero
        if h is None:
            return
        c = self.counters.get(h.counter)
        if c is not None and (c.serving is None or (c.serving.ticket_id or "") not in ("", h.ticket_id)
                              or (not c.serving.ticket_id and c.serving.number != h.number)):
            self.hero, self.hero_since = None, None
            self.dirty.add(HERO)

    def _set_calls(self, calls: list[CallView]) -> None:
        calls = calls[: self.kept_calls]
        if calls == self.calls:
            return
        self.calls = calls
        self.dirty.add(CALLS)
        newest = calls[0] if calls else None
        if newest is None or self.hero is None or (newest.ticket_id, newest.at) != (self.hero.ticket_id, self.hero.at):
            # state caught up with a call whose fact we missed (or a new day): show, do not blink
            if newest is None or self.hero is None or newest.at >= self.hero.at:
                self.hero, self.hero_since = newest, None
                self.dirty.add(HERO)
                self._drop_finished_hero()

    # ------------------------------------------------------------ derived
    def blinking(self, blink_seconds: float) -> bool:
        return self.hero_since is not None and self.clock() - self.hero_since < blink_seconds

    def ticker_text(self) -> str:
        if self.notice and (self.notice.text_vi or self.notice.text_en):
            return "   •   ".join(t for t in (self.notice.text_vi, self.notice.text_en) if t)
        return self.default_ticker

    def recent_calls(self, n: int) -> list[CallView]:
        """The calls before the one shown large."""
        rest = self.calls[1:] if self.calls and self.hero and self.calls[0].ticket_id == self.hero.ticket_id \
            else self.calls
        return rest[:n]

    def take_dirty(self) -> set[str]:
        d, self.dirty = self.dirty, set()
        return d
