"""Benchmark: a counter key press to the service's ticket.called fact, over a real Mosquitto.

A real gpiozero Button on a mock pin is pressed (pin.drive_low); the terminal's main loop
debounces it, sends counter.next through its durable outbox; the real CentralService
handles it and publishes ticket.called, received by an independent subscriber. Baseline in
the same run: the same command sent straight from a plain `Device` (no keys, no terminal
loop), so the ratio shows what the terminal adds over the protocol itself.

    python bench/counter.py --json [--presses 150]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "tests")]

from gpiozero import Device as GpioDevice  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402
from support.site import Broker, make_config  # noqa: E402

from qms.config.site import load_config  # noqa: E402
from qms.counter.keys import GpioKeys, key_pins  # noqa: E402
from qms.counter.lights import GpioLights  # noqa: E402
from qms.counter.number_display import SimulatedNumberDisplay  # noqa: E402
from qms.counter.terminal import CounterTerminal, open_device  # noqa: E402
from qms.mqtt.client import MqttLink  # noqa: E402
from qms.mqtt.device import Device  # noqa: E402
from qms.protocol.topics import Topics  # noqa: E402
from qms.service.app import CentralService  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "median": round(statistics.median(values), 2),
            "p90": round(pct(values, 90), 2), "p99": round(pct(values, 99), 2),
            "max": round(max(values), 2)}


class CalledWatcher:
    """Wall time (perf_counter) at which each ticket.called fact for a counter arrives."""

    def __init__(self, cfg):
        self.cond = threading.Condition()
        self.arrivals: dict[int, list[float]] = {}
        self.link = MqttLink(cfg.mqtt, "bench-watcher",
                             subscriptions=[(Topics(cfg.site.id).event("ticket.called"), 1)],
                             on_message=self._on)
        self.link.start()
        assert self.link.wait_connected(10)

    def _on(self, topic, payload, props):
        t = time.perf_counter()
        fact = json.loads(payload)
        with self.cond:
            self.arrivals.setdefault(fact["counter"], []).append(t)
            self.cond.notify_all()

    def wait_count(self, counter: int, n: int, timeout: float = 5.0) -> float:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.arrivals.get(counter, [])) >= n, timeout)
        if not ok:
            raise RuntimeError(f"no ticket.called for counter {counter} within {timeout}s "
                               f"(have {len(self.arrivals.get(counter, []))}, want {n})")
        return self.arrivals[counter][n - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--presses", type=int, default=150)
    args = ap.parse_args()
    n = args.presses
    tmp = Path(tempfile.mkdtemp(prefix="qms-bench-counter-"))
    broker = Broker(tmp).start()      # TCP_NODELAY: set by LocalBroker and by MqttLink on every socket
    GpioDevice.pin_factory = MockFactory()
    try:
        path = make_config(tmp, broker.port, extra="[counter_terminal]\nrepeat_guard_ms = 0\n")
        cfg = load_config(path)
        svc = CentralService(cfg, tmp / "svc.sqlite", tick_seconds=3600).start()
        assert svc.link.wait_connected(10)
        kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp / "kiosk.sqlite").start()
        assert kiosk.link.wait_connected(10)
        # counter-2 (baseline) takes chung-thuc first; counter-1 then serves nhan-ket-qua
        for service_id, count in (("chung-thuc", n + 10), ("nhan-ket-qua", n + 10)):
            for _ in range(count):
                kiosk.send("ticket.request", service=service_id)
        deadline = time.monotonic() + 120
        while kiosk.outbox.count() and time.monotonic() < deadline:
            time.sleep(0.05)
        watcher = CalledWatcher(cfg)

        # baseline device: counter-2 sends counter.next straight from a Device
        raw = Device(cfg, "counter-2", "counter", outbox_path=tmp / "c2.sqlite").start()
        assert raw.link.wait_connected(10)

        # the terminal: counter-1, a real Button pressed on a mock pin
        tc = cfg.counter_terminal
        display = SimulatedNumberDisplay(tc.number_display)
        lights = GpioLights(tc.lights)
        term = CounterTerminal(cfg, 1, display, lights, say=lambda line: None)
        pins = key_pins(tc.buttons)
        keys = GpioKeys(pins, term.post_edge, time.monotonic)
        dev = open_device(cfg, "counter-1", term, outbox_path=tmp / "c1.sqlite").start()
        assert dev.link.wait_connected(10)
        stop = threading.Event()
        loop = threading.Thread(target=lambda: [term.step(0.02) for _ in iter(stop.is_set, True)],
                                daemon=True)
        loop.start()

        baseline = []                       # counter-2 takes chung-thuc first
        for i in range(1, n + 1):
            t0 = time.perf_counter()
            raw.send("counter.next")
            baseline.append((watcher.wait_count(2, i) - t0) * 1000)
            while raw.outbox.count():
                time.sleep(0.001)

        pin = GpioDevice.pin_factory.pin(pins["next"])
        press, board = [], []
        for i in range(1, n + 1):
            frames_before = len(display.frames)
            t0 = time.perf_counter()
            pin.drive_low()
            press.append((watcher.wait_count(1, i) - t0) * 1000)
            while len(display.frames) == frames_before and time.perf_counter() - t0 < 5:
                time.sleep(0.0005)
            board.append((time.perf_counter() - t0) * 1000)
            pin.drive_high()
            while term.pending or term.keypad.debouncers["next"].pressed:
                time.sleep(0.001)
            time.sleep(tc.debounce_ms / 1000 + 0.005)
        stop.set()
        loop.join(2)
        for closer in (dev.stop, keys.close, lights.close, raw.stop, kiosk.stop, watcher.link.stop, svc.stop):
            closer()
    finally:
        GpioDevice.pin_factory.reset()
        broker.stop()
    p, b, d = summary(press), summary(baseline), summary(board)
    result = {
        "press_to_call_ms_p99": p["p99"], "press_to_call_ms_median": p["median"],
        "baseline_send_to_call_ms_p99": b["p99"], "baseline_send_to_call_ms_median": b["median"],
        "ratio_median_vs_baseline": round(p["median"] / b["median"], 2),
        "press_to_board_ms_p99": d["p99"], "press_to_board_ms_median": d["median"],
        "press_to_call": p, "baseline_send_to_call": b, "press_to_board": d,
        "target_press_to_call_ms_p99": 30,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
