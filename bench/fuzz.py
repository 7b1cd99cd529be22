"""Fuzz the service from outside: structure-aware mutated commands on every command topic
while five well-behaved devices work, as in production (`qms service` in its own process,
a private Mosquitto, raw paho clients; nothing of the project's client).

Every mutation starts from a valid command of the topic's role and breaks it for sure:
deep nesting (in the body or in a field), huge strings (over the size limit, or over a
field's length), wrong types, Unicode and NUL where ids go, duplicate keys (with a wrong
value), unknown fields, truncated or non-JSON bytes, a body naming another device; and
valid-looking commands published with the retain flag. Checked: the service never dies
and never writes a dead letter; no good command waits more than 1 s for its ack; the event
log holds exactly what the good devices' acks say (0 state changes from bad payloads); no
command stays retained on the broker.

    python bench/fuzz.py --payloads 100000 --rate 1000 [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qms.mqtt.broker import LocalBroker  # noqa: E402

SITE = "phuong-an-khanh"
BASE = f"qms/v1/{SITE}"
# every command topic of the example ward, and devices it does not list
TOPICS = [("kiosk", "kiosk-1"), ("robot", "robot-1"), ("web", "web"), ("admin", "admin-1"),
          *[("counter", f"counter-{n}") for n in range(1, 7)], ("kiosk", "kiosk-9"),
          ("counter", "counter-9"), ("display", "display-1"), ("service", "service")]
GOOD = [("kiosk", "kiosk-1"), ("robot", "robot-1"), ("counter", "counter-1"), ("counter", "counter-2"),
        ("counter", "counter-3")]
ROLE_COMMANDS = {
    "kiosk": [("ticket.request", {"service": "ho-tich"}),
              ("ticket.offline", {"ticket_id": "paper-0000001", "service": "ho-tich", "number": 2990,
                                  "issued_at": 1795485600000})],
    "counter": [("counter.next", {}), ("counter.pause", {"reason": "Họp"}), ("counter.call", {"number": 2001}),
                ("counter.transfer", {"to_service": "dat-dai"}), ("rating.submit",
                                                                  {"ticket_id": "ticket-0000001", "level": 4})],
    "admin": [("notice.set", {"text_vi": "Thông báo", "text_en": "Notice"})],
}
ROLE_COMMANDS["robot"] = ROLE_COMMANDS["kiosk"]
ROLE_COMMANDS["web"] = ROLE_COMMANDS["kiosk"][:1]
ROLE_COMMANDS["display"] = ROLE_COMMANDS["service"] = ROLE_COMMANDS["kiosk"][:1]
PREMADE = 20_000
SERVICES = ["chung-thuc", "ho-tich", "dat-dai", "xay-dung", "ho-kinh-doanh", "van-hoa-xa-hoi", "bhxh-bhyt",
            "nhan-ket-qua"]
UNICODE = ["hộ-tịch", "Đ", "🎫🎫🎫🎫🎫🎫🎫🎫", "\u202eabcdefgh", "ｆｕｌｌｗｉｄｔｈ", "a\u0301" * 8, "\ud800"]


class Mutator:
    """Broken commands, each with the reason it is broken ("kind")."""

    KINDS = ("deep_body", "deep_field", "huge_string", "long_field", "wrong_type", "unicode_id",
             "nul", "duplicate_keys", "unknown_field", "truncated", "not_json", "other_dev",
             "retained")

    def __init__(self, seed: int, huge: tuple[int, ...] = (17_000, 100_000, 1_000_000)):
        self.rnd = random.Random(seed)
        self.n = 0
        self.huge = huge

    def base(self, role: str, dev: str) -> dict:
        self.n += 1
        type_, fields = self.rnd.choice(ROLE_COMMANDS[role])
        return {"v": 1, "id": f"fuzz-{self.n:09d}", "dev": dev, "seq": self.rnd.choice([0, 1, 2, 7, 10**6, 2**53]),
                "ts": 1795485600000, "type": type_, **fields}

    def one(self) -> tuple[str, bytes, bool, str]:
        role, dev = self.rnd.choice(TOPICS)
        topic = f"{BASE}/cmd/{role}/{dev}"
        kind = self.rnd.choice(self.KINDS)
        body = self.base(role, dev)
        r = self.rnd
        retain = kind == "retained" or r.random() < 0.05     # some broken ones retained too
        if kind == "deep_body":
            d = r.choice([5, 50, 1000, 5000])
            payload = b'{"a":' * d + json.dumps(body).encode() + b"}" * d
        elif kind == "deep_field":
            d = r.choice([5, 100, 3000])
            payload = json.dumps(body).encode()[:-1] + b',"x":' + b"[" * d + b"]" * d + b"}"
        elif kind == "huge_string":
            body[r.choice(["id", "dev", "type", "x"])] = "x" * r.choice(self.huge)
            payload = json.dumps(body).encode()
        elif kind == "long_field":       # over the field's limit (id 64, service 40, reason 120, text 500)
            body[r.choice(["id", "service", "reason", "text_vi"])] = "ư" * r.choice([600, 4000])
            payload = json.dumps(body, ensure_ascii=r.random() < 0.5).encode()
        elif kind == "wrong_type":
            field, value = r.choice([("seq", "1"), ("v", 2), ("ts", True), ("dev", None), ("id", 12345678),
                                     ("type", ["ticket.request"]), ("seq", -1), ("seq", 1.5),
                                     ("v", "1"), ("seq", 2**64)])
            body[field] = value
            payload = json.dumps(body).encode()
        elif kind == "unicode_id":
            body["id"] = r.choice(UNICODE) + body["id"]
            payload = json.dumps(body, ensure_ascii=r.random() < 0.5).encode("utf-8", "surrogatepass")
        elif kind == "nul":
            body["id"] = body["id"][:5] + "\x00" + body["id"][5:]
            payload = json.dumps(body).encode()
            if r.random() < 0.5:
                payload = payload.replace(b"\\u0000", b"\x00")       # a raw NUL: not JSON at all
        elif kind == "duplicate_keys":   # a key twice, the second value wrong, and a sure fault
            field, wrong = r.choice([('"v"', "2"), ('"seq"', '"x"'), ('"type"', '"no.such"'), ('"dev"', "null")])
            payload = (json.dumps(body)[:-1] + f",{field}:{wrong},\"zz\":1}}").encode()
        elif kind == "unknown_field":
            body[r.choice(["zz", "counter", "priority_x", "ID"])] = 1
            payload = json.dumps(body).encode()
        elif kind == "truncated":
            text = json.dumps(body).encode()
            payload = text[: r.randrange(0, len(text) - 1)]
        elif kind == "not_json":
            payload = bytes(r.randrange(256) for _ in range(r.randrange(0, 200)))
            if payload[:1] in (b"{", b"["):
                payload = b"\xff" + payload
        elif kind == "other_dev":
            body["dev"] = r.choice([d for _, d in TOPICS if d != dev])
            payload = json.dumps(body).encode()
        else:   # retained: a command that would be valid, published with the retain flag
            payload = json.dumps(body).encode()
        return topic, payload, retain, kind


class GoodDevice(threading.Thread):
    """One command in flight at a time; each command's wait for its ack is recorded."""

    def __init__(self, port: int, role: str, dev: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.role, self.dev, self.stop_ = role, dev, stop
        self.lat: list[float] = []
        self.acks: list[dict] = []
        self.got = threading.Event()
        self.pending: str | None = None
        self.seq = 0
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"good-{dev}", protocol=paho.MQTTv5)
        sub = threading.Event()
        c.on_connect = lambda cl, *a: cl.subscribe(f"{BASE}/ack/{dev}", 1)
        c.on_subscribe = lambda *a: sub.set()
        c.on_message = self._on_ack
        c.connect("127.0.0.1", port)
        c.loop_start()
        assert sub.wait(10)
        self.c = c

    def _on_ack(self, client, userdata, msg):
        ack = json.loads(msg.payload)
        if ack.get("id") == self.pending:
            self.acks.append(ack)
            self.got.set()

    def run(self) -> None:
        while not self.stop_.is_set():
            self.seq += 1
            cmd = {"v": 1, "id": f"{self.dev}-good-{self.seq:07d}", "dev": self.dev, "seq": self.seq,
                   "ts": int(time.time() * 1000)}
            cmd.update({"type": "ticket.request", "service": SERVICES[self.seq % len(SERVICES)]}
                       if self.role != "counter" else {"type": "counter.next"})
            self.pending, t0 = cmd["id"], time.perf_counter()
            self.got.clear()
            self.c.publish(f"{BASE}/cmd/{self.role}/{self.dev}", json.dumps(cmd), qos=1)
            if not self.got.wait(30):           # a real outbox re-sends; here it must not need to
                self.lat.append(float("inf"))
                return
            self.lat.append(time.perf_counter() - t0)
            time.sleep(0.002)                   # a device is not a load generator

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def site_config(tmp: Path, port: int) -> Path:
    text = (ROOT / "config" / "ward-example.toml").read_text(encoding="utf-8")
    text = text.replace("port = 1883", f"port = {port}").replace('state_dir = "../var"', f'state_dir = "{tmp}"')
    text = text.replace('open = "07:30"', 'open = "00:00"').replace('close = "17:00"', 'close = "23:59"')
    text = text.replace("weekdays = [1, 2, 3, 4, 5, 6]", "weekdays = [1, 2, 3, 4, 5, 6, 7]")
    text = text.replace("cutoff_minutes = 15", "cutoff_minutes = 0")
    path = tmp / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    return path


def retained_commands(port: int) -> int:
    """How many commands the broker still holds retained (a marker is the barrier)."""
    got, done = [], threading.Event()
    marker = f"{BASE}/fuzz-marker"
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="fuzz-retained", protocol=paho.MQTTv5)
    c.on_message = lambda cl, u, m: done.set() if m.topic == marker else got.append(m.topic) if m.payload else None
    c.on_connect = lambda cl, *a: cl.subscribe([(f"{BASE}/cmd/#", 1), (marker, 1)])
    c.on_subscribe = lambda cl, *a: cl.publish(marker, b"x", qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert done.wait(10)
    c.disconnect()
    c.loop_stop()
    return len(got)


def run_fuzz(payloads: int, rate: float = 1000.0, seed: int = 15,
             huge: tuple[int, ...] = (17_000, 100_000, 1_000_000)) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = LocalBroker(tmp / "broker").start()
        cfg = site_config(tmp, broker.port)
        db = tmp / "service.sqlite"
        svc = subprocess.Popen([sys.executable, "-m", "qms", "service", "--config", str(cfg), "--db", str(db)],
                               cwd=ROOT, env=dict(os.environ, QMS_LOG="ERROR"), stderr=subprocess.PIPE)
        stop = threading.Event()
        devices: list[GoodDevice] = []
        try:
            up = threading.Event()
            w = paho.Client(CallbackAPIVersion.VERSION2, client_id="fuzz-watch", protocol=paho.MQTTv5)
            summary: dict = {}
            w.on_message = lambda cl, u, m: (up.set() if m.topic.endswith("/status/service") and m.payload
                                             and json.loads(m.payload).get("online") else None,
                                             summary.update(json.loads(m.payload)) if m.topic.endswith(
                                                 "state/summary") else None)
            w.on_connect = lambda cl, *a: cl.subscribe([(f"{BASE}/status/service", 1), (f"{BASE}/state/summary", 1)])
            w.connect("127.0.0.1", broker.port)
            w.loop_start()
            assert up.wait(20), "service did not start"
            devices = [GoodDevice(broker.port, role, dev, stop) for role, dev in GOOD]
            bad = paho.Client(CallbackAPIVersion.VERSION2, client_id="fuzz-bad", protocol=paho.MQTTv5)
            bad.max_queued_messages_set(0)
            bad.connect("127.0.0.1", broker.port)
            bad.loop_start()
            for dev in devices:
                dev.start()
            mut, kinds = Mutator(seed, huge), {}
            # a small run's payloads are made first (the generator shares the machine); a
            # large one's as it goes (100,000 of them, 1 MB strings included, do not fit)
            ready = [mut.one() for _ in range(payloads)] if payloads <= PREMADE else None
            t0 = time.perf_counter()
            for i in range(payloads):
                topic, payload, retain, kind = ready[i] if ready else mut.one()
                kinds[kind] = kinds.get(kind, 0) + 1
                bad.publish(topic, payload, qos=0, retain=retain)
                ahead = t0 + (i + 1) / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            elapsed = time.perf_counter() - t0
            stop.set()
            for dev in devices:
                dev.join(5)
            # the flood has been read by the service once a good command after it is answered
            alive = svc.poll() is None
            time.sleep(1.2)             # the summary's bad-message figures go out once a second
            left_retained = retained_commands(broker.port)
            bad.disconnect()
            bad.loop_stop()
            w.disconnect()
            w.loop_stop()
        finally:
            stop.set()
            for dev in devices:
                dev.close()
            if svc.poll() is None:
                svc.terminate()
            _, err = svc.communicate(timeout=10)
            broker.stop()
        with sqlite3.connect(db) as conn:
            events = [(t, json.loads(data)) for t, data in conn.execute("SELECT type, data FROM events ORDER BY seq")]
            dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    lat = sorted(x for dev in devices for x in dev.lat)
    issued_ok = {a["result"]["ticket"]["ticket_id"] for dev in devices if dev.role != "counter"
                 for a in dev.acks if a["ok"]}
    called_ok = {a["result"]["ticket"]["ticket_id"] for dev in devices if dev.role == "counter"
                 for a in dev.acks if a["ok"] and a["result"]["ticket"]}
    issued_log = {e["ticket_id"] for t, e in events if t == "ticket.issued"}
    called_log = {e["ticket_id"] for t, e in events if t == "ticket.called"}
    done_log = [e["ticket_id"] for t, e in events if t == "ticket.done"]
    # a good request over a service's daily cap is refused, and that refusal is logged
    refused_ok = sum(1 for dev in devices if dev.role != "counter" for a in dev.acks
                     if not a["ok"] and a["error"] == "daily_cap")
    refused_log = [e["dev"] for t, e in events if t == "ticket.refused"]
    other = [t for t, _ in events if t not in ("ticket.issued", "ticket.called", "ticket.done", "ticket.refused")]
    return {
        "payloads": payloads, "rate_per_s": round(payloads / elapsed), "kinds": kinds,
        "service_alive": alive, "service_tracebacks": err.decode(errors="replace").count("Traceback"),
        "dead_letters": dead,
        "good_ops": len(lat), "good_max_latency_s": round(lat[-1], 3) if lat else None,
        "good_p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)] * 1000, 1) if lat else None,
        "good_median_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
        "good_tickets": len(issued_ok), "good_calls": len(called_ok), "good_refused_daily_cap": refused_ok,
        "state_changes_from_bad": (len(issued_log ^ issued_ok) + len(called_log ^ called_ok) + len(other)
                                   + len(set(done_log) - called_ok) + max(0, len(done_log) - len(called_ok))
                                   + abs(len(refused_log) - refused_ok)
                                   + sum(1 for d in refused_log if d not in {d for _, d in GOOD})),
        "retained_commands_left": left_retained,
        "bad_messages_in_summary": sum(c["invalid"] + c["refused"] for c in summary.get("bad_messages", {}).values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--payloads", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=1000.0, help="bad payloads per second")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = run_fuzz(a.payloads, a.rate, a.seed)
    print(json.dumps(out) if a.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
