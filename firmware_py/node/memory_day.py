# A counter box's working day under real MicroPython with a small heap (run by
# run_micropython.mjs --heap N; driven by tests/test_firmware_memory.py and
# bench/README.md). Fake pins, a TM1637 decoded from its bus, an in-memory broker and a
# service that acks like the real one. The day: 8 h of a counter calling, serving and
# rating citizens, a lunch pause, a broker outage with commands queued in the outbox,
# lost acks re-sent, and the watchdog loop of hardware.serve fed by healthy turns.
# The WebAssembly port collects garbage only when control is back in JavaScript (its GC
# heap grows past --heap meanwhile), so live data is measured after each citizen: yield
# to JavaScript, collect, read gc.mem_alloc(). (Yielding costs a proxy entry that only
# JavaScript's GC frees: once per citizen keeps that out of the figure.) Prints
# "MEMORY at_start=… peak_live=… citizens=… commands=… fed=…" (bytes), then mem_info().
import asyncio
import gc
import json

import micropython


async def live():
    await asyncio.sleep(0)
    gc.collect()
    return gc.mem_alloc()

# (top-level await: run_micropython.mjs runs scripts with runPythonAsync)
base = await live()  # noqa: F704
from firmware_py import app, hardware  # noqa: E402, F401, I001 - the box's code, as on a box
box_code = await live() - base  # noqa: F704
from firmware_py.testing import fakes  # noqa: E402, I001 - the PC-side rig: fakes, test service
from firmware_py.testing.rig import Rig  # noqa: E402

CITIZENS = 120


class Service:
    """Acks counter-3's commands with the real service's shape; remembers the last ids only."""

    def __init__(self, broker):
        self.broker = broker
        self.next_number = 1001
        self.serving = None
        self.status = "open"
        self.seen = {}
        self.silent = False
        self.applied = 0
        self.client = None
        self.connect()

    def connect(self):
        self.client = fakes.FakeMqttClient(self.broker, "service")
        self.client.set_callback(self.on_command)
        self.client.connect()
        self.client.subscribe("qms/v1/phuong-an-khanh/cmd/counter/+")

    def on_command(self, topic, payload):
        msg = json.loads(payload)
        ack_topic = "qms/v1/phuong-an-khanh/ack/" + msg["dev"]
        if msg["id"] in self.seen:
            self.broker.publish(ack_topic, self.seen[msg["id"]])
            return
        t = msg["type"]
        if t == "counter.next":
            self.serving = {"ticket_id": "01JNQ8Z5K3M2%04d" % self.next_number, "number": self.next_number}
            self.next_number += 1
        elif t in ("counter.done", "counter.no_show", "counter.transfer"):
            self.serving = None
        elif t == "counter.pause":
            self.status = "paused"
        elif t == "counter.resume":
            self.status = "open"
        self.applied += 1
        view = {"v": 1, "counter": 3, "status": self.status, "serving": self.serving}
        ack = json.dumps({"v": 1, "id": msg["id"], "ok": True, "result": {"counter": 3, "state": view}}).encode()
        if len(self.seen) > 20:
            self.seen = {}
        self.seen[msg["id"]] = ack
        self.broker.publish(ack_topic, ack)
        self.broker.publish("qms/v1/phuong-an-khanh/state/counter/3", json.dumps(view).encode(), True)

    def __call__(self):
        while self.client.queue and not self.silent:
            self.client.check_msg()


class Watchdog:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed += 1


rig = Rig()
service = Service(rig.broker)
rig.between = service
wdt = Watchdog()
clock = rig.clock


class Turn:
    """One loop turn as main.py runs it: hardware.serve, the watchdog, the clock moving."""

    def step(self):
        rig.box.step()
        service()


turn = Turn()


def run(ms):
    hardware.serve(turn, wdt, 10, clock.advance, rounds=max(1, ms // 10))


def press(key, ms=80):
    pin = rig.pins[key]
    for level in (0, 1, 0, 1, 0):      # contact bounce
        pin.value(level)
        run(2)
    pin.value(0)
    run(ms)
    pin.value(1)
    run(60)


peak_live = 0
at_start = 0


async def measure():
    global peak_live
    # the test rig's own records (every message, display frame and log line), not the box's
    del rig.broker.log[:]
    del rig.bus.frames[:]
    del rig.lines[:]
    await asyncio.sleep(0)
    gc.collect()
    peak_live = max(peak_live, gc.mem_alloc())


async def day():
    global at_start
    await asyncio.sleep(0)
    gc.collect()
    at_start = gc.mem_alloc()          # code, the rig and the booted box
    run(500)
    assert rig.box.link.online, "link not up"
    for i in range(CITIZENS):
        citizen(i)
        await measure()


def citizen(i):
    press("next")
    run(1600)
    if i == 40:                        # lunch: pause, an hour later resume
        press("pause")
        run(1600)
        press("pause")
        run(1600)
    if i == 70:                        # the broker restarts: commands wait in the outbox
        rig.broker.down()
        run(1600)
        press("done")
        press("rate3")
        rig.broker.restart()
        service.connect()
        run(4000)
        return
    if i == 90:                        # acks lost for a while: the same id is re-sent
        service.silent = True
        press("done")
        run(7000)
        service.silent = False
        run(500)
        return
    press("done" if i % 9 else "no_show", 1300 if i % 9 == 0 else 80)
    press("rate%d" % (1 + i % 4))
    run(1600)


await day()  # noqa: F704
assert service.next_number - 1001 >= CITIZENS, service.next_number
assert wdt.fed > 0
print("MEMORY base=%d box_code=%d at_start=%d peak_live=%d citizens=%d commands=%d fed=%d" % (
    base, box_code, at_start, peak_live, CITIZENS, service.applied, wdt.fed))
micropython.mem_info()
