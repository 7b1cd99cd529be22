"""Benchmark: durable ticket-issue + call operations through the real service and Mosquitto.

The service runs as its own process (`qms service`), as in production, against a private
Mosquitto. A load generator in this process (bench/loadgen.py) plays V virtual devices
(half kiosks, half counters), each with one operation outstanding at a time (closed
loop): a kiosk sends `ticket.request`, a counter `counter.next`; the next operation
leaves when the service's application-level ack for the previous one arrives - that ack
is sent only after the command's effect is committed to the service's SQLite log (WAL,
synchronous=FULL). Latency is send -> ack; the first operations of a run (warm-up) are
not measured. Each figure is the median of `--repeat` runs. The baseline, measured in the
same runs, is one virtual device (V = 1): no concurrency, hence no group commit. CPU per
operation is reported for the service, the load generator and the broker: all three
share the machine's cores.

    python bench/service.py --json [--devices 5] [--repeat 3] [--sweep 2,4,6,8 [--compare DIR]]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import PahoLoad, RawLoad  # noqa: E402
from qms.mqtt.broker import LocalBroker  # noqa: E402

SERVICES = ["chung-thuc", "ho-tich", "dat-dai", "xay-dung", "ho-kinh-doanh", "van-hoa-xa-hoi", "bhxh-bhyt",
            "nhan-ket-qua"]


def site_config(tmp: Path, port: int, n_counters: int) -> Path:
    text = (ROOT / "config" / "ward-example.toml").read_text(encoding="utf-8")
    text = text.replace("port = 1883", f"port = {port}").replace('state_dir = "../var"', f'state_dir = "{tmp}"')
    # open all day, every day, so the benchmark runs at any hour; room for many tickets
    text = text.replace('open = "07:30"', 'open = "00:00"').replace('close = "17:00"', 'close = "23:59"')
    text = text.replace("weekdays = [1, 2, 3, 4, 5, 6]", "weekdays = [1, 2, 3, 4, 5, 6, 7]")
    text = text.replace("cutoff_minutes = 15", "cutoff_minutes = 0").replace("offline_block = 50", "offline_block = 0")
    text = re.sub(r"daily_cap = \d+", "daily_cap = 999", text)
    services = '["chung-thuc", "ho-tich", "dat-dai", "xay-dung", "ho-kinh-doanh", "van-hoa-xa-hoi", "bhxh-bhyt", "nhan-ket-qua"]'
    extra = "".join(f'[[counters]]\nnumber = {n}\nservices = {services}\n'
                    f'[[devices]]\nid = "bc{n}"\nrole = "counter"\ncounter = {n}\n'
                    for n in range(20, 20 + n_counters))
    path = tmp / "bench.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(devices: int, ops: int, warmup: int = 500, profile: str | None = None, root: Path = ROOT,
            loadgen: str = "raw") -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = LocalBroker(tmp / "broker").start()
        cfg = site_config(tmp, broker.port, (devices + 1) // 2)
        env = dict(os.environ, QMS_LOG="WARNING")
        cmd = ([sys.executable, __file__, "--serve-profiled", str(cfg), profile] if profile else
               [sys.executable, "-m", "qms", "service", "--config", str(cfg)])
        svc = subprocess.Popen(cmd, cwd=root, env=env)
        try:
            time.sleep(1.5)
            load = (RawLoad if loadgen == "raw" else PahoLoad)(
                broker.port, "phuong-an-khanh", devices, ops, warmup, SERVICES)
            cpu0 = {}
            load.on_warm = lambda: cpu0.update(
                svc=cpu_seconds(svc.pid), own=time.process_time(), brk=cpu_seconds(broker.proc.pid))
            wall = load.run()
            cpu = cpu_seconds(svc.pid) - cpu0["svc"]
            own, brk = time.process_time() - cpu0["own"], cpu_seconds(broker.proc.pid) - cpu0["brk"]
        finally:
            svc.terminate()
            svc.wait(10)
            broker.stop()
    lat = sorted(load.lat)
    return {"devices": devices, "ops": len(lat), "ops_per_s": round(len(lat) / wall),
            "p50_ms": round(statistics.median(lat) * 1000, 2),
            "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)] * 1000, 2),
            "service_cpu_us_per_op": round(cpu / len(lat) * 1e6),
            "loadgen_cpu_us_per_op": round(own / len(lat) * 1e6),
            "broker_cpu_us_per_op": round(brk / len(lat) * 1e6)}


def median_of(runs: list[dict]) -> dict:
    """Each figure's median over repeated runs (the runs themselves stay in `runs`)."""
    keys = [k for k in runs[0] if k not in ("devices", "ops")]
    out = {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}
    return {"devices": runs[0]["devices"], "ops": runs[0]["ops"], **out, "runs": len(runs)}


def serve_profiled(cfg_path: str, out: str) -> None:
    """The service's main loop under cProfile (diagnosis only); stats to `out` on SIGTERM."""
    import cProfile
    import signal

    from qms.config.site import load_config
    from qms.service.app import CentralService
    svc = CentralService(load_config(cfg_path)).start(in_thread=False)
    signal.signal(signal.SIGTERM, lambda *a: svc._stop.set())
    prof = cProfile.Profile()
    prof.runcall(svc.run)
    prof.dump_stats(out)
    svc.stop()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-profiled":
        return serve_profiled(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--devices", type=int, default=5,
                    help="virtual devices with one operation in flight each (alternately kiosk, counter)")
    ap.add_argument("--ops", type=int, default=6000, help="measured operations per run")
    ap.add_argument("--warmup", type=int, default=500, help="operations before measuring, per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (medians are reported)")
    ap.add_argument("--loadgen", choices=("raw", "paho"), default="raw",
                    help="load generator: lean raw MQTT (default) or paho (bench/loadgen.py: why)")
    ap.add_argument("--sweep", help="also measure these device counts, e.g. 2,4,6,8")
    ap.add_argument("--profile", help="write a cProfile of the service's main loop under load here")
    ap.add_argument("--compare", metavar="DIR",
                    help="with --sweep: also run another checkout's service (e.g. main) at each count")
    a = ap.parse_args()

    def run(v: int, root: Path = ROOT, profile: str | None = None) -> dict:
        return measure(v, a.ops, a.warmup, profile, root, a.loadgen)

    base_runs, runs = [], []
    for i in range(a.repeat):           # interleaved, so both see the same machine load
        base_runs.append(run(1))
        runs.append(run(a.devices, profile=a.profile if i == 0 else None))
    base, res = median_of(base_runs), median_of(runs)
    out = {"ops_per_s": res["ops_per_s"], "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
           "ops": res["ops"], "runs": a.repeat, "virtual_devices": a.devices, "loadgen": a.loadgen,
           "service_cpu_us_per_op": res["service_cpu_us_per_op"],
           "loadgen_cpu_us_per_op": res["loadgen_cpu_us_per_op"],
           "broker_cpu_us_per_op": res["broker_cpu_us_per_op"],
           "ops_per_s_each_run": [r["ops_per_s"] for r in runs],
           "p99_ms_each_run": [r["p99_ms"] for r in runs],
           "baseline_one_device_ops_per_s": base["ops_per_s"],
           "baseline_one_device_p99_ms": base["p99_ms"],
           "throughput_ratio_vs_baseline": round(res["ops_per_s"] / base["ops_per_s"], 2)}
    if a.sweep:
        out["sweep"] = []
        for v in map(int, a.sweep.split(",")):
            ours, other = [], []
            for _ in range(a.repeat):
                ours.append(run(v))
                if a.compare:
                    other.append(run(v, root=Path(a.compare)))
            out["sweep"].append(median_of(ours))
            if a.compare:
                out["sweep"].append(dict(median_of(other), service=a.compare))
    print(json.dumps(out) if a.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
