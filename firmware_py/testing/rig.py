"""A whole counter box on simulated parts, for tests under CPython and MicroPython:
fake pins for keys, LED and a TM1637 (decoded back into cells), an in-memory broker.
`press`/`hold` move key pins and run the loop with the clock advancing."""
import json

from .. import app, config, segments, storage
from ..keys import PinKeys
from ..led import StatusLed
from . import fakes

KEY_PINS = {"next": 4, "recall": 5, "no_show": 6, "transfer": 7, "pause": 8, "done": 9,
            "rate1": 10, "rate2": 11, "rate3": 12, "rate4": 13}


def base_config(**over):
    cfg = {
        "site": "phuong-an-khanh", "device": "counter-3", "counter": 3,
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "keys": {"pins": KEY_PINS},
        "display": {"kind": "tm1637", "clk": 16, "dio": 17},
        "led": {"pin": 2},
        "transfer": [{"to_service": "ho-tich", "show": "L-2"}, {"to_counter": 2, "show": "q-2"}],
    }
    for k in over:
        cfg[k] = over[k]
    return cfg


class Rig:
    def __init__(self, broker=None, store=None, clock=None, seed=1, client_factory=None, **over):
        self.cfg = config.load(json.dumps(base_config(**over)))
        self.clock = clock or fakes.FakeClock()
        self.broker = broker or fakes.FakeBroker()
        self.store = store or storage.MemoryStore()
        self.pins = {}
        for name in self.cfg.key_pins:
            self.pins[name] = fakes.FakePin(1, name)
        self.clk, self.dio = fakes.FakePin(1, "clk"), fakes.FakePin(1, "dio")
        self.bus = fakes.TM1637Bus(self.clk, self.dio)
        self.led_pin = fakes.FakePin(0, "led")
        self.network = fakes.FakeNetwork()
        self.clients = []
        state = [seed]

        def rng():
            state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
            return state[0]

        def factory():
            c = fakes.FakeMqttClient(self.broker, self.cfg.device)
            self.clients.append(c)
            return c

        self.lines = []
        self.between = None          # called every loop turn: a service answering, say
        self.box = app.build(
            self.cfg, key_sources=[PinKeys(self.pins)],
            board=segments.Board(segments.TM1637(self.clk, self.dio, lambda us: None)),
            led=StatusLed(self.led_pin, self.clock), client_factory=client_factory or factory,
            clock=self.clock, store=self.store, rng=rng, network=self.network,
            log=self.lines.append)

    def run(self, ms, step=10):
        for _ in range(max(1, ms // step)):
            self.box.step()
            if self.between is not None:
                self.between()
            self.clock.advance(step)

    def press(self, key, ms=80, bounce=True):
        pin = self.pins[key]
        if bounce:                   # a real contact chatters for a few ms
            for level in (0, 1, 0, 1, 0):
                pin.value(level)
                self.run(2, 2)
        pin.value(0)
        self.run(ms)
        pin.value(1)
        self.run(60)

    def hold(self, key, ms=1300):
        self.press(key, ms, bounce=False)

    def shown(self):
        """The display as text, decoded from the TM1637 bus ('' for a blank cell)."""
        back = {}
        for ch in segments.FONT:
            back.setdefault(segments.FONT[ch], ch)
        return "".join(back.get(c & 0x7F, "?") for c in self.bus.cells).strip()

    def showing(self, text):
        """True when the display's cells are exactly those of `text` (O and 0 look alike)."""
        return self.bus.cells == segments.render(text)

    def sent(self, type_=None):
        out = []
        for topic, payload in self.broker.log:
            if "/cmd/" in topic:
                msg = json.loads(payload)
                if type_ is None or msg["type"] == type_:
                    out.append(msg)
        return out
