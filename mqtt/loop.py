"""`CallerLoop`: paho's network loop run by its owner's thread instead of paho's own.

For a process whose main loop does the work on every message (the central service), a
network thread only adds cost: each message crosses threads (a queue, a wake-up, a GIL
hand-over) and paho's thread writes every outgoing packet with its own `send`. Here the
owner calls `poll()`; incoming messages reach `on_message` on the owner's thread, and a
burst of publishes leaves in as few TCP segments as the kernel can make of it
(`TCP_CORK` while the burst is written).

This is paho's documented external-loop interface (`socket`, `want_write`, `loop_read`,
`loop_write`, `loop_misc`, `reconnect`). paho is not safe for publishing from two threads
without its own loop thread (two writers could interleave a partial packet), so in this
mode only the owner's thread may publish; other threads hand work back and call `wake()`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import socket
import time

import paho.mqtt.client as paho

log = logging.getLogger("qms.mqtt")

_CORK = getattr(socket, "TCP_CORK", None)      # Linux; elsewhere bursts go out as they are


class CallerLoop:
    def __init__(self, client: paho.Client, min_delay: float = 1.0, max_delay: float = 16.0):
        self.client = client
        self.min_delay, self.max_delay = min_delay, max_delay
        self._delay = 0.0               # before the first attempt: none
        self._next_attempt = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._corked = False

    def wake(self) -> None:
        """Make a `poll()` in progress (or the next one) return at once; any thread."""
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:         # already full of wake-ups: the loop will notice
            pass

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` for traffic or a wake-up; read, write, keep the link alive.
        What this turn writes (the PUBACKs of what it read) leaves as one burst."""
        c = self.client
        sock = c.socket()
        if sock is None:
            self._try_connect(timeout)
            return
        wlist = [sock] if c.want_write() else []
        if _buffered(sock):             # read from the kernel already: don't wait for more
            timeout = 0.0
        try:
            readable, _, _ = select.select([sock, self._wake_r], wlist, [], timeout)
        except (OSError, ValueError):   # the socket was closed under us: reconnect next turn
            return
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
        with self.burst():
            if (sock in readable or _buffered(sock)) and c.loop_read() == paho.MQTT_ERR_SUCCESS:
                # paho reads only a few packets per call: drain what has arrived
                for _ in range(256):
                    if not _pending(c.socket()) or c.loop_read() != paho.MQTT_ERR_SUCCESS:
                        break
            if c.socket() is not None and c.want_write():
                c.loop_write()
        if c.socket() is not None:
            c.loop_misc()

    @contextlib.contextmanager
    def burst(self):
        """Publishes inside leave together: the socket is corked until the end."""
        sock = self.client.socket()
        if _CORK is None or sock is None or self._corked:
            yield
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
        except OSError:
            yield
            return
        self._corked = True
        try:
            yield
        finally:
            self._corked = False
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _CORK, 0)

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _try_connect(self, timeout: float) -> None:
        now = time.monotonic()
        if now < self._next_attempt:
            wait = min(timeout, self._next_attempt - now)
            with contextlib.suppress(OSError, ValueError):
                if select.select([self._wake_r], [], [], wait)[0]:
                    os.read(self._wake_r, 4096)
            return
        # jittered back-off; it restarts only once the broker accepted us (`connected`), so
        # a broker that takes the TCP connection and then refuses is not hammered either
        self._delay = min(self.max_delay, max(self.min_delay, self._delay * 2))
        self._next_attempt = now + self._delay * (0.5 + random.random() / 2)
        try:
            self.client.reconnect()
        except (OSError, ValueError) as e:
            log.debug("broker not reachable (%s); next try in %.1f s", e, self._next_attempt - now)

    def connected(self) -> None:
        """The broker accepted the connection: the next reconnect may come at once."""
        self._delay = 0.0


def _pending(sock) -> bool:
    """Bytes of a packet already read from the kernel (BufferedSocket, TLS) or waiting in it."""
    if sock is None:
        return False
    if _buffered(sock):
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _buffered(sock) -> int:
    pending = getattr(sock, "pending", None)
    return pending() if pending else 0


class BufferedSocket:
    """paho reads a packet with one `recv` for its first byte, one per length byte and one
    for the rest: three system calls or more per packet. This reads what the kernel has
    in one call and serves paho's small reads from memory; `pending()` (which paho
    already asks of TLS sockets) tells its loop that buffered bytes are left."""

    def __init__(self, sock):
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            self._buf, self._pos = self._sock.recv(max(n, 65536)), 0   # raises BlockingIOError
            if not self._buf:
                return b""                  # closed by the broker
        out = self._buf[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner else 0)

    def send(self, data, *flags) -> int:      # the hot ones, without __getattr__
        return self._sock.send(data, *flags)

    def fileno(self) -> int:
        return self._sock.fileno()

    def setsockopt(self, *args) -> None:
        self._sock.setsockopt(*args)

    def __getattr__(self, name):
        return getattr(self._sock, name)
