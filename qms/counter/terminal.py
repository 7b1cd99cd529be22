"""The counter terminal's logic: keys in; commands, number display and lights out.

Everything runs on one thread, the main loop (`step`). Other threads (gpiozero's pin
callbacks, paho's network thread, the keyboard reader) only put items in `inbox`.

Link-loss policy (docs/counter.md explains why):
- calls (next, recall, no-show, transfer) are refused while the broker is away, with the
  link light blinking and a line saying so; one that is sent but not acknowledged within
  `call_timeout_s` is withdrawn from the outbox and reported as not done. A citizen is
  never called minutes after the press, when staff have moved on;
- done, pause/resume and ratings go through the durable outbox and take effect in order
  when the link is back (they cannot surprise anyone, and a rating must not be lost).
Never twice: each command has one id and the service deduplicates by it; a second press
of an action while one is in flight, or within `repeat_guard_ms` of the last, is ignored.
"""
from __future__ import annotations

import json
import logging
import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from qms.config.site import SiteConfig
from qms.counter import texts as T
from qms.counter.keys import STAFF_KEYS, KeyEvent, KeyPad
from qms.counter.number_display import IDLE, number_text
from qms.protocol.alerts import ActiveAlerts
from qms.protocol.topics import Topics

log = logging.getLogger("qms.counter")

CALL_ACTIONS = {"next": "counter.next", "recall": "counter.recall", "no_show": "counter.no_show"}
KEYBOARD = {"n": "next", "r": "recall", "s": "no_show", "t": "transfer", "p": "pause", "d": "done",
            "\r": "transfer_confirm", "\n": "transfer_confirm", "\x1b": "cancel", "q": "quit",
            "1": "rate1", "2": "rate2", "3": "rate3", "4": "rate4"}
CHOOSER_IDLE_S = 20.0
ALARM_S = 3.0


@dataclass(slots=True)
class Pending:
    action: str
    sent_at: float
    call: bool                   # withdrawn when not acknowledged in time
    number: int | None = None    # the ticket it concerns, for the line shown on the ack
    target: str = ""


@dataclass(slots=True)
class RatingWindow:
    ticket_id: str
    number: int
    until: float


@dataclass(slots=True)
class TransferChooser:
    targets: list[tuple[dict, str, str]]      # (command fields, label, board text)
    index: int = 0
    opened_by_press: bool = False             # the key press that opened it is still down
    touched: float = 0.0


class CounterTerminal:
    def __init__(self, cfg: SiteConfig, counter: int, display, lights, *,
                 clock: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.tc = cfg.counter_terminal
        self.counter = counter
        self.display = display
        self.lights = lights
        self.clock = clock
        self.say = say or (lambda line: log.info("%s", line))
        self.device = None                    # attached by open_device()
        self.inbox: queue.Queue = queue.Queue()
        rating_keys = [f"rate{n}" for n in T.RATING_LEVELS]
        self.keypad = KeyPad(STAFF_KEYS + tuple(rating_keys), self.tc.debounce_ms / 1000,
                             self.tc.long_press_ms / 1000)
        self.view: dict | None = None         # retained state/counter/<n> from the service
        self.alerts = ActiveAlerts()          # retained alert/<kind>/<key> from `qms web`
        self._alert_prefix = Topics(cfg.site.id).base + "/alert/"
        self._services = set(cfg.counter(counter).services)
        self.pending: dict[str, Pending] = {}
        self.last_accepted: dict[str, float] = {}
        self.rating: RatingWindow | None = None
        self.rated: set[str] = set()
        self.chooser: TransferChooser | None = None
        self.done_locally: str | None = None  # ticket finished here, its ack still to come
        self.blink_until = -math.inf
        self.alarm_until = -math.inf
        self._shown: tuple[str, bool] | None = None
        self._state_line = ""
        self._was_online: bool | None = None
        self.running = True

    # ------------------------------------------------------------ from other threads
    def post_edge(self, key: str, pressed: bool, at: float) -> None:
        self.inbox.put(("edge", key, pressed, at))

    def stop(self) -> None:
        """End the main loop after the current step (SIGTERM)."""
        self.running = False

    def post_char(self, ch: str) -> None:
        self.inbox.put(("char", ch))

    def on_message(self, topic: str, payload: bytes, props=None) -> None:
        self.inbox.put(("msg", topic, payload))

    def on_ack(self, msg: dict, ack) -> None:
        self.inbox.put(("ack", ack))

    # ------------------------------------------------------------ main loop
    @property
    def online(self) -> bool:
        return self.device is not None and self.device.online

    def step(self, timeout: float = 0.02) -> bool:
        """Handle everything queued (waiting up to `timeout` for the first item), then the
        timers. Returns False once quit was asked for."""
        try:
            item = self.inbox.get(timeout=timeout)
            while True:
                self._handle(item)
                item = self.inbox.get_nowait()
        except queue.Empty:
            pass
        self.tick(self.clock())
        return self.running

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        try:
            if kind == "edge":
                for ev in self.keypad.edge(item[1], item[2], item[3]):
                    self.on_key(ev)
            elif kind == "char":
                action = KEYBOARD.get(item[1].lower())
                if action is not None:
                    self.act(action)
            elif kind == "msg" and item[1].startswith(self._alert_prefix):
                self._on_alert(item[1], item[2])
            elif kind == "msg":
                self._on_state(item[1], item[2])
            elif kind == "ack":
                self._on_ack(item[1])
        except Exception:   # noqa: BLE001 - one bad item must not stop the counter
            log.exception("counter terminal: failed to handle %s", kind)

    def tick(self, now: float) -> None:
        for ev in self.keypad.tick(now):
            self.on_key(ev)
        if self.rating and now >= self.rating.until:
            self.rating = None
        if self.chooser and now - self.chooser.touched > CHOOSER_IDLE_S:
            self.chooser = None
            self.say(T.TRANSFER_CANCELLED)
        for msg_id, p in list(self.pending.items()):
            if p.call and now - p.sent_at > self.tc.call_timeout_s:
                # withdraw: it must not call someone later; the service dedups if it did arrive
                self.device.outbox.void(msg_id)
                del self.pending[msg_id]
                self.alarm_until = now + ALARM_S
                self.say(T.NO_ANSWER)
        online = self.online
        if online != self._was_online:
            if self._was_online is not None:
                self.say(T.LINK_BACK if online else T.LINK_LOST)
            self._was_online = online
        self._refresh(now, online)

    # ------------------------------------------------------------ keys
    def on_key(self, ev: KeyEvent) -> None:
        key = ev.key
        if key.startswith("rate"):
            if ev.kind == "down":
                self.act(key)
            return
        if key == "transfer":
            self._transfer_key(ev)
            return
        trigger = "hold" if key == "no_show" and self.tc.no_show_needs_long_press else "down"
        if ev.kind == trigger:
            self.act(key)

    def _transfer_key(self, ev: KeyEvent) -> None:
        ch = self.chooser
        if ch is None:
            if ev.kind == "down":
                self.act("transfer")
                if self.chooser:
                    self.chooser.opened_by_press = True
            return
        if ev.kind == "hold" and not ch.opened_by_press:
            self.act("transfer_confirm")
        elif ev.kind == "up":
            if ch.opened_by_press:
                ch.opened_by_press = False
            elif not ev.long:
                self.act("transfer")

    # ------------------------------------------------------------ actions
    def act(self, action: str) -> None:
        now = self.clock()
        if action == "quit":
            self.running = False
            return
        if action.startswith("rate"):
            self._rate(int(action[4:]))
            return
        if self.chooser and action not in ("transfer", "transfer_confirm"):
            self.chooser = None                 # any other key cancels, and only cancels
            self.say(T.TRANSFER_CANCELLED)
            return
        if action == "cancel":
            return
        if action in CALL_ACTIONS:
            self._call(action, CALL_ACTIONS[action], now)
        elif action == "transfer":
            self._choose_transfer(now)
        elif action == "transfer_confirm":
            self._confirm_transfer(now)
        elif action == "done":
            self._done(now)
        elif action == "pause":
            self._pause(now)

    def _guarded(self, action: str, now: float) -> bool:
        """True when this press must be ignored: the same action is in flight, or was
        accepted a moment ago (a double tap, a bounce the debouncer let through, key repeat)."""
        if any(p.action == action for p in self.pending.values()):
            self.say(T.WAITING_FOR_SERVICE)
            return True
        if now - self.last_accepted.get(action, -math.inf) < self.tc.repeat_guard_ms / 1000:
            log.debug("ignoring a repeated %s", action)
            return True
        self.last_accepted[action] = now
        return False

    def _refuse_offline(self, now: float) -> bool:
        if self.online:
            return False
        self.alarm_until = now + ALARM_S
        self.say(T.OFFLINE_REFUSED)
        return True

    def _call(self, action: str, type_: str, now: float, **fields) -> None:
        serving = self.serving()
        if action != "next" and serving is None:
            self.say(T.NOT_SERVING)
            return
        if self._refuse_offline(now) or self._guarded(action, now):
            return
        self._send(action, type_, now, call=True, number=serving and serving["number"], **fields)

    def _send(self, action: str, type_: str, now: float, *, call: bool, number=None, target="",
              **fields) -> dict:
        msg = self.device.send(type_, **fields)
        self.pending[msg["id"]] = Pending(action, now, call, number, target)
        return msg

    def _choose_transfer(self, now: float) -> None:
        if self.chooser:
            self.chooser.index = (self.chooser.index + 1) % len(self.chooser.targets)
            self.chooser.touched = now
        else:
            serving = self.serving()
            if serving is None:
                self.say(T.NOT_SERVING)
                return
            targets = self.transfer_targets(serving["service"])
            if not targets:
                self.say(T.NO_TARGETS)
                return
            self.chooser = TransferChooser(targets, touched=now)
        _, label, _ = self.chooser.targets[self.chooser.index]
        self.say(T.choosing(label, self.chooser.index + 1, len(self.chooser.targets)))

    def transfer_targets(self, from_service: str) -> list[tuple[dict, str, str]]:
        """Other services of the site, then other counters: (fields, label, board text)."""
        out = [({"to_service": s.id}, T.service_target(s.name_vi), f"L-{s.code}")
               for s in self.cfg.services if s.id != from_service]
        out += [({"to_counter": c.number}, T.counter_target(c.number), f"Q-{c.number}")
                for c in self.cfg.counters if c.number != self.counter]
        return out

    def _confirm_transfer(self, now: float) -> None:
        ch, self.chooser = self.chooser, None
        if ch is None:
            return
        fields, label, _ = ch.targets[ch.index]
        serving = self.serving()
        if serving is None:
            self.say(T.NOT_SERVING)
            return
        if self._refuse_offline(now) or self._guarded("transfer", now):
            return
        self._send("transfer", "counter.transfer", now, call=True, number=serving["number"],
                   target=label, **fields)

    def _done(self, now: float) -> None:
        serving = self.serving()
        if serving is None:
            self.say(T.NOT_SERVING)
            return
        if self._guarded("done", now):
            return
        self._send("done", "counter.done", now, call=False, number=serving["number"])
        self.done_locally = serving["ticket_id"]
        self.rating = RatingWindow(serving["ticket_id"], serving["number"], now + self.tc.rating_seconds)
        self.say(T.done(serving["number"]) if self.online else T.QUEUED_OFFLINE)

    def _pause(self, now: float) -> None:
        if self._guarded("pause", now):
            return
        paused = bool(self.view and self.view.get("status") == "paused")
        self._send("pause", "counter.resume" if paused else "counter.pause", now, call=False)
        if not self.online:
            self.say(T.QUEUED_OFFLINE)

    def _rate(self, level: int) -> None:
        now = self.clock()
        r = self.rating
        if r is None or now >= r.until:
            self.say(T.NO_RATING_NOW)
            return
        if r.ticket_id in self.rated:
            self.say(T.ALREADY_RATED)
            return
        self.rated.add(r.ticket_id)         # one rating per ticket, even before the ack
        self.rating = None
        self._send("rate", "rating.submit", now, call=False, ticket_id=r.ticket_id, level=level)
        self.say(T.thanks(level))

    # ------------------------------------------------------------ from the service
    def serving(self) -> dict | None:
        s = (self.view or {}).get("serving")
        if not isinstance(s, dict) or s.get("ticket_id") == self.done_locally:
            return None
        return s

    def _on_state(self, topic: str, payload: bytes) -> None:
        try:
            view = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            log.warning("ignoring a counter state that is not JSON on %s", topic)
            return
        if not isinstance(view, dict) or view.get("counter") != self.counter:
            log.warning("ignoring a counter state for another counter on %s", topic)
            return
        self.view = view

    def _on_alert(self, topic: str, payload: bytes) -> None:
        kind, _, key = topic[len(self._alert_prefix):].partition("/")
        before = self.alerts.alerts.get((kind, key))
        try:
            change = self.alerts.apply(kind, key, payload)
        except ValueError as e:
            log.warning("ignoring a malformed alert on %s: %s", topic, e)
            return
        if change == "raised":
            self.say(T.alert_raised(self.alerts.alerts[(kind, key)].message_vi))
        elif change == "cleared" and before is not None:
            self.say(T.alert_cleared(before.message_vi))

    def alerts_for_me(self) -> list:
        """Alerts this counter can act on: a long wait in one of its services, its own pause."""
        return [a for a in self.alerts.ordered()
                if (a.kind == "wait" and a.key in self._services)
                or (a.kind == "pause" and a.key == str(self.counter))]

    def _on_ack(self, ack) -> None:
        p = self.pending.pop(ack.id, None)
        if p is None:
            return                    # withdrawn, or sent by an earlier run of this terminal
        if not ack.ok:
            self.alarm_until = self.clock() + ALARM_S
            self.say(T.refused(ack.message_vi))
            if p.action == "done":
                self.done_locally = None
                self.rating = None
            return
        result = ack.result if isinstance(ack.result, dict) else {}
        state = result.get("state") if isinstance(result.get("state"), dict) else {}
        if p.action == "next":
            serving = state.get("serving")
            self.say(T.called(serving["number"], self.counter) if serving else T.NO_ONE_WAITING)
        elif p.action == "recall":
            self.blink_until = self.clock() + self.tc.recall_blink_s
            self.say(T.recalled(p.number))
        elif p.action == "no_show":
            self.say(T.no_show(p.number))
        elif p.action == "transfer":
            self.say(T.transferred(p.number, p.target))
        elif p.action == "pause":
            self.say(T.PAUSED if state.get("status") == "paused" else T.RESUMED)

    # ------------------------------------------------------------ outputs
    def board_text(self, now: float) -> tuple[str, bool]:
        if self.chooser:
            return self.chooser.targets[self.chooser.index][2], False
        serving = self.serving()
        if serving is None:
            return IDLE, False
        return number_text(serving["number"]), now < self.blink_until

    def _refresh(self, now: float, online: bool) -> None:
        shown = self.board_text(now)
        if shown != self._shown:
            self._shown = shown
            self.display.show(*shown)
        serving = self.serving()
        paused = bool(self.view and self.view.get("status") == "paused")
        pause_pending = any(p.action == "pause" for p in self.pending.values())
        self.lights.set("busy", "on" if serving else "off")
        self.lights.set("paused", "blink" if pause_pending else ("on" if paused else "off"))
        # one attention light: fast blink = an action failed, on = no link, slow = an alert
        self.lights.set("link", "blink" if now < self.alarm_until else "on" if not online
                        else "slow" if self.alerts_for_me() else "off")
        line = T.state_line(self.counter, serving and serving["number"], paused, online,
                            len(self.pending), self.rating is not None, len(self.alerts))
        if line != self._state_line:
            self._state_line = line
            self.say(line)


def open_device(cfg: SiteConfig, device_id: str, terminal: CounterTerminal, outbox_path=None):
    """The terminal's link to the service: subscribed to its counter's retained state."""
    from qms.mqtt.device import Device
    topics = Topics(cfg.site.id)
    dev = Device(cfg, device_id, "counter", outbox_path=outbox_path,
                 subscriptions=[(topics.counter_state(terminal.counter), 1), (topics.all_alerts, 1)],
                 on_message=terminal.on_message,
                 status={"counter": terminal.counter})
    dev.channel.on_ack = terminal.on_ack
    terminal.device = dev
    return dev
