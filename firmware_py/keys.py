"""Keys: raw sources (one pin per key, or a scanned matrix) and a debouncing keypad.

Debounce and long press are timed here with the injected clock's ticks, polled from
the main loop: a level counts only after it has been stable for `debounce_ms`, so a
bouncing contact gives one press. Events: ("down", key), ("hold", key) once the key has
been held `long_ms`, ("up", key, was_long).
"""


class PinKeys:
    """One pin per key, with the pull-up/down set by whoever made the pins."""

    def __init__(self, pins, active_low=True):
        self.pins = pins                      # {key name: pin with .value()}
        self.active = 0 if active_low else 1

    def names(self):
        return list(self.pins)

    def scan(self, pressed):
        for name in self.pins:
            if self.pins[name].value() == self.active:
                pressed.add(name)


class MatrixKeys:
    """A row/column keypad (e.g. 4x4 membrane): drive one row low at a time and read the
    columns (inputs with pull-ups); a pressed key pulls its column low."""

    def __init__(self, rows, cols, layout, names):
        self.rows, self.cols = rows, cols
        self.layout = layout                   # ["123A", "456B", ...]: one string per row
        self.names_by_char = names             # {"A": "next", ...}; unnamed keys are ignored
        for r in rows:
            r.value(1)

    def names(self):
        return [self.names_by_char[c] for c in self.names_by_char]

    def scan(self, pressed):
        for i in range(len(self.rows)):
            row = self.rows[i]
            row.value(0)
            for j in range(len(self.cols)):
                if self.cols[j].value() == 0:
                    name = self.names_by_char.get(self.layout[i][j])
                    if name is not None:
                        pressed.add(name)
            row.value(1)


class _Key:
    def __init__(self):
        self.raw = False
        self.raw_since = 0
        self.down = False
        self.down_at = 0
        self.held = False


class KeyPad:
    def __init__(self, sources, clock, debounce_ms=30, long_ms=1000):
        self.sources = sources
        self.clock = clock
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self.keys = {}
        now = clock.ticks_ms()
        for s in sources:
            for name in s.names():
                k = _Key()
                k.raw_since = now
                self.keys[name] = k

    def poll(self):
        """Sample every key once; return the events that became certain."""
        clock = self.clock
        now = clock.ticks_ms()
        pressed = set()
        for s in self.sources:
            s.scan(pressed)
        events = []
        for name in self.keys:
            k = self.keys[name]
            level = name in pressed
            if level != k.raw:
                k.raw, k.raw_since = level, now
            if k.raw != k.down and clock.ticks_diff(now, k.raw_since) >= self.debounce_ms:
                k.down = k.raw
                if k.down:
                    k.down_at, k.held = now, False
                    events.append(("down", name))
                else:
                    events.append(("up", name, k.held))
            if k.down and not k.held and clock.ticks_diff(now, k.down_at) >= self.long_ms:
                k.held = True
                events.append(("hold", name))
        return events
