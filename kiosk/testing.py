"""Driving the kiosk by synthetic touches, for the tests and the benchmark.

A touch is a real SDL event (MOUSEBUTTONDOWN or FINGERDOWN) posted to pygame's queue
and handled by `KioskApp.step()`, exactly like a finger on the panel.
"""
from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty

import pygame


def target(app, action: tuple) -> pygame.Rect:
    """The on-screen rect of the touch target doing `action` (the smallest one, if several)."""
    app.render()
    rects = [r for r, a in app.hits if a == action]
    if not rects:
        raise LookupError(f"no {action} on screen {app.view.screen!r}: {[a for _, a in app.hits]}")
    return min(rects, key=lambda r: r.width * r.height)


def tap(app, action: tuple, finger: bool = False) -> None:
    """Touch the centre of the target for `action` and let the app handle it."""
    x, y = target(app, action).center
    post_touch(app, (x, y), finger)
    app.step()


def post_touch(app, pos: tuple[int, int], finger: bool = False) -> None:
    if finger:
        w, h = app.surface.get_size()
        ev = pygame.event.Event(pygame.FINGERDOWN, x=pos[0] / w, y=pos[1] / h, touch_id=1, finger_id=0,
                                dx=0.0, dy=0.0, pressure=1.0)
    else:
        ev = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1)
    pygame.event.post(ev)


class PtyReader:
    """The far end of a pty: takes what python-escpos sends, like a printer would, and
    notes when each burst of bytes began (for touch-to-first-byte timing)."""

    def __init__(self):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)          # raw both ways: no echo, no newline translation
        self.path = os.ttyname(self.slave)
        self.data = bytearray()
        self.first_byte_at: list[float] = []      # perf_counter of the first byte after each mark()
        self._armed = False
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def mark(self, quiet_s: float = 0.02) -> None:
        """The next byte starts a new ticket (once the last one's bytes have all arrived)."""
        seen = -1
        while True:
            with self.lock:
                if len(self.data) == seen:
                    self._armed = True
                    return
                seen = len(self.data)
            time.sleep(quiet_s)

    def _read(self) -> None:
        while not self._stop:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            now = time.perf_counter()
            with self.lock:
                if self._armed:
                    self.first_byte_at.append(now)
                    self._armed = False
                self.data += chunk

    def wait_for(self, needle: bytes, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if needle in self.data:
                    return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        self._stop = True
        self.thread.join(1)
        os.close(self.master)
        os.close(self.slave)
