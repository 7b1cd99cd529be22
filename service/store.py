"""The service's durable state: an append-only event log and the ids of handled commands.

Both are written in one transaction, so a command's effect and the record that it was
handled cannot be separated by a crash (exactly-once). SQLite in WAL mode with
synchronous=FULL: a commit survives kill -9 and power loss. Commands arriving together
are committed together (group commit), which is what makes durable writes fast.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import msgspec

from mqtt.messages import AnyEvent, Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_day ON events(day);
CREATE TABLE IF NOT EXISTS handled (
    id TEXT PRIMARY KEY,
    dev TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    ack BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS handled_dev_seq ON handled(dev, seq);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(AnyEvent)


class EventStore:
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)
        self._last_seq = self.conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        self._in_tx = False

    # ------------------------------------------------------------ writing
    def begin(self) -> None:
        if not self._in_tx:
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def append(self, day: str, e: Event) -> int:
        self.begin()
        self._last_seq += 1
        e.seq = self._last_seq
        self.conn.execute("INSERT INTO events(seq, day, at, type, data) VALUES (?,?,?,?,?)",
                          (e.seq, day, e.at, e.__struct_config__.tag, _enc.encode(e)))
        return e.seq

    def mark_handled(self, msg_id: str, dev: str, seq: int, at: int, ack: bytes) -> None:
        self.begin()
        self.conn.execute("INSERT INTO handled(id, dev, seq, at, ack) VALUES (?,?,?,?,?)",
                          (msg_id, dev, seq, at, ack))

    def put(self, key: str, value: bytes) -> None:
        self.begin()
        self.conn.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))

    def get(self, key: str) -> bytes | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def commit(self) -> None:
        if self._in_tx:
            self.conn.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self.conn.execute("ROLLBACK")
            self._in_tx = False
            self._last_seq = self.conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    # ------------------------------------------------------------ reading
    def last_seqs(self) -> dict[str, int]:
        """The newest seq handled per device (of the latest sequence, after a reset)."""
        rows = self.conn.execute(
            "SELECT dev, seq FROM handled WHERE rowid IN (SELECT max(rowid) FROM handled GROUP BY dev)")
        return {dev: seq for dev, seq in rows}

    def handled_ack(self, msg_id: str) -> bytes | None:
        row = self.conn.execute("SELECT ack FROM handled WHERE id = ?", (msg_id,)).fetchone()
        return row[0] if row else None

    def events(self, day: str | None = None, since_day: str | None = None,
               until_day: str | None = None) -> Iterator[Event]:
        q, args = "SELECT data FROM events", []
        where = []
        if day is not None:
            where.append("day = ?")
            args.append(day)
        if since_day is not None:
            where.append("day >= ?")
            args.append(since_day)
        if until_day is not None:
            where.append("day <= ?")
            args.append(until_day)
        if where:
            q += " WHERE " + " AND ".join(where)
        for (data,) in self.conn.execute(q + " ORDER BY seq", args):
            yield _dec.decode(data)

    def close(self) -> None:
        self.commit()
        self.conn.close()
