"""Service-level alerts for staff, published as retained MQTT messages.

  qms/v1/<site>/alert/wait/<service id>   someone has waited longer than alert_wait_minutes
  qms/v1/<site>/alert/pause/<counter n>   a counter has been paused longer than alert_pause_minutes
  qms/v1/<site>/alert/print/<device>      a kiosk could not print an issued ticket (the fact
                                          ticket.print_failed) in the last PRINT_ALERT_MINUTES

It also follows the alerts the central service raises itself (alert/device/<device>: a
device sent invalid or refused messages today) for the staff alerts page, and never clears
those: they are the service's.

An active alert is retained JSON (see docs/web.md); a resolved one is cleared with an
empty retained payload, which removes it from the broker. Alerts left on the broker by a
previous run are learned from the subscription and cleared if no longer true.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from qms.config.site import SiteConfig
from qms.protocol.topics import Topics
from qms.web.replica import Replica

log = logging.getLogger("qms.web.alerts")

Publish = Callable[[str, bytes], None]      # topic, payload (retained, QoS 1)


PRINT_ALERT_MINUTES = 15          # a kiosk's last unprinted ticket stays an alert this long
_PRINT_REASON_VI = {"paper_out": "hết giấy", "cover_open": "nắp máy in mở", "offline": "máy in không hoạt động",
                    "unknown": "máy in không trả lời"}


def _minutes(ms: int) -> int:
    return max(0, ms) // 60_000


class AlertWatcher:
    KINDS = ("wait", "pause", "print")          # raised and cleared here
    FOLLOWED = ("device",)                      # raised and cleared by the service; shown here

    def __init__(self, cfg: SiteConfig, replica: Replica, publish: Publish):
        self.cfg, self.replica, self.publish = cfg, replica, publish
        self.topics = Topics(cfg.site.id)
        self._current: dict[str, bytes] = {}      # topic -> payload we published
        self._print_failed: dict[str, dict] = {}  # device -> its last ticket.print_failed fact
        self._followed: dict[str, dict] = {}      # topic -> an active alert of the service's
        self._lock = threading.Lock()

    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        return [(self.topics.alert(k, "+"), 1) for k in self.KINDS + self.FOLLOWED] + [
            (self.topics.event("ticket.print_failed"), 1)]

    def on_retained(self, topic: str, payload: bytes) -> None:
        """A retained alert seen on the broker (maybe from before a restart), or a fact."""
        if topic == self.topics.event("ticket.print_failed"):
            self._on_print_failed(payload)
            return
        if topic.rsplit("/", 2)[-2] in self.FOLLOWED:
            self._on_followed(topic, payload)
            return
        with self._lock:
            if payload and topic not in self._current:
                self._current[topic] = b"?"        # unknown content: check() decides

    def _on_followed(self, topic: str, payload: bytes) -> None:
        try:
            alert = json.loads(payload) if payload else None
            if alert is not None and not (isinstance(alert, dict) and isinstance(alert.get("message_vi"), str)):
                raise ValueError("not an alert")
        except ValueError:
            log.warning("ignoring an alert on %s that is not well formed: %r", topic, payload[:200])
            return
        with self._lock:
            if alert and alert.get("active", True):
                self._followed[topic] = alert
            else:
                self._followed.pop(topic, None)

    def active(self) -> list[dict]:
        """Every active alert for the staff alerts page: ours (as last published) and the
        service's, longest waits first, then pauses, printers and devices."""
        with self._lock:
            ours = [json.loads(p) for p in self._current.values() if p != b"?"]
            alerts = ours + list(self._followed.values())
        order = {k: i for i, k in enumerate(self.KINDS + self.FOLLOWED)}
        return sorted(alerts, key=lambda a: (order.get(a.get("kind"), 99), -int(a.get("value_min") or 0),
                                             str(a.get("key", ""))))

    def _on_print_failed(self, payload: bytes) -> None:
        try:
            fact = json.loads(payload)
            dev, at, number = str(fact["dev"] or "kiosk"), int(fact["at"]), int(fact["number"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a ticket.print_failed fact that is not well formed: %r", payload[:200])
            return
        with self._lock:
            self._print_failed[dev] = {"at": at, "number": number, "reason": str(fact.get("reason", ""))}

    def resend(self) -> None:
        """After a reconnect: publish every alert again on the next check (and clear stale ones)."""
        with self._lock:
            self._current = {t: b"?" for t in self._current}

    def desired(self, now: int) -> dict[str, dict]:
        web, core = self.cfg.web, self.replica.core
        out: dict[str, dict] = {}
        with self.replica.lock:
            if web.alert_wait_minutes:
                target = web.alert_wait_minutes * 60_000
                oldest: dict[str, int] = {}
                lines = list(core.lines.values()) + list(core.targeted.values())
                for line in lines:
                    for lst in (line.priority, line.normal):
                        if lst:
                            t = lst[0][1]
                            oldest[t.service] = min(oldest.get(t.service, t.issued_at), t.issued_at)
                for sid, issued in oldest.items():
                    if now - issued > target:
                        s = self.cfg.service(sid)
                        m = _minutes(now - issued)
                        out[self.topics.alert("wait", sid)] = {
                            "kind": "wait", "key": sid, "since": issued + target, "value_min": m,
                            "target_min": web.alert_wait_minutes,
                            "message_vi": f"{s.name_vi}: có người đã chờ {m} phút "
                                          f"(mục tiêu {web.alert_wait_minutes} phút).",
                            "message_en": f"{s.name_en}: someone has waited {m} min "
                                          f"(target {web.alert_wait_minutes} min)."}
            if web.alert_pause_minutes:
                allowed = web.alert_pause_minutes * 60_000
                for n, c in core.counters.items():
                    if c.paused and c.paused_at is not None and now - c.paused_at > allowed:
                        m = _minutes(now - c.paused_at)
                        out[self.topics.alert("pause", str(n))] = {
                            "kind": "pause", "key": str(n), "since": c.paused_at + allowed, "value_min": m,
                            "target_min": web.alert_pause_minutes, "reason": c.reason,
                            "message_vi": f"Quầy {n} đã tạm nghỉ {m} phút "
                                          f"(cho phép {web.alert_pause_minutes} phút).",
                            "message_en": f"Counter {n} has been paused for {m} min "
                                          f"(allowed {web.alert_pause_minutes} min)."}
        with self._lock:
            failures = dict(self._print_failed)
        for dev, f in failures.items():
            if now - f["at"] > PRINT_ALERT_MINUTES * 60_000:
                continue
            why = _PRINT_REASON_VI.get(f["reason"], _PRINT_REASON_VI["unknown"])
            out[self.topics.alert("print", dev)] = {
                "kind": "print", "key": dev, "since": f["at"], "value_min": _minutes(now - f["at"]),
                "target_min": 0, "number": f["number"], "reason": f["reason"],
                "message_vi": f"{dev}: vé số {f['number']} chưa in được ({why}). Vui lòng kiểm tra "
                              f"máy in và hướng dẫn người dân mang số trên màn hình.",
                "message_en": f"{dev}: ticket {f['number']} was not printed ({f['reason'] or 'unknown'}). "
                              f"Please check the printer and help the citizen with the number on screen."}
        return out

    def check(self, now: int) -> dict[str, bytes]:
        """Publish what changed. Returns the active alerts (topic -> payload)."""
        want = {t: json.dumps({"v": 1, "active": True, **a}, ensure_ascii=False).encode()
                for t, a in self.desired(now).items()}
        with self._lock:
            for topic, payload in want.items():
                if self._current.get(topic) != payload:
                    self.publish(topic, payload)
                    self._current[topic] = payload
            for topic in [t for t in self._current if t not in want]:
                self.publish(topic, b"")
                del self._current[topic]
                log.info("alert resolved: %s", topic)
            return dict(self._current)
