"""gpiozero devices of the kiosk and robot. All optional: without GPIO (a PC, a missing
pin factory, a pin in use) the kiosk logs why and runs on its touch screen alone.

Callbacks of real pins arrive on gpiozero's threads: every callback here only queues.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from qms.config.kiosk import KioskConfig

log = logging.getLogger("qms.kiosk.gpio")


def _make(what: str, factory: Callable):
    try:
        return factory()
    except Exception as e:  # noqa: BLE001 - gpiozero raises many kinds (BadPinFactory, PinInUse, ...)
        log.warning("%s unavailable (%s: %s); continuing without it", what, type(e).__name__, e)
        return None


class RepeatGuard:
    """Lets one press through, then none (of any button) for `guard_s` seconds."""

    def __init__(self, guard_s: float, clock: Callable[[], float] = time.monotonic):
        self.guard_s, self.clock = guard_s, clock
        self.accepted = self.ignored = 0
        self._last: float | None = None
        self._lock = threading.Lock()         # presses of two buttons come on two threads

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.guard_s:
                self.ignored += 1
                return False
            self._last = now
            self.accepted += 1
            return True


def service_buttons(kc: KioskConfig, on_press: Callable[[str], None],
                    clock: Callable[[], float] = time.monotonic) -> list:
    """One physical button per configured service: press = take a number (once per
    `kiosk.button_guard_s`, whichever button)."""
    from gpiozero import Button
    guard = RepeatGuard(kc.button_guard_s, clock)

    def pressed(service: str) -> None:
        if guard.allow():
            on_press(service)
        else:
            log.info("button for %s pressed again within %.1f s: no second ticket", service, kc.button_guard_s)

    out = []
    for service, pin in kc.buttons.items():
        b = _make(f"button for {service} on GPIO{pin}", lambda pin=pin: Button(pin, bounce_time=0.05))
        if b is not None:
            b.when_pressed = lambda service=service: pressed(service)
            out.append(b)
    return out


def presence_sensor(kc: KioskConfig, on_change: Callable[[bool], None]):
    if kc.presence == "none":
        return None
    if kc.presence == "motion":
        from gpiozero import MotionSensor
        dev = _make(f"motion sensor on GPIO{kc.presence_pin}", lambda: MotionSensor(kc.presence_pin))
    else:
        from gpiozero import DistanceSensor
        dev = _make(f"distance sensor on GPIO{kc.presence_pin}/{kc.presence_trigger_pin}",
                    lambda: DistanceSensor(echo=kc.presence_pin, trigger=kc.presence_trigger_pin,
                                           threshold_distance=kc.presence_distance_m,
                                           max_distance=max(kc.presence_distance_m * 2, 1.0)))
    if dev is not None:
        # for both: "activated" = someone there (motion seen / within the threshold distance)
        dev.when_activated = lambda: on_change(True)
        dev.when_deactivated = lambda: on_change(False)
    return dev


def dispenser_relay(kc: KioskConfig):
    if kc.dispenser_pin is None:
        return None
    from gpiozero import DigitalOutputDevice
    return _make(f"dispenser relay on GPIO{kc.dispenser_pin}",
                 lambda: DigitalOutputDevice(kc.dispenser_pin, initial_value=False))


def close_all(devices) -> None:
    for d in devices:
        if d is not None:
            try:
                d.close()
            except Exception:  # noqa: BLE001
                pass
