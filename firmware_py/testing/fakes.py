"""Simulated hardware and network for running the box's logic off the box: on a PC
under CPython, and inside MicroPython in Node (node/). MicroPython-safe.

- FakeClock: ticks that wrap like MicroPython's (period 2**30), moved by hand.
- FakePin: a GPIO line; tests press keys by setting levels, drivers' writes are heard
  by bus decoders (TM1637Bus, MAX7219Bus) that rebuild what the chip would show.
- FakeBroker / FakeMqttClient: an in-memory broker with retained messages and last
  wills, and a client with the umqtt.simple API; the broker can be taken down.
"""

TICKS_PERIOD = 1 << 30


class FakeClock:
    def __init__(self, start=0, unix_ms=1795485600000):
        self.t = start % TICKS_PERIOD
        self.unix = unix_ms

    def ticks_ms(self):
        return self.t

    def ticks_add(self, t, delta):
        return (t + delta) % TICKS_PERIOD

    def ticks_diff(self, a, b):
        half = TICKS_PERIOD // 2
        return ((a - b + half) % TICKS_PERIOD) - half

    def unix_ms(self):
        return self.unix

    def advance(self, ms):
        self.t = (self.t + ms) % TICKS_PERIOD
        self.unix += ms


class FakePin:
    def __init__(self, level=1, name=""):
        self.level = level
        self.name = name
        self.listeners = []
        self.writes = 0

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        self.writes += 1
        for fn in self.listeners:
            fn(self)


class MatrixWiring:
    """Makes a pressed matrix key connect its row pin to its column pin: while the row is
    driven low, the column reads low."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.down = set()              # (row, col)
        for r in rows:
            r.listeners.append(self._update)

    def _update(self, _pin=None):
        for j in range(len(self.cols)):
            low = False
            for i in range(len(self.rows)):
                if (i, j) in self.down and self.rows[i].level == 0:
                    low = True
            self.cols[j].level = 0 if low else 1

    def press(self, i, j):
        self.down.add((i, j))
        self._update()

    def release(self, i, j):
        self.down.discard((i, j))
        self._update()


class TM1637Bus:
    """Listens to CLK and DIO like a TM1637 chip would, and keeps what it would show."""

    def __init__(self, clk, dio, digits=4):
        self.clk, self.dio = clk, dio
        self.cells = [0] * digits
        self.on = False
        self.brightness = None
        self.frames = []
        self._clk, self._dio = clk.level, dio.level
        self._frame = None
        self._bits = []
        clk.listeners.append(self._edge)
        dio.listeners.append(self._edge)

    def _edge(self, _pin):
        clk, dio = self.clk.level, self.dio.level
        if clk and self._clk and dio != self._dio:          # DIO moved while CLK high
            if dio == 0:
                self._frame, self._bits = [], []
            elif self._frame is not None:
                self._commit(self._frame)
                self._frame = None
        elif clk and not self._clk and self._frame is not None:   # CLK rising: sample
            self._bits.append(dio)
            if len(self._bits) == 9:                         # 8 data bits + the ack clock
                b = 0
                for i in range(8):
                    b |= self._bits[i] << i
                self._frame.append(b)
                self._bits = []
        self._clk, self._dio = clk, dio

    def _commit(self, frame):
        self.frames.append(frame)
        cmd = frame[0] if frame else 0
        if cmd & 0xC0 == 0xC0:
            addr = cmd & 0x0F
            for i in range(1, len(frame)):
                if addr + i - 1 < len(self.cells):
                    self.cells[addr + i - 1] = frame[i]
        elif cmd & 0xF0 == 0x80:
            self.on = bool(cmd & 0x08)
            self.brightness = cmd & 0x07


class MAX7219Bus:
    """Listens to DIN, CLK and CS/LOAD like a MAX7219 and keeps its registers."""

    def __init__(self, din, clk, cs, digits=4):
        self.din, self.clk, self.cs = din, clk, cs
        self.registers = {}
        self.words = []
        self._clk, self._cs = clk.level, cs.level
        self._shift = 0
        self.digits = digits
        clk.listeners.append(self._edge)
        cs.listeners.append(self._edge)

    def _edge(self, _pin):
        clk, cs = self.clk.level, self.cs.level
        if clk and not self._clk and cs == 0:
            self._shift = ((self._shift << 1) | self.din.level) & 0xFFFF
        if cs and not self._cs:
            reg, data = self._shift >> 8, self._shift & 0xFF
            self.registers[reg & 0x0F] = data
            self.words.append((reg, data))
        self._clk, self._cs = clk, cs

    def cells(self):
        """Leftmost first, in our a..g + dp bit order."""
        out = []
        for pos in range(self.digits, 0, -1):
            raw = self.registers.get(pos, 0)
            cell = 0x80 if raw & 0x80 else 0
            for seg in range(7):
                if raw & (1 << (6 - seg)):
                    cell |= 1 << seg
            out.append(cell)
        return out


class FakeNetwork:
    def __init__(self, up=True):
        self.is_up = up

    def up(self):
        return self.is_up


def topic_matches(pattern, topic):
    p, t = pattern.split("/"), topic.split("/")
    for i in range(len(p)):
        if p[i] == "#":
            return True
        if i >= len(t) or (p[i] != "+" and p[i] != t[i]):
            return False
    return len(p) == len(t)


class FakeBroker:
    def __init__(self):
        self.up = True
        self.clients = []
        self.retained = {}
        self.log = []                 # every (topic, payload) published, in order
        self.drop_next = 0            # lose the next n publishes after PUBACK (lossy bridge)

    def down(self):
        """The broker goes away: every connection breaks, wills are published later by
        nobody (a dead broker sends nothing)."""
        self.up = False
        for c in self.clients:
            c.broken = True
        self.clients = []

    def restart(self):
        self.up = True

    def publish(self, topic, payload, retain=False):
        self.log.append((topic, payload))
        if self.drop_next > 0:
            self.drop_next -= 1
            return
        if retain:
            if payload:
                self.retained[topic] = payload
            else:
                self.retained.pop(topic, None)
        for c in self.clients:
            for pattern in c.subs:
                if topic_matches(pattern, topic):
                    c.queue.append((topic, payload))
                    break


class FakeMqttClient:
    """umqtt.simple's API over FakeBroker (topics and payloads as bytes or str)."""

    def __init__(self, broker, client_id="fake"):
        self.broker = broker
        self.client_id = client_id
        self.cb = None
        self.subs = []
        self.queue = []
        self.broken = False
        self.will = None
        self.keepalive = 0
        self.pid = 0
        self.sock = None
        self.pings = 0

    def _check(self):
        if self.broken or not self.broker.up:
            raise OSError(104)        # ECONNRESET

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.will = (topic, msg, retain)

    def connect(self, clean_session=True, timeout=None):
        if not self.broker.up:
            raise OSError(111)        # ECONNREFUSED
        self.broker.clients.append(self)
        return 0

    def subscribe(self, topic, qos=0):
        self._check()
        topic = topic.decode() if isinstance(topic, bytes) else topic
        self.subs.append(topic)
        for t in self.broker.retained:
            if topic_matches(topic, t):
                self.queue.append((t, self.broker.retained[t]))

    def publish(self, topic, msg, retain=False, qos=0):
        self._check()
        self.pid += 1
        topic = topic.decode() if isinstance(topic, bytes) else topic
        msg = msg.encode() if isinstance(msg, str) else bytes(msg)
        self.broker.publish(topic, msg, retain)

    def check_msg(self):
        self._check()
        if not self.queue:
            return None
        topic, payload = self.queue.pop(0)
        self.cb(topic.encode(), payload)
        return 0x30

    def ping(self):
        self._check()
        self.pings += 1

    def disconnect(self):
        if self in self.broker.clients:
            self.broker.clients.remove(self)

    def kill(self):
        """The connection dies without DISCONNECT: the broker publishes the will."""
        self.broken = True
        if self in self.broker.clients:
            self.broker.clients.remove(self)
        if self.will:
            self.broker.publish(self.will[0], self.will[1], self.will[2])
