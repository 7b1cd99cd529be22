"""What one broken command costs the service and the broker: `qms service` idle but for a
flood of bench/service.py's garbage (1,000/s, raw QoS 0 packets through a private
Mosquitto), service and broker CPU per message over `--seconds`; with `--compare DIR`,
another checkout's service (its own .venv) in alternation, so both see the same load.
Every run also checks that the service counted every message sent (`state/summary`).

    python bench/garbage_alone.py [--repeat 3] [--seconds 6] [--compare /path/to/main]
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
sys.path.insert(0, str(ROOT))

from bench.service import Garbage, cpu_seconds, garbage_packets, service_counted, site_config  # noqa: E402
from qms.mqtt.broker import LocalBroker  # noqa: E402


def one(root: Path, packets: list[bytes], rate: float, seconds: float) -> dict:
    py = root / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = LocalBroker(tmp / "broker").start()
        svc = subprocess.Popen([str(py if py.exists() else sys.executable), "-m", "qms", "service",
                                "--config", str(site_config(tmp, broker.port, 3))],
                               cwd=root, env=dict(os.environ, QMS_LOG="ERROR"), stderr=subprocess.DEVNULL)
        try:
            time.sleep(2)
            flood = Garbage(broker.port, rate, packets)
            flood.start()
            time.sleep(1)
            s0, b0, n0 = cpu_seconds(svc.pid), cpu_seconds(broker.proc.pid), flood.sent
            time.sleep(seconds)
            n = flood.sent - n0
            out = {"service_cpu_us_per_garbage": round((cpu_seconds(svc.pid) - s0) / n * 1e6),
                   "broker_cpu_us_per_garbage": round((cpu_seconds(broker.proc.pid) - b0) / n * 1e6)}
            flood.close()
            out.update(sent=flood.sent, counted_by_service=service_counted(broker.port))
            return out
        finally:
            svc.terminate()
            svc.wait(20)
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--compare", metavar="DIR", help="another checkout whose service runs in alternation")
    a = ap.parse_args()
    packets = garbage_packets(int(a.rate * (a.seconds + 3)) + 1000)
    roots = {"this": ROOT, **({"compare": Path(a.compare).resolve()} if a.compare else {})}
    runs: dict[str, list[dict]] = {k: [] for k in roots}
    for _ in range(a.repeat):
        for name, root in roots.items():
            runs[name].append(one(root, packets, a.rate, a.seconds))
    print(json.dumps({name: {"service_cpu_us_per_garbage": statistics.median(r["service_cpu_us_per_garbage"] for r in rs),
                             "runs": rs} for name, rs in runs.items()} | {"load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
