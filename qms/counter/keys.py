"""Staff and rating keys: gpiozero buttons, debounced and timed in our code.

gpiozero's `bounce_time` is ignored by mock pins and done differently by each pin
factory, and a real pin factory calls back from its own thread. So the callbacks only
stamp the raw edge with our clock and hand it to the main loop (`sink`), and the
`Debouncer` there turns raw edges into key events, with a clock the tests control.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# key names; the rating keys are "rate4" (best, "Rất hài lòng") .. "rate1" ("Không hài lòng")
STAFF_KEYS = ("next", "recall", "no_show", "transfer", "pause", "done")


@dataclass(frozen=True, slots=True)
class KeyEvent:
    key: str
    kind: str            # "down" | "hold" (held past the long-press time) | "up"
    at: float            # seconds, the terminal's clock
    long: bool = False   # for "up": a "hold" came before it


class Debouncer:
    """One key. The first edge counts at once (no latency added to a call); edges within
    `debounce_s` after it are bounces and only update the raw level; when that quiet time
    is over, the debounced state catches up with the raw level if they differ."""

    def __init__(self, key: str, debounce_s: float, long_press_s: float):
        self.key = key
        self.debounce_s = debounce_s
        self.long_press_s = long_press_s
        self.raw = False
        self.pressed = False
        self.quiet_until = -math.inf
        self.down_at = 0.0
        self.held = False

    def edge(self, pressed: bool, at: float) -> list[KeyEvent]:
        self.raw = pressed
        if at < self.quiet_until:
            return []
        return self._settle(at)

    def tick(self, now: float) -> list[KeyEvent]:
        out: list[KeyEvent] = []
        if now >= self.quiet_until and self.raw != self.pressed:
            out += self._settle(self.quiet_until)
        if self.pressed and not self.held and now - self.down_at >= self.long_press_s:
            self.held = True
            out.append(KeyEvent(self.key, "hold", now))
        return out

    def _settle(self, at: float) -> list[KeyEvent]:
        if self.raw == self.pressed:
            return []
        self.pressed = self.raw
        self.quiet_until = at + self.debounce_s
        if self.pressed:
            self.down_at, self.held = at, False
            return [KeyEvent(self.key, "down", at)]
        return [KeyEvent(self.key, "up", at, long=self.held)]


class KeyPad:
    """All keys of a terminal: raw edges in, key events out (called on the main loop only)."""

    def __init__(self, keys, debounce_s: float, long_press_s: float):
        self.debouncers = {k: Debouncer(k, debounce_s, long_press_s) for k in keys}

    def edge(self, key: str, pressed: bool, at: float) -> list[KeyEvent]:
        d = self.debouncers.get(key)
        return d.edge(pressed, at) if d else []

    def tick(self, now: float) -> list[KeyEvent]:
        return [e for d in self.debouncers.values() for e in d.tick(now)]


def key_pins(buttons) -> dict[str, int]:
    """Key name -> BCM pin from the `[counter_terminal.buttons]` section (unwired keys left out)."""
    pins = {k: getattr(buttons, k) for k in STAFF_KEYS if getattr(buttons, k) is not None}
    levels = range(len(buttons.rating), 0, -1)      # best first
    pins.update({f"rate{level}": pin for level, pin in zip(levels, buttons.rating)})
    return pins


class GpioKeys:
    """Real gpiozero Buttons (pull-up, pressed = pin to ground). Each edge goes to
    `sink(key, pressed, at)` from whatever thread gpiozero calls back on."""

    def __init__(self, pins: dict[str, int], sink: Callable[[str, bool, float], None],
                 clock: Callable[[], float]):
        from gpiozero import Button  # imported here: keyboard terminals need no GPIO
        dup = {p for p in pins.values() if list(pins.values()).count(p) > 1}
        if dup:
            raise ValueError(f"pin(s) {sorted(dup)} given to more than one key in [counter_terminal.buttons]")
        self.buttons = {}
        for key, pin in pins.items():
            b = Button(pin, pull_up=True, bounce_time=None)
            b.when_pressed = _edge_callback(sink, key, True, clock)
            b.when_released = _edge_callback(sink, key, False, clock)
            self.buttons[key] = b

    def close(self) -> None:
        for b in self.buttons.values():
            b.close()


def _edge_callback(sink, key: str, pressed: bool, clock):
    def on_edge():
        sink(key, pressed, clock())
    return on_edge
