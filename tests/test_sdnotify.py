"""sd_notify helper against a real unix datagram socket, the way systemd listens."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from qms.ops.sdnotify import Heartbeat, notify, watchdog_interval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(2)
    yield str(path), s
    s.close()


def received(sock, timeout=2.0) -> list[str]:
    out = []
    sock.settimeout(timeout)
    try:
        while True:
            out.append(sock.recv(4096).decode())
            sock.settimeout(0.05)
    except TimeoutError:
        return out


def test_ready_status_stopping_reach_the_socket(notify_socket):
    path, sock = notify_socket
    hb = Heartbeat({"NOTIFY_SOCKET": path})
    assert hb.ready("serving site phuong-an-khanh\nREADY=1")
    assert hb.status("12 đang chờ")
    assert hb.stopping("bye")
    msgs = received(sock)
    # the newline in the status text must not forge a second line
    assert msgs == ["READY=1\nSTATUS=serving site phuong-an-khanh READY=1",
                    "STATUS=12 đang chờ", "STOPPING=1\nSTATUS=bye"]


def test_abstract_namespace_socket():
    name = f"qms-test-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    try:
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert received(s) == ["WATCHDOG=1"]
    finally:
        s.close()


def test_heartbeat_rate_limited_to_a_third_of_watchdog(notify_socket):
    path, sock = notify_socket
    now = [100.0]
    hb = Heartbeat({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"}, clock=lambda: now[0])
    assert hb.interval == pytest.approx(1.0)
    hb.ready()
    sent = []
    for _ in range(50):             # a 10 Hz loop for 5 s
        now[0] += 0.1
        sent.append(hb.beat())
    assert sum(sent) == 4           # at 1.0, 2.0, 3.0, 4.0 s (float steps land just past 5.0)
    assert received(sock) == ["READY=1"] + ["WATCHDOG=1"] * 4


def test_no_op_outside_systemd():
    hb = Heartbeat({})
    assert not hb.ready("x") and not hb.beat() and not hb.stopping()
    assert watchdog_interval({"WATCHDOG_USEC": "nonsense"}) == 0.0


def test_watchdog_for_another_pid_is_ignored(notify_socket):
    path, _ = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert watchdog_interval(env) == 0.0
    env["WATCHDOG_PID"] = str(os.getpid())
    assert watchdog_interval(env) == pytest.approx(0.1)


def test_vanished_socket_does_not_raise(tmp_path):
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


def test_child_process_main_loop_beats_until_it_hangs(notify_socket):
    """What systemd sees from a real process: READY, steady heartbeats, then silence
    when the main loop hangs (that silence is what makes systemd restart it)."""
    path, sock = notify_socket
    code = textwrap.dedent("""
        import time
        from qms.ops.sdnotify import Heartbeat
        hb = Heartbeat()
        hb.ready("up")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:     # healthy loop
            hb.beat(); time.sleep(0.01)
        time.sleep(1.0)                         # hung: no beats
    """)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="300000", PYTHONPATH=ROOT)
    env.pop("WATCHDOG_PID", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    stamps = []
    sock.settimeout(3)
    try:
        while True:
            msg = sock.recv(4096).decode()
            stamps.append((time.monotonic() - t0, msg))
            sock.settimeout(0.9)
    except TimeoutError:
        pass
    proc.wait(5)
    assert stamps[0][1] == "READY=1\nSTATUS=up"
    beats = [t for t, m in stamps if m == "WATCHDOG=1"]
    assert 4 <= len(beats) <= 7                  # every 0.1 s for 0.6 s
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert all(g < 0.3 for g in gaps)            # never late enough to trip a 0.3 s watchdog
    assert proc.returncode == 0
