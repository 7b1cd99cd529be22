"""Kiosk benchmark: touch to first printer byte (online and offline), cold start, memory.

    python bench/kiosk.py [--json] [--tickets 50]

Everything real: Mosquitto on a free port, the central service (in this process), the
kiosk app headless (SDL dummy), a touch posted as an SDL event, the printer driver
(drivers/printer.py) talking to its simulated ESC/POS printer over a pty; the first byte
is the first write of the ticket's bytes to the serial link (after the driver's status
query, which the driver makes before every job). Offline = the broker
stopped and known to be (Device.online false). Baseline, same run: the printer alone
(`print_ticket` called directly to first byte), so the ratio shows what the kiosk adds.
Cold start = `qms kiosk --headless` process spawn to its "idle screen drawn" line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(ROOT / "var" / "escpos-cache"))
Path(os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"]).mkdir(parents=True, exist_ok=True)   # a fresh clone has no var/


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class FirstByte:
    """Timestamps the first write of each print job's ticket bytes to the printer link
    (the status queries before it do not count)."""

    def __init__(self, transport):
        self.first_byte_at: list[float] = []
        self._armed = False
        write = transport.write

        def timed_write(data):
            if self._armed:
                self.first_byte_at.append(time.perf_counter())
                self._armed = False
            return write(data)
        transport.write = timed_write

    def mark(self):
        self._armed = True


def touch_to_first_byte(app, reader, services: list[str], n: int) -> list[float]:
    from qms.sim.kiosk_testing import post_touch, tap, target
    out = []
    for i in range(n):
        app.reset()
        tap(app, ("menu",))
        pos = target(app, ("service", services[i % len(services)])).center
        reader.mark()
        before = len(reader.first_byte_at)
        t0 = time.perf_counter()
        post_touch(app, pos)
        app.step()
        deadline = time.monotonic() + 5
        while len(reader.first_byte_at) == before and time.monotonic() < deadline:
            time.sleep(0.0005)
        if len(reader.first_byte_at) == before:
            raise RuntimeError(f"ticket {i} never reached the printer")
        out.append((reader.first_byte_at[-1] - t0) * 1000)
        while app.view.printing and time.monotonic() < deadline:       # let it finish printing
            app.step()
            time.sleep(0.002)
    return out


def printer_alone(reader, printer, ticket, n: int) -> list[float]:
    out = []
    for _ in range(n):
        reader.mark()
        t0 = time.perf_counter()
        printer.print_ticket(ticket)
        deadline = time.monotonic() + 5
        while len(reader.first_byte_at) == 0 or reader.first_byte_at[-1] < t0:
            if time.monotonic() > deadline:
                raise RuntimeError("printer never wrote")
            time.sleep(0.0005)
        out.append((reader.first_byte_at[-1] - t0) * 1000)
    return out


def cold_start(config: Path, runs: int = 3) -> tuple[list[float], list[float]]:
    times, rss = [], []
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "qms", "kiosk", "--config", str(config),
                              "--headless", "--frames", "15"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        for line in p.stdout:
            if "idle screen drawn" in line:
                times.append(time.perf_counter() - t0)
                time.sleep(0.3)
                try:
                    status = Path(f"/proc/{p.pid}/status").read_text()
                    kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
                    rss.append(kb / 1024)
                except (OSError, StopIteration):
                    pass
                break
        p.wait(30)
    return times, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tickets", type=int, default=50)
    args = ap.parse_args()
    import logging
    logging.disable(logging.WARNING)
    from support.site import Broker, make_config

    from qms.config.site import load_config
    from qms.kiosk.app import KioskApp
    from qms.kiosk.printing import make_printer
    from qms.kiosk.voice import SilentSpeaker
    from qms.service.app import CentralService

    n = max(5, min(args.tickets, 45))          # stays within one kiosk's offline block
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp).start()
        cfg_path = make_config(tmp, broker.port)
        cfg = load_config(cfg_path)
        svc = CentralService(cfg, tmp / "service.sqlite", tick_seconds=3600).start()
        svc.link.wait_connected(10)
        printer = make_printer(cfg.printer, tmp)
        reader = FirstByte(printer.driver.transport)
        app = KioskApp(cfg, "kiosk-1", size=(1024, 600), printer=printer, speaker=SilentSpeaker(),
                       db=tmp / "kiosk.sqlite").start()
        deadline = time.monotonic() + 10
        while not (app.device.online and len(app.issuer.service_views) == len(cfg.services)):
            app.step()
            if time.monotonic() > deadline:
                raise RuntimeError("kiosk did not connect")
            time.sleep(0.01)
        services = ["chung-thuc", "ho-tich", "nhan-ket-qua"]
        touch_to_first_byte(app, reader, services, 3)                     # warm-up
        online = touch_to_first_byte(app, reader, services, n)
        assert app.issuer.stats["offline"] == 0, app.issuer.stats
        baseline = printer_alone(reader, printer, app.view.ticket, n)
        broker.stop()
        deadline = time.monotonic() + 10
        while app.device.online and time.monotonic() < deadline:
            time.sleep(0.01)
        offline = touch_to_first_byte(app, reader, services, n)
        assert app.issuer.stats["timeouts"] == 0 and app.issuer.stats["offline"] == n, app.issuer.stats
        app.stop()
        svc.stop()
        starts, rss = cold_start(cfg_path)

    result = {
        "tickets": n,
        "touch_to_first_byte_ms_p50": round(statistics.median(online), 2),
        "touch_to_first_byte_ms_p99": round(pct(online, 99), 2),
        "offline_touch_to_first_byte_ms_p50": round(statistics.median(offline), 2),
        "offline_touch_to_first_byte_ms_p99": round(pct(offline, 99), 2),
        "baseline_printer_alone_ms_p50": round(statistics.median(baseline), 2),
        "cold_start_s": round(statistics.median(starts), 3),
        "rss_mb": round(statistics.median(rss), 1) if rss else None,
    }
    result["ratio_online_vs_printer_alone_p50"] = round(
        result["touch_to_first_byte_ms_p50"] / max(result["baseline_printer_alone_ms_p50"], 1e-3), 1)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:42s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
