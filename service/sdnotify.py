"""Minimal sd_notify (placeholder until the deploy branch lands its full version)."""
import os
import socket
import time


class Heartbeat:
    def __init__(self) -> None:
        self.addr = os.environ.get("NOTIFY_SOCKET")
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self.interval = usec / 3e6 if usec else 0
        self._last = 0.0

    def _send(self, msg: str) -> None:
        if not self.addr:
            return
        addr = "\0" + self.addr[1:] if self.addr.startswith("@") else self.addr
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(msg.encode(), addr)

    def ready(self, status: str = "") -> None:
        self._send("READY=1\nSTATUS=" + status)

    def beat(self) -> None:
        now = time.monotonic()
        if self.interval and now - self._last >= self.interval:
            self._last = now
            self._send("WATCHDOG=1")
