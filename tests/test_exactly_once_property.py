"""Property: whatever happens on the way — drops, duplicates, reorders, retained publishes,
replays of a handled id under a new seq, junk published as retained, service restarts
including kill -9 — a device that re-sends what is unacknowledged, in seq order, ends with
an event log equal to its command stream applied once, in seq order; and every answer to a
given id is the same answer. From outside: the service is its own process (`qms service`),
the device is raw paho (tests/support/rawdev.py)."""
from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.rawdev import SITE, RawDevice, retained_on
from support.site import make_config

ROOT = Path(__file__).resolve().parent.parent
STATUS = f"qms/v1/{SITE}/status/service"
_runs = itertools.count()


class ServiceProcess:
    def __init__(self, cfg: Path, db: Path, watcher: RawDevice):
        self.cfg, self.db, self.watcher = cfg, db, watcher
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        since = int(time.time() * 1000)
        self.proc = subprocess.Popen([sys.executable, "-m", "qms", "service", "--config", str(self.cfg),
                                      "--db", str(self.db)], cwd=ROOT,
                                     env=dict(os.environ, QMS_LOG="ERROR"))
        # its status is published right after its SUBSCRIBE, on the same connection: once
        # the status is seen, the broker has its subscription
        assert self.watcher.wait_for(lambda: (s := self.watcher.latest(STATUS)) is not None
                                     and s.get("online") and s.get("ts", 0) >= since, 20), "service not up"

    def stop(self, kill: bool) -> None:
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.proc.wait(10)


step = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 9)),
    st.tuples(st.just("send"), st.integers(0, 9)),
    st.tuples(st.just("send"), st.integers(0, 9)),
    st.tuples(st.just("replay_new_seq"), st.integers(0, 9)),
    st.tuples(st.just("retained_copy"), st.integers(0, 9)),
    st.tuples(st.just("retained_junk"), st.just(0)),
    st.tuples(st.just("restart"), st.booleans()),      # True: kill -9
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(3, 10), steps=st.lists(step, max_size=24)
       .filter(lambda s: sum(1 for a, _ in s if a == "restart") <= 2))
def test_a_command_stream_is_applied_once_in_seq_order_whatever_happens(broker, tmp_path, n, steps):
    run = next(_runs)
    work = tmp_path / f"run{run}"
    work.mkdir()
    cfg = make_config(work, broker.port)
    device = RawDevice(broker.port, "kiosk-1", "kiosk", STATUS)
    svc = ServiceProcess(cfg, work / "service.sqlite", device)
    stream = [device.body("ticket.request", seq=i + 1, msg_id=f"r{run}-cmd-{i:04d}", service="ho-tich",
                          ticket_id=f"r{run}-ticket-{i:04d}") for i in range(n)]
    junk: list[str] = []
    svc.start()
    try:
        for action, arg in steps:
            cmd = stream[arg % n]
            if action == "send":
                device.send(cmd)
            elif action == "replay_new_seq" and cmd["id"] in device.acks:
                device.send(dict(cmd, seq=n + 100 + len(device.messages)))
            elif action == "retained_copy" and cmd["id"] in device.acks:
                device.send(cmd, retain=True)
            elif action == "retained_junk":
                j = device.body("ticket.request", seq=1, msg_id=f"r{run}-junk-{len(junk):04d}", service="ho-tich")
                junk.append(j["id"])
                device.send(j, retain=True)
            elif action == "restart":
                svc.stop(kill=arg)
                svc.start()
        # the device's outbox: re-send what is unacknowledged, in seq order, until all is
        deadline = time.monotonic() + 30
        while not all(c["id"] in device.acks for c in stream):
            assert time.monotonic() < deadline, "commands never acknowledged"
            for c in stream:
                if c["id"] not in device.acks:
                    device.send(c)
            device.wait_for(lambda: all(c["id"] in device.acks for c in stream), 0.5)
        assert retained_on(broker.port, device.topic) == []       # no command stays on the broker
    finally:
        svc.stop(kill=False)
        device.close()
    with sqlite3.connect(work / "service.sqlite") as db:
        log = [(t, json.loads(d)) for t, d in db.execute("SELECT type, data FROM events ORDER BY seq")]
    assert [t for t, _ in log] == ["ticket.issued"] * n
    assert [e["ticket_id"] for _, e in log] == [c["ticket_id"] for c in stream]
    assert [e["number"] for _, e in log] == list(range(2001, 2001 + n))
    for c in stream:                                 # one answer per id, however often asked
        answers = device.acks[c["id"]]
        assert all(a == answers[0] for a in answers) and answers[0]["ok"], answers
    for j in junk:                                   # junk was refused, if it was seen at all
        assert all(a["error"] == "retained" for a in device.acks.get(j, []))
