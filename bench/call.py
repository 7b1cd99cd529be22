"""Call latency and idle cost of the hall display, through the real service and Mosquitto.

    python bench/call.py --json [--calls 30] [--idle 20]

call_to_frame: a counter's `counter.next` handed to MQTT → the display process's frame with
the new number drawn (display traces its frames with CLOCK_MONOTONIC, shared by processes).
fact_to_frame: the fact's arrival in the display process → that frame (the display's own share).
call_to_audio: same start → the first chime sample handed to the mixer (SDL disk audio
to /dev/null at ~20x real time, so every announcement is over before the next call).
Baseline: the counter's own round trip (command → the service's ack) in the same run.
idle_cpu_pct: a second display process, real-time audio, no calls, user+system CPU over
--idle seconds; also with a scrolling ticker, the worst idle case.
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

from support.site import Broker, make_config  # noqa: E402  (real Mosquitto on a free port)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


class Trace:
    def __init__(self, path: Path):
        self.path, self.pos, self.lines = path, 0, []

    def poll(self):
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                f.seek(self.pos)
                chunk = f.read()
                done = chunk[: chunk.rfind("\n") + 1]
                self.pos += len(done.encode())
                self.lines += [json.loads(x) for x in done.splitlines() if x]
        return self.lines

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for x in self.poll():
                if pred(x):
                    return x
            time.sleep(0.002)
        return None


def start_display(cfg_path: Path, trace: Path, env_extra: dict, extra_args=()) -> subprocess.Popen:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="disk", SDL_DISKAUDIOFILE="/dev/null",
               PYTHONPATH=str(ROOT), **env_extra)
    return subprocess.Popen([sys.executable, "-m", "qms", "display", "--config", str(cfg_path),
                             "--size", "1920x1080", "--windowed", "--trace", str(trace), *extra_args],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_idle(cfg_path: Path, work: Path, seconds: float, name: str) -> float:
    trace = work / f"{name}.jsonl"
    proc = start_display(cfg_path, trace, {})        # default disk delay: real-time audio
    try:
        if not Trace(trace).wait(lambda x: x["kind"] == "link" and x["up"], 30):
            raise RuntimeError("display did not connect")
        time.sleep(2)                                 # boot work (fonts, first frame) is over
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        return 100 * (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measurement")
    args = ap.parse_args()

    from qms.config.site import load_config
    from qms.mqtt.device import Device
    from qms.service.app import CentralService

    work = Path(tempfile.mkdtemp(prefix="qms-bench-call-"))
    broker = Broker(work).start()
    cfg_path = make_config(work, broker.port)
    cfg = load_config(cfg_path)
    svc = CentralService(cfg, work / "service.sqlite", tick_seconds=3600).start()
    kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=work / "k.sqlite").start()
    counter = Device(cfg, "counter-1", "counter", outbox_path=work / "c.sqlite").start()
    trace_path = work / "display.jsonl"
    display = start_display(cfg_path, trace_path, {"SDL_DISKAUDIODELAY": "1"})
    frames, audio, acks, display_only, draw = [], [], [], [], []
    try:
        trace = Trace(trace_path)
        if not trace.wait(lambda x: x["kind"] == "link" and x["up"], 30):
            raise RuntimeError("display did not connect")
        for _ in range(args.calls):
            _, ack = kiosk.request("ticket.request", 10, service="chung-thuc")
            assert ack and ack.ok, ack
        time.sleep(1.0)
        for _ in range(args.calls):
            t0 = time.monotonic()
            _, ack = counter.request("counter.next", 10)
            acks.append((time.monotonic() - t0) * 1000)
            number = ack.result["ticket"]["number"]
            f = trace.wait(lambda x, n=number, t0=t0: x["kind"] == "frame" and x.get("hero") == n and x["t"] >= t0)
            a = trace.wait(lambda x, n=number, t0=t0: x["kind"] == "audio" and x.get("number") == n and x["t"] >= t0)
            if f is None or a is None:
                raise RuntimeError(f"call {number}: no frame or no audio in 10 s")
            frames.append((f["t"] - t0) * 1000)
            display_only.append((f["t"] - f["arrived"]) * 1000)
            draw.append(f["draw_ms"])
            audio.append((a["t"] - t0) * 1000)
            time.sleep(0.8)      # the announcement (~9 s of audio at ~20x) is over
    finally:
        display.terminate()
        display.wait(10)
    idle = measure_idle(cfg_path, work, args.idle, "idle")
    with open(cfg_path, "a", encoding="utf-8") as f:
        f.write('\n[display]\nticker = "Hồ sơ số 123 của ông Nguyễn Văn Ánh đã có kết quả. '
                'Trung tâm làm việc từ 7 giờ 30 đến 17 giờ, thứ Hai đến thứ Bảy. '
                'Xin vui lòng giữ trật tự và chờ đến lượt."\n')
    idle_ticker = measure_idle(cfg_path, work, args.idle, "idle-ticker")
    kiosk.stop()
    counter.stop()
    svc.stop()
    broker.stop()
    result = {
        "calls": args.calls,
        "call_to_frame_ms_p50": round(statistics.median(frames), 1),
        "call_to_frame_ms_p99": round(pct(frames, 99), 1),
        "call_to_audio_ms_p50": round(statistics.median(audio), 1),
        "call_to_audio_ms_p99": round(pct(audio, 99), 1),
        "fact_to_frame_ms_p50": round(statistics.median(display_only), 1),
        "fact_to_frame_ms_p99": round(pct(display_only, 99), 1),
        "draw_ms_p50": round(statistics.median(draw), 1),
        "baseline_call_to_ack_ms_p50": round(statistics.median(acks), 1),
        "baseline_call_to_ack_ms_p99": round(pct(acks, 99), 1),
        "frame_vs_ack_p50_ratio": round(statistics.median(frames) / statistics.median(acks), 2),
        "idle_seconds": args.idle,
        "idle_cpu_pct": round(idle, 2),
        "idle_cpu_pct_scrolling_ticker": round(idle_ticker, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
