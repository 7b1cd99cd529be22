# One scripted key sequence through the counter box under real MicroPython; driven by
# tests/test_counter_one_machine.py, which runs the same sequence through the Pi terminal
# and compares. The test prepends `CASE = <json text>` ({"box": config.json fields,
# "numbers", "service", "steps": [[op, arg], ...]}). Prints one line "RESULT <json>":
# after each step the board's (text, blinking) and the lamp modes, then the commands sent.
import json
import sys

from firmware_py import segments
from firmware_py.testing.rig import Rig
from firmware_py.testing.service import ScriptedService

assert sys.implementation.name == "micropython", sys.implementation
case = json.loads(CASE)  # noqa: F821 - prepended by the test
r = Rig(**case["box"])
r.service = ScriptedService(r.broker, case["numbers"], case["box"]["site"], case["box"]["counter"],
                            case["service"])
r.between = r.service
r.run(300)
assert r.box.link.online and r.box.status == "open"

boards, lamps, chip_agrees = [], [], True
for op, arg in case["steps"]:
    if op == "press":
        r.press(arg)
    elif op == "hold":
        r.hold(arg)
    else:
        r.run(arg)
    r.run(300)                       # the scripted service answers within a loop turn
    text, blink = r.box.board_text()
    boards.append([text, blink])
    lamps.append(r.box.lamp_modes())
    if not blink and r.bus.cells != segments.render(text):
        chip_agrees = False          # what the TM1637 shows is what the machine chose

commands, seen = [], []
for msg in r.sent():
    if msg["id"] not in seen:
        seen.append(msg["id"])
        commands.append(msg)
print("RESULT " + json.dumps({"boards": boards, "lamps": lamps, "commands": commands,
                              "chip_agrees": chip_agrees}))
