"""A counter terminal as `qms counter` runs it, on gpiozero mock pins (the `mock_pins`
fixture), and an independent watcher of the service's facts."""
from __future__ import annotations

import json
import threading
import time

from gpiozero import Device as GpioDevice

from qms.counter import texts as T
from qms.counter.keys import GpioKeys, key_pins
from qms.counter.lights import GpioLights
from qms.counter.number_display import SimulatedNumberDisplay
from qms.counter.terminal import CounterTerminal, open_device
from qms.mqtt.client import MqttLink
from qms.protocol.topics import Topics
from support.wait import wait_until


class Facts:
    """Every fact the service publishes, as seen by an independent subscriber."""

    def __init__(self, cfg):
        self.items: list[dict] = []
        self.link = MqttLink(cfg.mqtt, "facts-watcher", subscriptions=[(Topics(cfg.site.id).all_events, 1)],
                             on_message=lambda t, p, props: self.items.append(json.loads(p)))
        self.link.start()
        assert self.link.wait_connected(10)

    def of(self, type_: str) -> list[dict]:
        return [f for f in list(self.items) if f["type"] == type_]


class CounterRig:
    def __init__(self, cfg, device_id: str, counter: int, tmp_path, png=None):
        self.factory = GpioDevice.pin_factory
        tc = cfg.counter_terminal
        self.lines: list[str] = []
        self.display = SimulatedNumberDisplay(tc.number_display, caption=f"QUẦY {counter}", png=png)
        self.lights = GpioLights(tc.lights)
        self.terminal = CounterTerminal(cfg, counter, self.display, self.lights, say=self.lines.append)
        self.pins = key_pins(tc.buttons)
        self.keys = GpioKeys(self.pins, self.terminal.post_edge, time.monotonic)
        self.device = open_device(cfg, device_id, self.terminal,
                                  outbox_path=tmp_path / f"{device_id}.outbox.sqlite").start()
        assert self.device.link.wait_connected(10)
        self._run = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        wait_until(lambda: self.terminal.view is not None, 5, what="retained counter state")

    def _loop(self):
        while self._run and self.terminal.step(0.01):
            pass

    def pin(self, key):
        return self.factory.pin(self.pins[key])

    def press(self, key, hold=0.08):
        p = self.pin(key)
        p.drive_low()
        time.sleep(hold)
        p.drive_high()
        time.sleep(0.06)                       # past the debounce quiet time

    def light(self, name) -> bool:
        return self.factory.pin(getattr(self.terminal.tc.lights, name)).state

    def settle(self, timeout: float = 10.0) -> None:
        """Barrier before asserting that some presses did nothing. The marker is a rating key
        pressed while no rating is open: it only says NO_RATING_NOW. It goes through the same
        pins, debouncer and inbox as the presses before it, so once its line is said they
        were handled; once the outbox is empty, every command they sent was acknowledged,
        i.e. handled by the service."""
        said = self.lines.count(T.NO_RATING_NOW)
        self.press("rate1")
        wait_until(lambda: self.lines.count(T.NO_RATING_NOW) > said, timeout, what="the marker key's line")
        wait_until(lambda: self.device.outbox.count() == 0, timeout, what="every command acknowledged")

    def board(self):
        """What the board shows (text without the alignment padding, blinking)."""
        text, blink = self.display.last
        return text.strip(), blink

    def stop(self):
        self._run = False
        self.thread.join(2)
        self.device.stop()
        self.keys.close()
        self.lights.close()
