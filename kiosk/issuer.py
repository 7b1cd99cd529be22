"""Getting a number: from the service when it answers, from the kiosk's own block when not.

`TicketIssuer.issue()` never reports a network fault to the citizen. It asks the
service (MQTT 5 request/response through the durable outbox) only when an answer can
be expected soon; otherwise — broker gone, the service's last will seen, or a request
just timed out — it prints at once from the offline block and sends `ticket.offline`
through the same outbox. A timed-out request keeps its ticket id on the offline copy:
the service issues the request when it comes back, then renumbers it to the printed
number (paper wins).

The kiosk's clock is not trusted to decide: a Pi has no RTC, and after a power cut its
clock says the last shutdown until NTP syncs. Online, the service decides hours and the
day (the kiosk refuses nothing from its own clock before asking). Offline, it numbers and
refuses on `trusted_now()`: its clock, but never earlier than the latest service time it
saw (acks, retained state) or its own last offline ticket, plus the time elapsed since.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from qms.config.site import SiteConfig
from qms.core import refusals as R
from qms.core.hours import check_open
from qms.core.wait_text import away_phrase
from qms.kiosk.offline import BlockExhausted, OfflineNumbers
from qms.kiosk.printing import PrintedTicket
from qms.mqtt.device import Device
from qms.mqtt.outbox import new_id

log = logging.getLogger("qms.kiosk.issuer")


@dataclasses.dataclass(slots=True)
class Refusal:
    code: str
    message_vi: str
    message_en: str


def _now_ms() -> int:
    return int(time.time() * 1000)


NO_OFFLINE_NUMBER = Refusal(
    "offline_block_used",
    "Hiện chưa thể cấp số tự động, vui lòng liên hệ cán bộ hướng dẫn.",
    "A number cannot be issued automatically right now. Please ask a staff member for help.")


class TicketIssuer:
    def __init__(self, cfg: SiteConfig, device: Device, clock: Callable[[], int] = _now_ms,
                 timeout_s: float | None = None):
        self.cfg = cfg
        self.device = device
        self.clock = clock
        self.timeout_s = cfg.kiosk.request_timeout_s if timeout_s is None else timeout_s
        self.numbers = OfflineNumbers(cfg, device.id, device.outbox.conn)
        self.service_views: dict[str, dict] = {}      # retained state/service/<id>
        self._view_at: dict[str, int] = {}
        self.service_online: dict[str, bool] = {}     # retained status of service devices
        self._suspect = threading.Event()             # a request timed out, no ack since
        self.stats = {"online": 0, "offline": 0, "timeouts": 0, "refused": 0}
        # renumbered offline tickets not called yet, for the screen: (ticket id, day, printed, number)
        self.renumbered: list[tuple[str, str, int, int]] = self.numbers.renumbered_waiting()
        self._seen_ms, self._seen_mono = 0, 0.0           # latest trusted time seen, and when
        self._clock_behind_logged = False
        last_own = self.numbers.conn.execute("SELECT max(issued_at) FROM offline_tickets").fetchone()[0]
        if last_own:
            self.saw_time(int(last_own))
        prev = device.channel.on_ack

        def on_ack(msg, ack):
            self._suspect.clear()                     # the service answers again
            if ack.ok and isinstance(ack.result, dict) and isinstance(ack.result.get("ticket"), dict):
                self._note_renumbered(ack.result["ticket"])
            if prev:
                prev(msg, ack)
        device.channel.on_ack = on_ack

    def _note_renumbered(self, ticket: dict) -> None:
        """One of our offline tickets is called by another number (docs/kiosk.md): kept in
        the kiosk's store and shown on its screen until it is called (`renumbered`)."""
        with self.device.outbox.lock:                 # (the list too: the main loop drops called ones)
            got = self.numbers.renumbered(ticket, self.clock())
            if got is None:
                return
            day, printed, number = got
            self.renumbered = self.renumbered + [(ticket["ticket_id"], day, printed, number)]
        self.stats["renumbered"] = self.stats.get("renumbered", 0) + 1
        log.warning("offline ticket %d is called as %d (the service renumbered it)", printed, number)

    def called(self, ticket_ids: list[str]) -> bool:
        """Tickets called in the hall (a fact, or the retained last calls): a renumbered
        one's notice is done. True when the screen changes."""
        mine = [tid for tid, *_ in self.renumbered if tid in ticket_ids]
        if not mine:
            return False
        with self.device.outbox.lock:
            self.numbers.renumbered_called(mine, self.clock())
            self.renumbered = [r for r in self.renumbered if r[0] not in mine]
        return True

    def renumbered_today(self) -> list[tuple[int, int]]:
        """(printed, new number) of today's renumbered tickets not called yet, oldest first."""
        today = self.numbers.day_of(self.trusted_now())
        return [(printed, number) for _, day, printed, number in self.renumbered if day == today]

    # ------------------------------------------------------------ what we know of the service
    def on_service_view(self, view: dict) -> None:
        if isinstance(view, dict) and isinstance(view.get("service"), str):
            self.service_views[view["service"]] = view
            self._view_at[view["service"]] = self.trusted_now()
            if isinstance(view.get("oldest_issued_at"), int):       # the service's clock
                self.saw_time(view["oldest_issued_at"])

    # ------------------------------------------------------------ whose clock
    def saw_time(self, ms: int) -> None:
        """A time the service (or this kiosk, earlier) stamped: now is not before it."""
        if ms > self._seen_ms + int((time.monotonic() - self._seen_mono) * 1000):
            self._seen_ms, self._seen_mono = ms, time.monotonic()

    def trusted_now(self) -> int:
        """The kiosk's clock, but never before the latest time it saw plus the time since."""
        now = self.clock()
        if not self._seen_ms:
            return now
        floor = self._seen_ms + int((time.monotonic() - self._seen_mono) * 1000)
        if now >= floor:
            return now
        if not self._clock_behind_logged:
            self._clock_behind_logged = True
            log.warning("this machine's clock is %.0f s behind the last time seen (no RTC, NTP not "
                        "synced yet?): offline tickets use the time seen", (floor - now) / 1000)
        return floor

    def on_service_status(self, device: str, status: dict) -> None:
        self.service_online[device] = bool(status.get("online", False))

    def answer_expected(self) -> bool:
        """False when waiting for the service would only delay the citizen."""
        if not self.device.online or self._suspect.is_set():
            return False
        return not self.service_online or any(self.service_online.values())

    # ------------------------------------------------------------ issuing
    def issue(self, service: str, priority: str | None = None) -> PrintedTicket | Refusal:
        online = self.answer_expected()
        # online the service's clock rules: nothing is refused here on this machine's hours
        refusal = self._local_refusal(service, self.trusted_now(), hours=not online)
        if refusal:
            self.stats["refused"] += 1
            return refusal
        ticket_id = new_id()
        if online:
            _, ack = self.device.request("ticket.request", self.timeout_s, service=service,
                                         priority=priority, ticket_id=ticket_id)
            if ack is not None:
                if not ack.ok:
                    self.stats["refused"] += 1
                    return Refusal(ack.error or "refused", ack.message_vi or "", ack.message_en or "")
                self.stats["online"] += 1
                if isinstance(ack.result["ticket"].get("issued_at"), int):
                    self.saw_time(ack.result["ticket"]["issued_at"])
                return self.printed(ack.result["ticket"], offline=False)
            self.stats["timeouts"] += 1
            self._suspect.set()
            log.warning("service did not answer within %.1f s: printing offline", self.timeout_s)
            # a refusal on hours the service would have given, now from the time we trust
            refusal = self._local_refusal(service, self.trusted_now())
            if refusal:
                self.stats["refused"] += 1
                return refusal
        return self._offline(service, priority, ticket_id, self.trusted_now())

    def _local_refusal(self, service: str, now: int, hours: bool = True) -> Refusal | None:
        """What the kiosk can refuse by itself: hours from the config (offline only), cap
        from the last state of the service (for the day that state is of)."""
        if hours:
            try:
                check_open(self.cfg, service, now)
            except R.Refused as e:
                return Refusal(e.code, e.vi, e.en)
        view = self.service_views.get(service)
        if view and view.get("day") == self.numbers.day_of(now) and view.get("cap_left") == 0:
            s = self.cfg.service(service)
            e = R.daily_cap(s.name_vi, s.name_en)
            return Refusal(e.code, e.vi, e.en)
        return None

    def _offline(self, service: str, priority: str | None, ticket_id: str, now: int) -> PrintedTicket | Refusal:
        outbox = self.device.outbox
        with outbox.lock:
            try:
                number = self.numbers.next_number(service, now)
            except BlockExhausted:
                log.error("offline block of %s used up for today", service)
                return NO_OFFLINE_NUMBER
            self.device.send("ticket.offline", extra=self.numbers.record(service, number, ticket_id, now),
                             ticket_id=ticket_id, service=service, priority=priority, number=number,
                             issued_at=now)
        self.stats["offline"] += 1
        view = self.service_views.get(service, {})
        ahead = int(view.get("waiting", 0)) + self._offline_since(service, now)
        return self.printed({"ticket_id": ticket_id, "number": number, "service": service,
                             "priority": priority, "issued_at": now, "people_ahead": ahead,
                             "est_wait_s": int(view.get("est_wait_s", 0))}, offline=True)

    def _offline_since(self, service: str, now: int) -> int:
        """Offline tickets of this service, before this one, the last known state cannot include."""
        since = self._view_at.get(service, 0)
        return sum(1 for s, _, _, at in self.numbers.used(self.numbers.day_of(now))
                   if s == service and since <= at < now)

    def printed(self, t: dict, offline: bool = False) -> PrintedTicket:
        """A ticket view (the service's ack, or `qms web`'s check-in answer) as the kiosk prints it."""
        s = self.cfg.service(t["service"])
        prio = next((p.name_vi for p in self.cfg.priority_classes if p.id == t.get("priority")), "")
        url = self.cfg.site.public_url.rstrip("/")
        return PrintedTicket(
            ticket_id=t["ticket_id"], number=int(t["number"]), service=s.id, center=self.cfg.site.center,
            site_name=self.cfg.site.name, service_vi=s.name_vi, service_en=s.name_en,
            issued_at=int(t["issued_at"]), tz=self.cfg.tz, people_ahead=int(t.get("people_ahead", 0)),
            est_wait_s=int(t.get("est_wait_s", 0)), priority_vi=prio,
            qr=f"{url}/t/{t['ticket_id']}" if url else t["ticket_id"], offline=offline,
            **_away_texts(t.get("away"), self.cfg.tz))


def _away_texts(away: dict | None, tz) -> dict:
    """The printed reason for a long wait, when the service says every counter is away."""
    phrase = away_phrase(away, tz)
    return {"away_vi": phrase[0], "away_en": phrase[1]} if phrase else {}
