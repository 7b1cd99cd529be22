# The counter box under real MicroPython (run by run_micropython.mjs; driven by
# tests/test_firmware_micropython.py). Fake pins, a TM1637 decoded from its bus, an
# in-memory broker, and a scripted service that answers like the real one (acks with
# ok/result/error, retained counter state, dedup by command id). Prints "ALL OK <n>".
import json
import os
import sys
import time

from firmware_py import config, segments, storage
from firmware_py.hardware import MachineClock
from firmware_py.testing import fakes
from firmware_py.testing.rig import Rig, base_config
from firmware_py.testing.service import ScriptedService

assert sys.implementation.name == "micropython", sys.implementation
checks = []


def check(name, ok, detail=""):
    if not ok:
        raise AssertionError("%s failed %s" % (name, detail))
    checks.append(name)
    print("OK", name)


def new_rig(numbers=(1001, 1002, 1003), printed=None, **kw):
    r = Rig(**kw)
    r.service = ScriptedService(r.broker, numbers, printed=printed)
    r.between = r.service
    r.run(100)
    return r


# ---- keys, debounce, display, double press
r = new_rig()
check("link up", r.box.link.online)
check("idle shows ----", r.shown() == "----")
r.press("next")
check("next shows 1001 on the TM1637", r.shown() == "1001", r.shown())
sent = r.sent("counter.next")
check("one bouncing press makes one command", len(sent) == 1)
check("envelope", sent[0]["dev"] == "counter-3" and sent[0]["seq"] == 1 and sent[0]["ts"] > 1.7e12)
r.press("next")
check("double press ignored", len(r.sent("counter.next")) == 1 and r.shown() == "1001")

# ---- transfer chooser, long press
r.run(1600)
r.press("transfer")
check("chooser shows L-2", r.shown() == "L-2")
r.press("transfer")
check("chooser shows q-2", r.shown() == "q-2")
r.hold("transfer")
check("hold sends the transfer", r.service.applied[-1] == ("counter.transfer", 2) and r.shown() == "----")

# ---- done, one rating per ticket
r.run(1600)
r.press("next")
r.press("done")
r.press("rate4")
r.press("rate2")
check("one rating for the ticket just served",
      [a for a in r.service.applied if a[0] == "rating.submit"] == [("rating.submit", 4)]
      and r.sent("rating.submit")[0]["ticket_id"] == "ticket-1002")

# ---- pause, refusal
r.press("pause")
check("paused LED blinks slowly", r.box.status == "paused" and r.box.led_mode() == "paused")
r.run(1600)
r.press("next")
check("refusal shows Err", r.showing("Err") and r.box.led_mode() == "alarm")

# ---- broker outage: calls refused, done/resume queued, applied once
r = new_rig()
r.press("next")
r.broker.down()
r.run(50)
r.run(1600)
r.press("next")
check("offline call refused with OFF", r.showing("OFF") and len(r.sent("counter.next")) == 1)
r.press("done")
r.press("rate1")
check("done and rating wait in the outbox", len(r.box.channel.outbox.entries) == 2)
r.broker.restart()
r.service.connect()
r.run(3000)
check("applied in order after the outage",
      [a[0] for a in r.service.applied] == ["counter.next", "counter.done", "rating.submit"])

# ---- lost acks: same id re-sent, applied once
r.service.silent = True
r.run(1600)
r.press("pause")
r.run(7000)
ids = [m["id"] for m in r.sent("counter.pause")]
r.service.silent = False
r.run(200)
check("resent with one id, applied once",
      len(ids) >= 3 and len(set(ids)) == 1 and [a[0] for a in r.service.applied].count("counter.pause") == 1)

# ---- reboot: seq and queued commands on a real MicroPython filesystem
flash = storage.FileStore("/flash")
r = new_rig(store=flash)
r.press("next")
r.service.silent = True
r.press("done")
first_done = r.sent("counter.done")[0]
saved = json.loads(open("/flash/outbox.json").read())
check("outbox on flash", saved["seq"] == 2 and saved["pending"][0]["id"] == first_done["id"]
      and "outbox.json.tmp" not in os.listdir("/flash"))
r.box.link.close()
r2 = Rig(broker=r.broker, store=storage.FileStore("/flash"))
r.service.silent = False
r2.between = r.service
r2.run(300)
check("after reboot the done is resent with its id", r2.sent("counter.done")[-1]["id"] == first_done["id"]
      and [a[0] for a in r.service.applied].count("counter.done") == 1)
r2.run(1600)
r2.press("pause")
check("seq continues after reboot", r2.sent("counter.pause")[-1]["seq"] == 3)

# ---- ticks wrap-around, real MicroPython clock
r = new_rig(clock=fakes.FakeClock(start=fakes.TICKS_PERIOD - 500))
r.press("next")
check("works across the ticks wrap", r.shown() == "1001")

# ---- a renumbered ticket: the called number, then the paper's, in turn (across the wrap)
r = new_rig((2001,), printed={2001: 2950}, clock=fakes.FakeClock(start=fakes.TICKS_PERIOD - 1000))
r.press("next")
seen = [r.shown()]
for _ in range(80):
    r.run(100)
    if r.shown() != seen[-1]:
        seen.append(r.shown())
check("renumbered: both numbers in turn", seen[:4] == ["2001", "2950", "2001", "2950"], str(seen))
check("renumbered: said with the paper's number", "ok counter.next now 2001 (printed 2950)" in r.lines, str(r.lines))
mc = MachineClock()
t0 = mc.ticks_ms()
time.sleep_ms(20)
check("machine clock ticks", 15 <= mc.ticks_diff(mc.ticks_ms(), t0) < 1000 and mc.unix_ms() > 1.6e12)

# ---- MAX7219 bus and config messages
din, clk, cs = fakes.FakePin(0), fakes.FakePin(0), fakes.FakePin(1)
bus = fakes.MAX7219Bus(din, clk, cs)
segments.MAX7219(din, clk, cs, lambda us: None).show(segments.render("1005"))
check("MAX7219 shows 1005", bus.cells() == segments.render("1005"))
try:
    config.load(json.dumps(base_config(counter="3")))
    check("bad config refused", False)
except config.ConfigError as e:
    check("bad config refused", "counter must be a whole number" in str(e), str(e))

print("ALL OK", len(checks))
