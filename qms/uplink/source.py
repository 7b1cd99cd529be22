"""Reading a point's own event log (qms/service/store.py) from seq N on, read-only.

The uplink is a separate process: it opens the service's SQLite file with its own
read-only connection (WAL: it never blocks the service's writes) and leaves the
service's code and schema alone.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from qms.uplink.wire import EventRow


class LogMissing(Exception):
    """The service has not created its log yet (or the path is wrong)."""


class LogReader:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.conn: sqlite3.Connection | None = None
        self._version: int | None = None

    def _connect(self) -> sqlite3.Connection:
        if self.conn is None:
            if not self.path.is_file():
                raise LogMissing(f"{self.path}: no event log yet (is `qms service` running here?)")
            self.conn = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True,
                                        isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA query_only=ON")
        return self.conn

    def changed(self) -> bool:
        """Whether the service committed anything since the last call (SQLite's
        data_version: a much cheaper look than the query, for a log polled 5 times a second)."""
        v = self._connect().execute("PRAGMA data_version").fetchone()[0]
        changed, self._version = v != self._version, v
        return changed

    def after(self, seq: int, limit: int) -> list[EventRow]:
        """Up to `limit` events with seq > `seq`, in seq order."""
        rows = self._connect().execute(
            "SELECT seq, day, at, type, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [(s, d, a, t, msgspec.Raw(x if isinstance(x, bytes) else str(x).encode())) for s, d, a, t, x in rows]

    def data_of(self, seq: int) -> bytes | None:
        row = self._connect().execute("SELECT data FROM events WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else (row[0] if isinstance(row[0], bytes) else str(row[0]).encode())

    def last_seq(self) -> int:
        return self._connect().execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    def days_events(self, since_day: str, until_day: str) -> list[bytes]:
        return [x for (x,) in self._connect().execute(
            "SELECT data FROM events WHERE day BETWEEN ? AND ? ORDER BY seq", (since_day, until_day))]

    def day_events(self, day: str, upto: int) -> list[bytes]:
        return [x for (x,) in self._connect().execute(
            "SELECT data FROM events WHERE day = ? AND seq <= ? ORDER BY seq", (day, upto))]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            self._version = None
