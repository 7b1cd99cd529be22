"""The Pi counter terminal: CPython adapters around the counter's one state machine.

The behaviour (what a key does, link-loss policy, never twice, transfer chooser, rating,
alerts, lights, board text) is `qms.firmware.box.CounterBox`, the code the MicroPython
box runs. This module only wires the Pi's parts into it:
- keys: gpiozero edges (qms/counter/keys.py, debounced there) and keyboard characters;
- board: the serial or simulated number display (number_display.py), `show(text, blink)`;
- lights: three gpiozero LEDs or memory (lights.py);
- link and channel: `qms.mqtt.device.Device` (paho, SQLite outbox, command channel);
- lines: the machine's events said in Vietnamese (texts.py).

Everything runs on one thread, the main loop (`step`). Other threads (gpiozero's pin
callbacks, paho's network thread, the keyboard reader) only put items in `inbox`, which
the loop hands to the machine in arrival order.
"""
from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from types import SimpleNamespace

from qms.config.site import SiteConfig
from qms.counter import texts as T
from qms.counter.keys import STAFF_KEYS, KeyEvent, KeyPad
from qms.counter.lights import LIGHTS
from qms.counter.number_display import IDLE
from qms.firmware import protocol
from qms.firmware.box import CounterBox
from qms.protocol.alerts import ActiveAlerts

log = logging.getLogger("qms.counter")

KEYBOARD = {"n": "next", "r": "recall", "s": "no_show", "t": "transfer", "p": "pause", "d": "done",
            "\r": "transfer_confirm", "\n": "transfer_confirm", "\x1b": "cancel", "q": "quit",
            "1": "rate1", "2": "rate2", "3": "rate3", "4": "rate4"}
CHOOSER_IDLE_S = 20.0


def settings(cfg: SiteConfig, counter: int) -> SimpleNamespace:
    """The machine's settings from `[counter_terminal]` (seconds become milliseconds).
    Transfer targets: the site's services (the machine leaves out the ticket's own),
    then the other counters, as (command fields, board text, label)."""
    tc = cfg.counter_terminal
    targets = [({"to_service": s.id}, f"L-{s.code}", T.service_target(s.name_vi)) for s in cfg.services]
    targets += [({"to_counter": c.number}, f"Q-{c.number}", T.counter_target(c.number))
                for c in cfg.counters if c.number != counter]
    return SimpleNamespace(
        counter=counter, repeat_guard_ms=tc.repeat_guard_ms, rating_s=tc.rating_seconds,
        call_timeout_ms=tc.call_timeout_s * 1000, recall_blink_ms=tc.recall_blink_s * 1000,
        chooser_idle_ms=CHOOSER_IDLE_S * 1000, message_ms=0,
        no_show_needs_long_press=tc.no_show_needs_long_press, transfer=targets)


class MonotonicTicks:
    """MicroPython's ticks interface over a CPython clock in seconds (no wrap-around)."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock

    def ticks_ms(self) -> float:
        return self.clock() * 1000

    def ticks_add(self, t: float, delta: float) -> float:
        return t + delta

    def ticks_diff(self, a: float, b: float) -> float:
        return a - b


def key_tuple(ev: KeyEvent) -> tuple:
    """A Pi key event as the machine takes it (the box's KeyPad format)."""
    return ("up", ev.key, ev.long) if ev.kind == "up" else (ev.kind, ev.key)


class _HeldKeys:
    """Keypad interface: edges come through `inbox`; here only the timed "hold" events."""

    def __init__(self, keypad: KeyPad, clock: Callable[[], float]):
        self.keypad, self.clock = keypad, clock

    def poll(self) -> list[tuple]:
        return [key_tuple(ev) for ev in self.keypad.tick(self.clock())]


class _Lights:
    """Lamps interface: the three gpiozero (or memory) lights."""

    def __init__(self, lights):
        self.lights = lights

    def show(self, modes: dict) -> None:
        for name in LIGHTS:
            self.lights.set(name, modes[name])


class _Sent:
    def __init__(self, msg_id: str):
        self.id = msg_id


class _DeviceLink:
    """Link and channel interfaces over `Device`: paho reconnects and its channel thread
    sends and re-sends by itself, and acks come back through `inbox`, so polling and
    pumping are nothing here."""

    def __init__(self, terminal: CounterTerminal):
        self.terminal = terminal

    @property
    def online(self) -> bool:
        return self.terminal.online

    def poll(self) -> bool:
        return False

    def take(self) -> list:
        return []

    def send(self, type_: str, fields: dict | None, call: bool) -> _Sent:
        return _Sent(self.terminal.device.send(type_, **(fields or {}))["id"])

    def withdraw(self, msg_id: str) -> None:
        self.terminal.device.outbox.void(msg_id)

    def full(self) -> bool:
        return False                    # SQLite on a Pi: no limit worth refusing a press for

    def on_ack(self, payload) -> None:
        return None

    def pump(self) -> None:
        pass

    def reconnected(self) -> None:
        pass


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
        link = _DeviceLink(self)
        self.machine = CounterBox(
            settings(cfg, counter), _HeldKeys(self.keypad, clock), display, _Lights(lights),
            link, link, MonotonicTicks(clock), topics=protocol.Topics(cfg.site.id, ""),
            tell=self._tell, alerts=ActiveAlerts(), services=set(cfg.counter(counter).services),
            idle=IDLE, board_words=False)
        self.running = True

    # ------------------------------------------------------------ from other threads
    def post_edge(self, key: str, pressed: bool, at: float) -> None:
        self.inbox.put(("edge", key, pressed, at))

    def post_char(self, ch: str) -> None:
        self.inbox.put(("char", ch))

    def on_message(self, topic: str, payload: bytes, props=None) -> None:
        self.inbox.put(("msg", topic, payload))

    def on_ack(self, msg: dict, ack) -> None:
        self.inbox.put(("ack", ack))

    def stop(self) -> None:
        """End the main loop after the current step (SIGTERM)."""
        self.running = False

    # ------------------------------------------------------------ main loop
    @property
    def online(self) -> bool:
        return self.device is not None and self.device.online

    def step(self, timeout: float = 0.02) -> bool:
        """Hand everything queued to the machine (waiting up to `timeout` for the first
        item), then run its timers and outputs. Returns False once quit was asked for."""
        try:
            item = self.inbox.get(timeout=timeout)
            while True:
                self._handle(item)
                item = self.inbox.get_nowait()
        except queue.Empty:
            pass
        try:
            self.machine.step()
        except Exception:   # noqa: BLE001 - the counter must keep working
            log.exception("counter terminal: step failed")
        return self.running

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        m = self.machine
        try:
            if kind == "edge":
                for ev in self.keypad.edge(item[1], item[2], item[3]):
                    m.on_key(key_tuple(ev))
            elif kind == "char":
                action = KEYBOARD.get(item[1].lower())
                if action == "quit":
                    self.running = False
                elif action is not None:
                    m.act(action)
            elif kind == "msg":
                m.on_message(item[1], item[2])
            elif kind == "ack":
                ack = item[1]
                m.on_ack(ack.id, ack.ok, ack.result if isinstance(ack.result, dict) else {},
                         ack.error, ack.message_vi)
        except Exception:   # noqa: BLE001 - one bad item must not stop the counter
            log.exception("counter terminal: failed to handle %s", kind)

    def _tell(self, what: str, *args) -> None:
        line = T.line(self.counter, what, *args)
        if line is not None:
            self.say(line)
        elif what in ("bad_state", "bad_alert"):
            log.warning("counter %d: %s %s", self.counter, what, args)
        else:
            log.debug("counter %d: %s %s", self.counter, what, args)

    # ------------------------------------------------------------ the machine's state, for callers
    @property
    def view(self) -> dict | None:
        """The counter's state from the service (None until the retained state came)."""
        m = self.machine
        if m.status is None:
            return None
        return {"counter": self.counter, "status": m.status, "serving": m.view_serving}

    @property
    def chooser(self):
        return self.machine.chooser

    @property
    def pending(self) -> dict:
        return self.machine.pending

    @property
    def alerts(self) -> ActiveAlerts:
        return self.machine.alerts

    def transfer_targets(self, from_service: str) -> list[tuple[dict, str, str]]:
        """Other services of the site, then other counters: (fields, label, board text)."""
        return [(fields, label, board) for fields, board, label in self.machine.transfer_targets(from_service)]


def open_device(cfg: SiteConfig, device_id: str, terminal: CounterTerminal, outbox_path=None):
    """The terminal's link to the service: subscribed to its counter's retained state."""
    from qms.mqtt.device import Device
    from qms.protocol.topics import Topics
    topics = Topics(cfg.site.id)
    dev = Device(cfg, device_id, "counter", outbox_path=outbox_path,
                 subscriptions=[(topics.counter_state(terminal.counter), 1), (topics.all_alerts, 1)],
                 on_message=terminal.on_message,
                 status={"counter": terminal.counter})
    dev.channel.on_ack = terminal.on_ack
    terminal.device = dev
    return dev
