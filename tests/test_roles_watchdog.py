"""Every role under systemd's eyes: READY=1 once, WATCHDOG=1 from its main loop, and a
clean exit (code 0, `finally` blocks run) on SIGTERM, systemd's stop signal.

Each role runs as a real subprocess (`python -m qms ROLE ...`) against a real
Mosquitto, with NOTIFY_SOCKET pointing at a datagram socket of this test (abstract
namespace, as systemd may use) and WATCHDOG_USEC set as systemd sets it for WatchdogSec=.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from support.site import ROOT, free_port
from support.unit_sandbox import NotifyListener

WATCHDOG_USEC = 300_000          # heartbeats every 0.1 s (a third of it)


def role_command(role: str, config: str) -> tuple[list[str], dict]:
    """The role's command line with simulated hardware, and extra environment."""
    base = [sys.executable, "-m", "qms", role, "--config", config]
    return {
        "service": (base, {}),
        "kiosk": (base + ["--device", "kiosk-1", "--headless", "--printer", "memory"], {}),
        "display": (base + ["--headless", "--no-voice"], {}),
        # the GPIO keys and lights on gpiozero's mock pins, the number board simulated
        "counter": (base + ["--device", "counter-1"], {"GPIOZERO_PIN_FACTORY": "mock"}),
        "web": (base + ["--port", str(free_port()), "--bind", "127.0.0.1"], {}),
    }[role]



@pytest.mark.parametrize("role", ["service", "kiosk", "display", "counter", "web"])
def test_role_says_ready_beats_and_stops_cleanly_on_sigterm(role, site_config, tmp_path):
    listener = NotifyListener()
    cmd, extra = role_command(role, str(site_config))
    env = {**os.environ, "NOTIFY_SOCKET": listener.name, "WATCHDOG_USEC": str(WATCHDOG_USEC),
           "PYTHONPATH": str(ROOT), "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", **extra}
    env.pop("WATCHDOG_PID", None)
    log = (tmp_path / f"{role}.log").open("w+")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        assert listener.wait_for("READY=1"), f"{role}: no READY=1; output:\n{_output(log)}"
        assert listener.wait_for("WATCHDOG=1", count=3, timeout=10), \
            f"{role}: no heartbeats; got {listener.messages}; output:\n{_output(log)}"
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
    out = _output(log)
    assert rc == 0, f"{role} exited with {rc} after SIGTERM:\n{out}"
    assert took < 6, f"{role} took {took:.1f} s to stop"
    assert listener.count("READY=1") == 1
    assert "Traceback" not in out, out


def _output(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-4000:]


def test_web_beats_only_while_its_http_server_answers(site_config, tmp_path, site_clock, monkeypatch):
    """A wedged HTTP server (here: its serve loop stopped, the socket still open) stops the
    heartbeats, so systemd restarts `qms web`; serving again brings them back."""
    import threading

    from qms.config.site import load_config
    from qms.web.server import WebApp
    listener = NotifyListener()
    monkeypatch.setenv("NOTIFY_SOCKET", listener.name)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = load_config(site_config)
    cfg.web.alert_check_seconds = 0.2
    app = WebApp(cfg, tmp_path / "service.sqlite", clock=site_clock, bookings_path=tmp_path / "w.sqlite",
                 bind="127.0.0.1", port=0, mqtt=False).start()
    try:
        assert listener.wait_for("WATCHDOG=1", count=2, timeout=10), listener.messages
        app.server.shutdown()                        # no thread serves; connections queue unanswered
        def probes_failed(n: int) -> bool:         # barrier: the watchdog loop probed and failed
            deadline = time.monotonic() + 20
            while app.http_probe_failures < n and time.monotonic() < deadline:
                time.sleep(0.05)
            return app.http_probe_failures >= n
        assert probes_failed(1)
        wedged = app.heartbeat.sent
        assert probes_failed(3)
        assert app.heartbeat.sent == wedged         # two rounds later: still no heartbeat
        threading.Thread(target=app.server.serve_forever, daemon=True).start()
        deadline = time.monotonic() + 10
        while app.heartbeat.sent == wedged and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.heartbeat.sent > wedged
    finally:
        app.stop()
        listener.close()
