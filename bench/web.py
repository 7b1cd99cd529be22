"""Benchmark of `qms web`: tracking-page latency under 200 concurrent phones, and the lag
from a counter's call to the citizen's page showing it.

Runs the real pieces as in production: a Mosquitto, `qms service` and `qms web` as their
own processes on loopback; a kiosk takes 200 tickets; then
  1. paced: 200 concurrent keep-alive clients each load their ticket page once a second
     (random phase) for --seconds; the same on /static/web.css as the baseline (a file,
     no queue lookup), so the ratio shows what the live lookup and rendering cost;
  2. saturated: the same 200 clients back to back (no pause) for a while: throughput,
     and the latency that queueing behind 199 others gives (Little's law);
  3. update lag: 200 live pages (server-sent events) open; a counter calls 50 of them in
     turn; lag = from sending counter.next to the page's stream delivering "called".
The HTTP clients run in a separate process (asyncio, one socket per client).

    python bench/web.py --json
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CLIENTS = 200


# ---------------------------------------------------------------- the load client (subprocess)
async def _client(port: int, paths: list[str], until: float, pace: float | None, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = random.randrange(len(paths))
    if pace:
        await asyncio.sleep(random.random() * pace)
    try:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            writer.write(f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(h.split(b":")[1] for h in head.split(b"\r\n")
                              if h.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n")[0].decode())
            dt = time.perf_counter() - t0
            out.append(dt * 1000)
            i += 1
            if pace:
                await asyncio.sleep(max(0.0, pace - dt))
    finally:
        writer.close()


async def _load(port: int, paths: list[str], seconds: float, pace: float | None) -> list[float]:
    out: list[float] = []
    until = time.monotonic() + seconds
    await asyncio.gather(*(_client(port, paths, until, pace, out) for _ in range(CLIENTS)))
    return out


def client_main(args) -> int:
    paths = json.loads(Path(args.paths).read_text())
    t0 = time.monotonic()
    lat = asyncio.run(_load(args.port, paths, args.seconds, args.pace or None))
    print(json.dumps({"lat": lat, "elapsed": time.monotonic() - t0}))
    return 0


def run_load(port: int, paths: list[str], seconds: float, pace: float, tmp: Path) -> dict:
    pf = tmp / "paths.json"
    pf.write_text(json.dumps(paths))
    r = subprocess.run([sys.executable, __file__, "--client", "--port", str(port), "--paths", str(pf),
                        "--seconds", str(seconds), "--pace", str(pace)],
                       capture_output=True, text=True, timeout=seconds + 120)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    res = json.loads(r.stdout)
    lat = sorted(res["lat"])
    return {"n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99), "max": round(lat[-1], 2),
            "rps": round(len(lat) / res["elapsed"], 1)}


def pct(sorted_values: list[float], p: float) -> float:
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * (len(sorted_values) - 1)))))
    return round(sorted_values[k], 2)


# ---------------------------------------------------------------- update lag
class Stream(threading.Thread):
    """One live page: reads the ticket's event stream, notes when it says "called"."""

    def __init__(self, port: int, tid: str):
        super().__init__(daemon=True)
        self.port, self.tid = port, tid
        self.called_at: float | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("GET", f"/t/{self.tid}/events")
        r = conn.getresponse()
        assert r.status == 200, r.status
        while True:
            line = r.fp.readline()
            if not line:
                return
            if line.startswith(b"data:"):
                self.ready.set()
                if b'data-state=\\"called\\"' in line:
                    self.called_at = time.perf_counter()
                    return


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    ap.add_argument("--pace", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        return client_main(args)

    from support.site import Broker, free_port, make_config

    from qms.config.site import load_config
    from qms.mqtt.device import Device

    tmp = Path(tempfile.mkdtemp(prefix="qms-bench-web-"))
    broker = Broker(tmp).start()
    port = free_port()
    cfg_path = make_config(tmp, broker.port, extra=(
        "[web]\nenabled = true\npages_per_minute = 1000000\nmax_streams = 1000\n"))
    env = {**os.environ, "QMS_LOG": "WARNING"}
    qms = [sys.executable, "-m", "qms"]
    procs = [subprocess.Popen(qms + ["service", "-c", str(cfg_path)], cwd=ROOT, env=env),
             subprocess.Popen(qms + ["web", "-c", str(cfg_path), "--bind", "127.0.0.1", "--port", str(port)],
                              cwd=ROOT, env=env)]
    cfg = load_config(cfg_path)
    kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp / "kiosk.outbox").start()
    desk = Device(cfg, "counter-1", "counter", outbox_path=tmp / "counter.outbox").start()
    try:
        assert kiosk.link.wait_connected(20) and desk.link.wait_connected(20)
        tickets = []
        for _ in range(CLIENTS):
            _, ack = kiosk.request("ticket.request", 20, service="chung-thuc")
            assert ack is not None and ack.ok, ack
            tickets.append(ack.result["ticket"]["ticket_id"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:          # the web process has followed the log
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", f"/api/v1/tickets/{tickets[-1]}")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        pages = [f"/t/{t}" for t in tickets]
        base = run_load(port, ["/static/web.css"], args.seconds, 1.0, tmp)
        paced = run_load(port, pages, args.seconds, 1.0, tmp)
        saturated = run_load(port, pages, args.seconds / 2, 0.0, tmp)

        streams = [Stream(port, t) for t in tickets]
        for s in streams:
            s.start()
        for s in streams:
            assert s.ready.wait(30)
        lags = []
        for s in streams[:50]:                      # counter 1 calls the oldest first: in order
            t0 = time.perf_counter()
            _, ack = desk.request("counter.next", 20)
            assert ack is not None and ack.ok, ack
            s.join(10)
            assert s.called_at is not None, "the page never showed the call"
            lags.append((s.called_at - t0) * 1000)
            time.sleep(0.05)
        lags.sort()
        result = {
            "clients": CLIENTS, "seconds": args.seconds,
            "page_p50_ms": paced["p50"], "page_p99_ms": paced["p99"], "page_requests": paced["n"],
            "static_p50_ms": base["p50"], "static_p99_ms": base["p99"],
            "page_vs_static_p99": round(paced["p99"] / base["p99"], 2) if base["p99"] else None,
            "saturated_rps": saturated["rps"], "saturated_p50_ms": saturated["p50"],
            "saturated_p99_ms": saturated["p99"],
            "update_lag_ms_p50": round(statistics.median(lags), 1), "update_lag_ms_p99": pct(lags, 99),
            "update_lag_samples": len(lags), "live_streams": len(streams),
        }
    finally:
        kiosk.stop()
        desk.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:24} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
