"""A read-only copy of the service's queue, built from its event log.

The queue core is deterministic: replaying the day's events through `apply` gives the
service's exact state (that is how the service itself restarts). So the web process
opens the service's SQLite log read-only, replays today, then follows new rows. It never
writes there and never touches the service's objects; pages keep working while kiosks
or even the broker are down, and a flood of page views cannot slow the service's loop.

Readers take `lock` around every look at `core`; the follower holds it only while it
applies new events. `changed` is notified after each batch, with `version` bumped, so
live pages wake at once.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from qms.config.site import SiteConfig
from qms.core.queue import QueueCore
from qms.protocol.messages import AnyEvent

log = logging.getLogger("qms.web.replica")
_dec = msgspec.json.Decoder(AnyEvent)


class Replica:
    def __init__(self, cfg: SiteConfig, db_path: str | Path, clock: Callable[[], int],
                 interval_s: float = 0.1):
        self.cfg = cfg
        self.db_path = Path(db_path)
        self.clock = clock
        self.interval_s = interval_s
        self.core = QueueCore(cfg)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.last_seq = 0
        self.notice: bytes | None = None
        self._conn: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ reading the log
    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.db_path.exists():
                return None          # the service has not started yet: an empty queue
            self._conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True,
                                         check_same_thread=False, isolation_level=None)
        return self._conn

    def _rows(self, conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
        """New rows since last_seq; on the first read, only today's (in one snapshot)."""
        if self.last_seq == 0:
            day = self.core.day_of(self.clock())
            conn.execute("BEGIN")
            try:
                first = conn.execute("SELECT min(seq) FROM events WHERE day = ?",
                                     (day,)).fetchone()[0]
                if first is None:
                    self.last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                    return []
                return conn.execute("SELECT seq, data FROM events WHERE seq >= ? ORDER BY seq",
                                    (first,)).fetchall()
            finally:
                conn.execute("COMMIT")
        return conn.execute("SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT 5000",
                            (self.last_seq,)).fetchall()

    def poll(self) -> int:
        """Apply what the service committed since the last call. Returns how many events."""
        conn = self._connect()
        now = self.clock()
        rows = self._rows(conn) if conn is not None else []
        notice = conn.execute("SELECT value FROM kv WHERE key = 'notice'").fetchone() if conn else None
        notice = notice[0] if notice else None
        with self.changed:
            rolled = self.core.roll(now)
            for seq, data in rows:
                self.core.apply(_dec.decode(data))
                self.last_seq = max(self.last_seq, seq)
            if rows or rolled or notice != self.notice:
                self.notice = notice
                self.version += 1
                self.changed.notify_all()
        return len(rows)

    # ------------------------------------------------------------ follower thread
    def start(self) -> Replica:
        self._safe_poll()
        self._thread = threading.Thread(target=self._run, name="web-replica", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        with self.changed:
            self.changed.notify_all()
        if self._conn is not None:
            self._conn.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self._safe_poll():
                time.sleep(1)

    def _safe_poll(self) -> bool:
        try:
            self.poll()
            return True
        except sqlite3.Error as e:          # not created yet, locked or replaced: try again
            log.warning("reading the event log %s failed (%s); retrying", self.db_path, e)
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return False

    def touch(self) -> None:
        """Something else a live page shows has changed (the city's answer): wake the pages."""
        with self.changed:
            self.version += 1
            self.changed.notify_all()

    def wait_change(self, seen: int, timeout: float) -> int:
        """Block until `version` differs from `seen` (or timeout). Returns the version."""
        with self.changed:
            if self.version == seen and not self._stop.is_set():
                self.changed.wait(timeout)
            return self.version
