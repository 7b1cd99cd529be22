"""The real parts of a box (ESP32 or Raspberry Pi Pico W), made from config.json.

Only this module and main.py touch `machine`, `network` and `umqtt`, and only inside
functions, so the rest of the firmware imports anywhere (CPython, MicroPython in Node).
"""
import time

# Some ports count time.time() from 2000-01-01; the protocol wants Unix milliseconds.
_EPOCH_OFFSET_S = 946684800 if time.gmtime(0)[0] == 2000 else 0


class MachineClock:
    """MicroPython's wrapping millisecond ticks, and the RTC as Unix ms (set by NTP)."""

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_add(self, t, delta):
        return time.ticks_add(t, delta)

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def unix_ms(self):
        return (int(time.time()) + _EPOCH_OFFSET_S) * 1000


# Longest watchdog each port accepts (ms). The RP2040's is 8,388 ms (a 24-bit counter at
# 2 MHz); asking more raises ValueError, and a box that caught it ran with no watchdog.
WATCHDOG_LIMIT_MS = {"rp2": 8388, "esp32": 0x7FFFFFFF}
WATCHDOG_UNKNOWN_PORT_MS = 8000     # a port not listed: stay under the smallest known limit


def watchdog_ms(wanted_ms, platform):
    """The watchdog timeout for this port: `wanted_ms`, or the port's limit if lower."""
    return min(wanted_ms, WATCHDOG_LIMIT_MS.get(platform, WATCHDOG_UNKNOWN_PORT_MS))


def watchdog(wanted_ms, log=print):
    """A started hardware watchdog (machine.WDT) within this port's limit, or None where
    there is none. Once started it cannot be stopped: feed it from the loop."""
    import sys
    try:
        from machine import WDT
    except ImportError:
        return None
    timeout = watchdog_ms(wanted_ms, sys.platform)
    try:
        wdt = WDT(timeout=timeout)
    except ValueError as e:             # a port stricter than the table: say it, never hide it
        log("watchdog: %s refused %d ms (%r); running WITHOUT a watchdog" % (sys.platform, timeout, e))
        return None
    log("watchdog: %d ms" % timeout)
    return wdt


def serve(box, wdt, loop_ms, sleep_ms, log=print, rounds=-1):
    """The box's loop. The watchdog is fed only after a step that raised nothing: a box
    whose every step fails (a wedged radio, a corrupt state) is reset by it, while one
    failed step among good ones is only logged. `rounds` < 0: forever."""
    failing = 0
    while rounds != 0:
        rounds -= 1
        try:
            box.step()
        except Exception as e:          # noqa: BLE001 - log and carry on: the box must keep working
            failing += 1
            if failing == 1 or failing % 100 == 0:
                log("loop error (%d in a row): %r" % (failing, e))
        else:
            failing = 0
            if wdt is not None:
                wdt.feed()
        sleep_ms(loop_ms)


def rng():
    """32 random bits; the ports seed `random` from the hardware RNG at boot."""
    import random
    return random.getrandbits(32)


class Wifi:
    """Station-mode Wi-Fi that never blocks: `up()` starts or re-starts joining and says
    whether the box has an address; the link calls it before each connect attempt."""

    RETRY_MS = 15000

    def __init__(self, ssid, password, clock, ntp_host=None, log=print):
        import network
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        self.ssid, self.password, self.clock = ssid, password, clock
        self.ntp_host = ntp_host
        self.log = log
        self.started = None
        self.time_set = False

    def up(self):
        if self.wlan.isconnected():
            if not self.time_set and self.ntp_host:
                self._set_time()
            return True
        now = self.clock.ticks_ms()
        if self.started is None or self.clock.ticks_diff(now, self.started) > self.RETRY_MS:
            self.started = now
            try:
                self.wlan.disconnect()
            except OSError:
                pass
            self.log("wifi: joining %s" % self.ssid)
            self.wlan.connect(self.ssid, self.password)
        return False

    def _set_time(self):
        try:
            import ntptime
            ntptime.host = self.ntp_host
            ntptime.settime()
            self.time_set = True
        except Exception as e:      # noqa: BLE001 - time is a nicety: ts is informational
            self.log("ntp failed: %r" % e)
            self.time_set = True    # do not retry on every connect; the service stamps events


def mqtt_factory(cfg):
    try:
        from umqtt.simple import MQTTClient  # frozen into the ESP32 firmware
    except ImportError:
        from .vendor.umqtt_simple import MQTTClient

    def make():
        return MQTTClient(cfg.device, cfg.mqtt_host, cfg.mqtt_port, cfg.mqtt_user,
                          cfg.mqtt_password, cfg.keepalive_s)
    return make


def pin_in(n):
    from machine import Pin
    return Pin(n, Pin.IN, Pin.PULL_UP)


def pin_out(n, value=0, open_drain=False):
    from machine import Pin
    return Pin(n, Pin.OPEN_DRAIN if open_drain else Pin.OUT, value=value)


def key_sources(cfg):
    from .keys import MatrixKeys, PinKeys
    sources = []
    if cfg.key_pins:
        pins = {}
        for name in cfg.key_pins:
            pins[name] = pin_in(cfg.key_pins[name])
        sources.append(PinKeys(pins, cfg.keys_active_low))
    if cfg.matrix:
        mx = cfg.matrix
        sources.append(MatrixKeys([pin_out(n, 1, open_drain=True) for n in mx["rows"]],
                                  [pin_in(n) for n in mx["cols"]], mx["layout"], mx["keys"]))
    return sources


class NoDisplay:
    def show(self, cells):
        pass


def display(cfg):
    from . import segments
    p = cfg.display_pins
    if cfg.display_kind == "tm1637":
        drv = segments.TM1637(pin_out(p["clk"], 1), pin_out(p["dio"], 1, open_drain=True),
                              time.sleep_us, cfg.brightness, cfg.digits)
    elif cfg.display_kind == "max7219":
        drv = segments.MAX7219(pin_out(p["din"]), pin_out(p["clk"]), pin_out(p["cs"], 1),
                               time.sleep_us, cfg.brightness, cfg.digits)
    else:
        drv = NoDisplay()
    return segments.Board(drv, cfg.digits)


class NoPin:
    def value(self, v=None):
        return 0


def led(cfg, clock):
    from .led import StatusLed
    pin = pin_out(cfg.led_pin, 1 if cfg.led_active_low else 0) if cfg.led_pin is not None else NoPin()
    return StatusLed(pin, clock, cfg.led_active_low)
