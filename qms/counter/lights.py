"""Status lights of a counter terminal: busy, paused, link down.

Each light is "off", "on", "blink" (fast: an action failed) or "slow" (a staff alert for
this counter: a long wait in one of its services, or its own long pause). `GpioLights` drives gpiozero LEDs; `MemoryLights`
only remembers (a keyboard terminal prints them in its state line). The terminal sets
every light each tick; both backends act only on a change.
"""
from __future__ import annotations

LIGHTS = ("busy", "paused", "link")
MODES = ("off", "on", "blink", "slow")
BLINK_S = {"blink": 0.15, "slow": 1.0}      # on time = off time


class MemoryLights:
    def __init__(self) -> None:
        self.modes = {name: "off" for name in LIGHTS}

    def set(self, name: str, mode: str) -> bool:
        """Returns True when the light changed."""
        if mode not in MODES or name not in self.modes:
            raise ValueError(f"light {name!r} mode {mode!r}")
        if self.modes[name] == mode:
            return False
        self.modes[name] = mode
        return True

    def close(self) -> None:
        pass


class GpioLights(MemoryLights):
    def __init__(self, pins) -> None:
        from gpiozero import LED  # imported here: keyboard terminals need no GPIO
        super().__init__()
        self.leds = {name: LED(getattr(pins, name)) for name in LIGHTS
                     if getattr(pins, name) is not None}

    def set(self, name: str, mode: str) -> bool:
        changed = super().set(name, mode)
        led = self.leds.get(name)
        if changed and led is not None:
            if mode == "on":
                led.on()
            elif mode == "off":
                led.off()
            else:
                led.blink(on_time=BLINK_S[mode], off_time=BLINK_S[mode])
        return changed

    def close(self) -> None:
        for led in self.leds.values():
            led.close()
