"""`qms demo`: the whole system on this machine, on simulated hardware.

It starts a private Mosquitto on a free port, the central service, and every device role
as its own process (as on a real site), with the example ward config. Simulated citizens
take numbers at the kiosk through its real touch targets whenever nobody else uses it
(tickets are printed by the simulated printer as PNG files), and two counters are
operated from this terminal's keyboard. `--headless` runs without windows; `--duration` stops after N seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from qms.config.site import load_config
from qms.mqtt.broker import LocalBroker
from qms.mqtt.device import Device
from qms.protocol.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "ward-example.toml"

HELP = ("Hai quầy điều khiển bằng bàn phím / two counters on this keyboard — Tab: đổi quầy (switch counter)\n"
        "  n gọi tiếp · r gọi lại · s vắng mặt · t chuyển · p tạm nghỉ/tiếp tục · d xong · 1–4 đánh giá · q thoát")


def demo_config(workdir: Path, port: int, base: Path) -> Path:
    """The example config on the demo broker, open all day so the demo works at any hour."""
    text = base.read_text(encoding="utf-8")
    text = text.replace("port = 1883", f"port = {port}")
    text = text.replace('state_dir = "../var"', f'state_dir = "{workdir / "state"}"')
    text = text.replace('open = "07:30"', 'open = "00:00"').replace('close = "17:00"', 'close = "23:59"')
    text = text.replace("weekdays = [1, 2, 3, 4, 5, 6]", "weekdays = [1, 2, 3, 4, 5, 6, 7]")
    text = text.replace("cutoff_minutes = 15", "cutoff_minutes = 0")
    path = workdir / "demo-site.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Demo:
    def __init__(self, args):
        self.args = args
        self.workdir = Path(args.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.stop = threading.Event()

    def spawn(self, name: str, *argv: str, module: str = "qms") -> None:
        env = dict(os.environ)
        if self.args.headless:
            env.setdefault("SDL_VIDEODRIVER", "dummy")
            env.setdefault("SDL_AUDIODRIVER", "dummy")
        log = open(self.workdir / f"{name}.log", "w")
        cmd = [sys.executable, "-m", module, *argv]
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs.append((name, p))
        print(f"  started {name:8} (pid {p.pid}, log {self.workdir / (name + '.log')})")

    def run(self) -> int:
        a = self.args
        print("QMS demo — Hệ thống xếp hàng, chạy thử trên máy này (phần cứng mô phỏng)")
        if not a.headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            print("  no screen found (DISPLAY unset): running headless — windows become files")
            a.headless = True
        shutil.rmtree(self.workdir / "state", ignore_errors=True)     # every demo starts a fresh day
        broker = LocalBroker(self.workdir / "broker").start()
        print(f"  started mosquitto (port {broker.port})")
        cfg_path = demo_config(self.workdir, broker.port, Path(a.config) if a.config else EXAMPLE)
        cfg = load_config(cfg_path)
        c = str(cfg_path)
        self.spawn("service", "service", "--config", c)
        head = ["--headless"] if a.headless else []
        self.spawn("display", "display", "--config", c, "--device", "display-1",
                   *(head or ["--windowed", "--size", "1280x720"]))
        # the kiosk with simulated citizens touching it (qms/sim/visitors.py)
        self.spawn("kiosk", "--config", c, "--device", "kiosk-1", "--every", "4",
                   *(head or ["--windowed", "--size", "1024x600"]), module="qms.sim.visitors")
        topics = Topics(cfg.site.id)
        self.names = {s.id: s.name_vi for s in cfg.services}
        watcher = Device(cfg, "demo-watch", "display", subscriptions=[(topics.all_events, 1)],
                         on_message=self._print_event, outbox_path=self.workdir / "watch.sqlite").start()
        counters = DemoCounters(cfg, self.workdir, (1, 2))
        auto_staff = a.auto or not sys.stdin.isatty()
        print(HELP)
        if not auto_staff:
            counters.read_keyboard()
        deadline = time.monotonic() + a.duration if a.duration else None
        next_auto = time.monotonic() + 4
        try:
            while not self.stop.is_set() and counters.step():
                if deadline and time.monotonic() >= deadline:
                    break
                if auto_staff and time.monotonic() >= next_auto:
                    next_auto = time.monotonic() + random.uniform(2, 5)
                    counters.auto_press()
                for name, p in self.procs:
                    if p.poll() is not None:
                        print(f"  ! {name} exited with {p.returncode}; see its log")
                        self.procs.remove((name, p))
                        break
        except KeyboardInterrupt:
            pass
        finally:
            self.stop.set()
            counters.close()
            watcher.stop()
            for _, p in self.procs:
                p.send_signal(signal.SIGTERM)
            for _, p in self.procs:
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
            broker.stop()
        print("demo stopped. Logs and simulated tickets:", self.workdir)
        return 0

    def _print_event(self, topic: str, payload: bytes, props) -> None:
        try:
            e = json.loads(payload)
        except ValueError:
            return
        t = e.get("type")
        if t == "ticket.issued":
            print(f"  🎫 cấp số {e['number']} — {self.names.get(e['service'], e['service'])} (trước: {e['people_ahead']}, "
                  f"chờ ~{round(e['est_wait_s'] / 60)} phút)")
        elif t == "ticket.called":
            print(f"  📢 Xin mời công dân có số thứ tự {e['number']} đến quầy số {e['counter']}")
        elif t == "ticket.recalled":
            print(f"  📢 (gọi lại) số {e['number']} → quầy {e['counter']}")
        elif t in ("ticket.done", "ticket.no_show", "counter.paused", "counter.resumed"):
            print(f"  · {t} {e.get('number', '')} quầy {e.get('counter')}")


class DemoCounters:
    """Two real counter terminals (qms/counter/terminal.py) on one keyboard: Tab switches which
    one the keys go to. Their number boards are simulated and drawn to PNG files."""

    def __init__(self, cfg, workdir: Path, numbers: tuple[int, ...]):
        from qms.counter.lights import MemoryLights
        from qms.counter.number_display import open_number_display
        from qms.counter.terminal import CounterTerminal, open_device
        self.terminals, self.devices = [], []
        for n in numbers:
            board = open_number_display(cfg.counter_terminal.number_display, n, caption=f"QUẦY {n}",
                                        png=str(workdir / f"counter-{n}-board.png"))
            t = CounterTerminal(cfg, n, board, MemoryLights(),
                                say=lambda line, n=n: print(f"  [quầy {n}] {line}", flush=True))
            self.devices.append(open_device(cfg, f"counter-{n}", t,
                                            outbox_path=workdir / f"counter-{n}.sqlite").start())
            self.terminals.append(t)
        self.active = 0
        self.reader = None

    def read_keyboard(self) -> None:
        from qms.counter.keyboard import KeyboardReader
        self.reader = KeyboardReader(self._key).start()

    def _key(self, ch: str) -> None:
        if ch == "\t":
            self.active = (self.active + 1) % len(self.terminals)
            print(f"  → phím điều khiển quầy {self.terminals[self.active].counter}", flush=True)
        elif ch == "q":
            for t in self.terminals:
                t.post_char("q")
        else:
            self.terminals[self.active].post_char(ch)

    def auto_press(self) -> None:
        """Staff at work: call the next citizen, now and then finish with a rating."""
        t = random.choice(self.terminals)
        if t.machine.serving() and random.random() < 0.4:
            t.post_char("d")
            t.post_char(random.choice("3444"))
        else:
            t.post_char("n")

    def step(self) -> bool:
        return all([t.step(0.05) for t in self.terminals])

    def close(self) -> None:
        if self.reader:
            self.reader.stop()
        for d in self.devices:
            d.stop()
        for t in self.terminals:
            t.display.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headless", action="store_true", help="no windows: tickets and announcements go to files")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: run until q)")
    p.add_argument("--auto", action="store_true", help="counters press 'next' by themselves")
    p.add_argument("--config", help="site config to demo (default: config/ward-example.toml)")
    p.add_argument("--workdir", default=str(ROOT / "var" / "demo"), help="logs, state and printed tickets")


def run(args) -> int:
    import logging
    logging.getLogger("qms").setLevel(logging.WARNING)   # the demo prints its own story
    return Demo(args).run()
