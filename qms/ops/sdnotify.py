"""sd_notify without dependencies: tell systemd we are ready, alive, or stopping.

Units run with `Type=notify` and `WatchdogSec=`: systemd starts the next unit only after
READY=1, and restarts a process whose main loop stops sending WATCHDOG=1. The heartbeat
must come from the main loop itself (not a helper thread), so a hung loop is restarted
while a busy one that still iterates is not.

Protocol (sd_notify(3)): newline-separated KEY=VALUE lines in one datagram to the unix
socket named by $NOTIFY_SOCKET ("@name" = abstract namespace). Outside systemd (tests,
a developer's shell) NOTIFY_SOCKET is unset and every call is a cheap no-op.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import time

log = logging.getLogger("qms.sdnotify")


def _address(raw: str) -> str | bytes:
    # "@foo" is Linux's abstract namespace: a leading NUL byte on the wire
    return "\0" + raw[1:] if raw.startswith("@") else raw


def notify(message: str, environ: dict | None = None) -> bool:
    """Send one notification; False if not under systemd or the send failed.

    Never raises: a missing or broken notify socket must not take a kiosk down.
    """
    env = os.environ if environ is None else environ
    raw = env.get("NOTIFY_SOCKET")
    if not raw:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(message.encode("utf-8"), _address(raw))
        return True
    except OSError as e:
        log.warning("sd_notify to %s failed: %s", raw, e)
        return False


def watchdog_interval(environ: dict | None = None) -> float:
    """Seconds between heartbeats: a third of WatchdogSec (0 = no watchdog).

    WATCHDOG_PID, when set, names the process the watchdog is for; a child process that
    inherited the variables must not beat for its parent.
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", "0") or 0)
    except ValueError:
        return 0.0
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return 0.0
    return usec / 3e6


class Heartbeat:
    """The main loop's link to systemd: `ready()` once, `beat()` every iteration.

    `beat()` is rate-limited to a third of WatchdogSec, so calling it from a 60 fps loop
    costs one clock read per frame.
    """

    def __init__(self, environ: dict | None = None, clock=time.monotonic):
        self.environ = dict(os.environ if environ is None else environ)
        self.enabled = bool(self.environ.get("NOTIFY_SOCKET"))
        self.interval = watchdog_interval(self.environ)
        self.clock = clock
        self._last = float("-inf")
        self.sent = 0          # heartbeats actually sent (for tests and status pages)

    def _send(self, *lines: str) -> bool:
        if not self.enabled:
            return False
        return notify("\n".join(lines), self.environ)

    def ready(self, status: str = "") -> bool:
        lines = ["READY=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
        ok = self._send(*lines)
        self._last = self.clock()      # READY also resets systemd's watchdog timer
        return ok

    def status(self, text: str) -> bool:
        """Free-form text shown by `systemctl status`."""
        return self._send(f"STATUS={_one_line(text)}")

    def due(self) -> bool:
        """Whether `beat()` would send now (to check health only when it counts)."""
        return bool(self.interval) and self.clock() - self._last >= self.interval

    def beat(self) -> bool:
        """Call once per main-loop iteration. True if a heartbeat went out now."""
        if not self.interval:
            return False
        now = self.clock()
        if now - self._last < self.interval:
            return False
        self._last = now
        if self._send("WATCHDOG=1"):
            self.sent += 1
            return True
        return False

    def stopping(self, status: str = "") -> bool:
        lines = ["STOPPING=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
        return self._send(*lines)


def stop_on_sigterm(stop) -> None:
    """Call `stop()` on SIGTERM, systemd's stop signal (call from the main thread).

    Python's default for SIGTERM ends the process at once, without `finally` blocks: no
    last-will-free disconnect, outboxes and screens left as they were. `stop` should only
    ask the main loop to end (set a flag); the loop's own `finally` then cleans up.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: stop())


def _one_line(text: str) -> str:
    # a newline would start a new KEY=VALUE line and could forge e.g. READY=1
    return " ".join(str(text).split())
