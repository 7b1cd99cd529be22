"""Benchmark: durable ticket-issue + call operations through the real service and Mosquitto.

The service runs as its own process (`qms service`), as in production, against a private
Mosquitto. A load generator in this process plays V virtual devices (half kiosks, half
counters), each with one operation outstanding at a time (closed loop): a kiosk sends
`ticket.request`, a counter `counter.next`; the next operation leaves when the service's
application-level ack for the previous one arrives — that ack is sent only after the
command's effect is committed to the service's SQLite log (WAL, synchronous=FULL).
Latency is send → ack. The baseline, measured in the same run, is one virtual device
(V = 1): no concurrency, hence no group commit. CPU per operation is reported for the
service, this load generator and the broker: all three share the machine's cores.

    python bench/service.py --json [--devices 6] [--sweep 2,4,8,16 [--compare /work/main]]
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
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import RawLoad  # noqa: E402
from mqtt.broker import LocalBroker  # noqa: E402

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


class Load:
    """V virtual devices on one MQTT connection, each with one operation in flight."""

    def __init__(self, port: int, site: str, devices: int, rounds: int):
        self.site = site
        self.remaining = {}
        self.sent_at: dict[str, float] = {}
        self.lat: list[float] = []
        self.done = threading.Event()
        self.seq = 0
        self.dev_seq: dict[str, int] = {}
        self.devices = []
        for n in range(devices):       # alternately a kiosk and a counter
            self.devices.append(("kiosk", f"bk{n // 2}") if n % 2 == 0 else ("counter", f"bc{20 + n // 2}"))
        self.remaining = {d: rounds for _, d in self.devices}
        self.active = len(self.devices)
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}",
                        protocol=paho.MQTTv5)
        c.on_connect = lambda cl, *a: cl.subscribe(f"qms/v1/{site}/ack/+", qos=1)
        c.on_message = self._on_ack
        c.on_socket_open = lambda cl, ud, sock: sock.setsockopt(6, 1, 1)   # TCP_NODELAY
        c.max_inflight_messages_set(1000)
        c.connect("127.0.0.1", port)
        self.client = c
        self.by_id: dict[str, tuple[str, str]] = {}

    def send(self, role: str, dev: str) -> None:
        self.seq += 1
        self.dev_seq[dev] = self.dev_seq.get(dev, 0) + 1
        mid = uuid.uuid4().hex
        msg = {"v": 1, "id": mid, "dev": dev, "seq": self.dev_seq[dev], "ts": int(time.time() * 1000)}
        # spread each kiosk's tickets over the services: each has 999 numbers a day
        service = SERVICES[(self.dev_seq[dev] + int(dev[2:])) % len(SERVICES)]
        msg.update({"type": "ticket.request", "service": service} if role == "kiosk" else {"type": "counter.next"})
        self.by_id[mid] = (role, dev)
        self.sent_at[mid] = time.perf_counter()
        self.client.publish(f"qms/v1/{self.site}/cmd/{role}/{dev}", json.dumps(msg), qos=1)

    def _on_ack(self, client, userdata, msg):
        ack = json.loads(msg.payload)
        t = self.sent_at.pop(ack["id"], None)
        if t is None:
            return
        if not ack["ok"]:
            print(f"operation refused: {ack}", file=sys.stderr)
            os._exit(1)
        self.lat.append(time.perf_counter() - t)
        role, dev = self.by_id.pop(ack["id"])
        self.remaining[dev] -= 1
        if self.remaining[dev] > 0:
            self.send(role, dev)
        else:
            self.active -= 1
            if self.active == 0:
                self.done.set()

    def run(self) -> float:
        self.client.loop_start()
        time.sleep(0.5)
        start = time.perf_counter()
        for role, dev in self.devices:
            self.send(role, dev)
        if not self.done.wait(300):
            raise SystemExit("benchmark did not finish")
        wall = time.perf_counter() - start
        self.client.loop_stop()
        return wall


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(devices: int, rounds: int, profile: str | None = None, root: Path = ROOT,
            loadgen: str = "raw") -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = LocalBroker(tmp / "broker").start()
        cfg = site_config(tmp, broker.port, (devices + 1) // 2)
        env = dict(os.environ, QMS_LOG="WARNING")
        cmd = ([sys.executable, __file__, "--serve-profiled", str(cfg), profile] if profile else
               [sys.executable, "-m", "service.cli", "service", "--config", str(cfg)])
        svc = subprocess.Popen(cmd, cwd=root, env=env)
        try:
            time.sleep(1.5)
            load = (RawLoad(broker.port, "phuong-an-khanh", devices, rounds, SERVICES) if loadgen == "raw"
                    else Load(broker.port, "phuong-an-khanh", devices, rounds))
            cpu0, own0, brk0 = cpu_seconds(svc.pid), time.process_time(), cpu_seconds(broker.proc.pid)
            wall = load.run()
            cpu = cpu_seconds(svc.pid) - cpu0
            own, brk = time.process_time() - own0, cpu_seconds(broker.proc.pid) - brk0
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


def serve_profiled(cfg_path: str, out: str) -> None:
    """The service's main loop under cProfile (diagnosis only); stats to `out` on SIGTERM."""
    import cProfile
    import signal

    from service.app import CentralService
    from service.config import load_config
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
    ap.add_argument("--devices", type=int, default=6,
                    help="virtual devices with one operation in flight each (alternately kiosk, counter)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="operations per virtual device (default: about 6,000 operations per run)")
    ap.add_argument("--sweep", help="also measure these device counts, e.g. 2,4,8,16")
    ap.add_argument("--profile", help="write a cProfile of the service's main loop under load here")
    ap.add_argument("--compare", metavar="DIR",
                    help="with --sweep: also run another checkout's service (e.g. main) at each count")
    a = ap.parse_args()

    def rounds(v: int) -> int:
        return a.rounds or max(200, 6000 // v)

    base = measure(1, rounds(1))
    res = measure(a.devices, rounds(a.devices), a.profile)
    out = {"ops_per_s": res["ops_per_s"], "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
           "ops": res["ops"], "virtual_devices": a.devices,
           "service_cpu_us_per_op": res["service_cpu_us_per_op"],
           "loadgen_cpu_us_per_op": res["loadgen_cpu_us_per_op"],
           "broker_cpu_us_per_op": res["broker_cpu_us_per_op"],
           "baseline_one_device_ops_per_s": base["ops_per_s"],
           "baseline_one_device_p99_ms": base["p99_ms"],
           "throughput_ratio_vs_baseline": round(res["ops_per_s"] / base["ops_per_s"], 2)}
    if a.sweep:
        out["sweep"] = []
        for v in map(int, a.sweep.split(",")):
            out["sweep"].append(measure(v, rounds(v)))
            if a.compare:       # interleaved, so both see the same machine load
                out["sweep"].append(dict(measure(v, rounds(v), root=Path(a.compare)), service=a.compare))
    print(json.dumps(out) if a.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
