"""One status LED that tells staff the box's state by its pattern.

Most urgent first: alarm (a refused or unanswered press, a short flicker), link down
(fast blink), paused (slow blink), serving someone (steady), idle (off).
"""

PATTERNS = {          # (period ms, lit ms); None = steady
    "off": None, "on": None, "alarm": (120, 60), "link_down": (400, 200), "paused": (2000, 1000),
}


class StatusLed:
    def __init__(self, pin, clock, active_low=False):
        self.pin, self.clock = pin, clock
        self.on_level = 0 if active_low else 1
        self.mode = "off"
        self.level = None

    def show(self, modes):
        """The state machine's lamps interface: this LED shows modes["led"]."""
        self.set(modes["led"])
        self.tick()

    def set(self, mode):
        self.mode = mode if mode in PATTERNS else "off"

    def tick(self):
        pattern = PATTERNS[self.mode]
        if pattern is None:
            lit = self.mode == "on"
        else:
            period, on_ms = pattern
            lit = self.clock.ticks_ms() % period < on_ms
        level = self.on_level if lit else 1 - self.on_level
        if level != self.level:
            self.pin.value(level)
            self.level = level
