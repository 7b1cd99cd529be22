"""One counter state machine: the Pi terminal and the MicroPython box are the same code.

The same key sequence goes through the Pi terminal (real gpiozero Buttons on mock pins,
a real Mosquitto, the real central service) and through the box under real MicroPython
1.27 (fake pins, a decoded TM1637, a scripted service). Both must send the same commands
and show the same board texts and lamp modes after every step. And qms/counter/ must
hold adapters only: none of the state machine's methods are written there again.
"""
from __future__ import annotations

import ast
import inspect
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from gpiozero import Device as GpioDevice
from gpiozero.pins.mock import MockFactory
from support.mqtt import Recorder, issue
from support.site import make_config
from support.wait import wait_until

from qms.cli import firmware as make_box_config
from qms.config.site import load_config
from qms.counter.keys import GpioKeys, key_pins
from qms.counter.lights import GpioLights
from qms.counter.number_display import SimulatedNumberDisplay
from qms.counter.terminal import CounterTerminal, open_device
from qms.firmware.box import CounterBox
from qms.mqtt.device import Device

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "firmware_py" / "node"
ENVELOPE = ("v", "id", "dev", "seq", "ts")

# the settings both get (the Pi's [counter_terminal] and the box's config.json timing)
REPEAT_GUARD_MS, RECALL_BLINK_MS = 1000, 2000
STEPS = [
    ["press", "next"],
    ["press", "next"],          # within the repeat guard: ignored
    ["press", "recall"],        # the number blinks
    ["wait", 2100],             # the blink ends
    ["press", "transfer"],      # the chooser opens on the first target
    ["press", "transfer"],      # the next target
    ["hold", "transfer"],       # sent
    ["press", "next"],
    ["press", "done"],
    ["press", "rate4"],
    ["press", "rate1"],         # a second rating for the same ticket: ignored
    ["press", "pause"],
    ["wait", 1100],             # past the repeat guard
    ["press", "pause"],         # resume
]




def normalized(boards, idle):
    """Board texts with each side's idle text and letter case set aside."""
    return [["IDLE" if text.strip() == idle else text.strip().upper(), blink] for text, blink in boards]


def commands(msgs, number_of):
    """Commands without their envelope; a rating's ticket as that ticket's number."""
    out = []
    for msg in msgs:
        fields = {k: v for k, v in msg.items() if k not in ENVELOPE}
        if "ticket_id" in fields:
            fields["ticket_id"] = number_of(fields["ticket_id"])
        out.append(fields)
    return out


def unique(msgs):
    seen, out = set(), []
    for msg in msgs:
        if msg["id"] not in seen:
            seen.add(msg["id"])
            out.append(msg)
    return out


# ------------------------------------------------------------------ the Pi terminal
def run_pi(cfg, service, broker, tmp_path):
    factory = GpioDevice.pin_factory
    tc = cfg.counter_terminal
    display = SimulatedNumberDisplay(tc.number_display)
    lights = GpioLights(tc.lights)
    terminal = CounterTerminal(cfg, 1, display, lights, say=lambda line: None)
    pins = key_pins(tc.buttons)
    keys = GpioKeys(pins, terminal.post_edge, time.monotonic)
    recorder = Recorder(broker.port, f"qms/v1/{cfg.site.id}/cmd/counter/counter-1")
    device = open_device(cfg, "counter-1", terminal, outbox_path=tmp_path / "c1.sqlite").start()
    stop = threading.Event()
    loop = threading.Thread(target=lambda: [terminal.step(0.01) for _ in iter(stop.is_set, True)], daemon=True)
    try:
        assert device.link.wait_connected(10)
        loop.start()

        def settled():
            """Nothing queued, every command answered, and the state the terminal holds is
            the service's own (the retained state may follow the ack by one burst)."""
            truth = service.core.counter_view(1)
            view = terminal.view or {}
            serving = view.get("serving") or {}
            return (terminal.inbox.empty() and not terminal.pending and view.get("status") == truth["status"]
                    and serving.get("ticket_id") == (truth["serving"] or {}).get("ticket_id"))

        wait_until(settled, what="the terminal in step with the service")
        boards, lamps, shown = [], [], []
        for op, arg in STEPS:
            if op == "wait":
                time.sleep(arg / 1000)
            else:
                pin = factory.pin(pins[arg])
                pin.drive_low()
                time.sleep(1.1 if op == "hold" else 0.08)
                pin.drive_high()
                time.sleep(0.06)                   # past the debounce quiet time
            wait_until(settled, what=f"the terminal settled after {op} {arg}")
            boards.append(list(terminal.machine.board_text()))
            lamps.append(terminal.machine.lamp_modes())
            shown.append(list(display.last))
        sent = unique(recorder.json(f"qms/v1/{cfg.site.id}/cmd/"))
        return boards, lamps, shown, sent
    finally:
        stop.set()
        if loop.is_alive():
            loop.join(2)
        device.stop()
        recorder.close()
        keys.close()
        lights.close()


# ------------------------------------------------------------------ the box, in MicroPython
def run_box(box_config, numbers, tmp_path):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@micropython").exists():
        pytest.fail("MicroPython for Node is not installed: run scripts/setup.sh")
    case = {"box": box_config, "numbers": numbers, "service": "chung-thuc", "steps": STEPS}
    script = tmp_path / "same_keys.py"
    script.write_text(f"CASE = {json.dumps(json.dumps(case))}\n"
                      + (NODE_DIR / "same_keys.py").read_text(encoding="utf-8"), encoding="utf-8")
    r = subprocess.run([node, str(NODE_DIR / "run_micropython.mjs"), str(script)], capture_output=True,
                       text=True, timeout=120, cwd=NODE_DIR)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, r.stdout[-2000:]
    return json.loads(line[0][len("RESULT "):])


@pytest.fixture
def mock_gpio():
    GpioDevice.pin_factory = MockFactory()
    yield
    GpioDevice.pin_factory.reset()


def test_the_same_keys_make_the_same_commands_and_board_on_the_pi_and_the_box(
        service, broker, tmp_path, mock_gpio):
    pi_dir = tmp_path / "pi"
    pi_dir.mkdir()
    cfg = load_config(make_config(pi_dir, broker.port, extra=(
        f"[counter_terminal]\nrepeat_guard_ms = {REPEAT_GUARD_MS}\nrecall_blink_s = {RECALL_BLINK_MS / 1000}\n")))
    kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp_path / "kiosk.sqlite").start()
    try:
        numbers = issue(kiosk, "chung-thuc", 3)
    finally:
        kiosk.stop()

    # the box's config.json made by `qms-firmware config` from the same site config
    made = make_box_config.build(cfg, "counter-1", "esp32", "", "", "127.0.0.1", broker.port, None)
    box_config = {k: made[k] for k in ("site", "device", "counter", "transfer")}
    box_config["timing"] = {"repeat_guard_ms": REPEAT_GUARD_MS, "recall_blink_ms": RECALL_BLINK_MS}
    box = run_box(box_config, numbers, tmp_path)

    pi_boards, pi_lamps, pi_shown, pi_sent = run_pi(cfg, service, broker, tmp_path)

    # the Pi's number board shows what its machine chose
    assert [[t.strip(), b] for t, b in pi_shown] == [[t, b] for t, b in pi_boards]
    assert box["chip_agrees"]                   # and so does the box's TM1637
    expected = [["1001", False], ["1001", False], ["1001", True], ["1001", False], ["L-2", False],
                ["L-3", False], ["IDLE", False], ["1002", False], ["IDLE", False], ["IDLE", False],
                ["IDLE", False], ["IDLE", False], ["IDLE", False], ["IDLE", False]]
    assert normalized(pi_boards, "--") == expected
    assert normalized(box["boards"], "----") == expected
    assert pi_lamps == box["lamps"]
    assert [m["paused"] for m in pi_lamps][-3:] == ["on", "on", "off"]

    tickets = service.core.tickets
    pi_commands = commands(pi_sent, lambda tid: tickets[tid].number)
    box_commands = commands(box["commands"], lambda tid: int(tid.rsplit("-", 1)[1]))
    assert pi_commands == box_commands == [
        {"type": "counter.next"}, {"type": "counter.recall"},
        {"type": "counter.transfer", "to_service": cfg.services[2].id},
        {"type": "counter.next"}, {"type": "counter.done"},
        {"type": "rating.submit", "ticket_id": numbers[1], "level": 4},
        {"type": "counter.pause"}, {"type": "counter.resume"},
    ]


# ------------------------------------------------------------------ one implementation
MACHINE_METHODS = {name for name, _ in inspect.getmembers(CounterBox, inspect.isfunction)}
# what the Pi terminal must have as an adapter: its own loop, the queue hand-offs from other
# threads, and the chooser's targets in its callers' order (a delegation)
ADAPTER_PLUMBING = {"__init__", "step", "on_message", "on_ack", "transfer_targets"}


def test_the_pi_terminal_holds_adapters_only():
    assert {"_guarded", "_call", "_send", "_transfer_key", "_confirm_transfer", "_pause", "rate",
            "board_text", "lamp_modes", "act", "on_key", "_on_alert"} <= MACHINE_METHODS
    defined = {}
    for path in sorted((ROOT / "qms" / "counter").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                defined.setdefault(node.name, []).append(path.name)
    again = {name: files for name, files in defined.items() if name in MACHINE_METHODS - ADAPTER_PLUMBING}
    assert again == {}, f"state machine methods written again in qms/counter/: {again}"
    # the machine the terminal runs is the file the box runs
    assert Path(inspect.getsourcefile(CounterBox)) == ROOT / "firmware_py" / "box.py"
    terminal_source = (ROOT / "qms" / "counter" / "terminal.py").read_text(encoding="utf-8")
    assert "CounterBox(" in terminal_source and "class CounterTerminal(CounterBox" not in terminal_source
