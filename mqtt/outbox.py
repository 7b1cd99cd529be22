"""A device's durable outbox: commands are written here before they are sent.

A row leaves the outbox only when the service acknowledges its id at application
level (a PUBACK proves nothing: brokers drop queues and lose them on kill -9). SQLite
in WAL mode with synchronous=FULL, so a command survives power loss once `add`
returned. The message envelope and `cmd.void` are built by `qms.firmware.protocol`, the
same code the counter box's outbox uses (docs/firmware.md, "One state machine, two adapters"). Callers that keep their own records (the kiosk's tickets) pass their
writes in the same transaction via `add(..., extra=...)`.
"""
from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec

# the envelope and the withdrawal rule are the counter box's (MicroPython-safe) ones
from qms.firmware.protocol import envelope, voided

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def new_id() -> str:
    """A message or ticket id: 128 random bits, URL-safe, unguessable."""
    return uuid.uuid4().hex


def connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class Outbox:
    def __init__(self, path: str | Path, device: str, conn: sqlite3.Connection | None = None):
        self.device = device
        self.conn = conn or connect(path)
        self.lock = threading.RLock()
        with self.lock:
            self.conn.executescript(_SCHEMA)
            row = self.conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
            last = self.conn.execute("SELECT max(seq) FROM outbox").fetchone()[0] or 0
            self._seq = max(row[0] if row else 0, last)

    def add(self, topic: str, type_: str, fields: dict,
            extra: Callable[[sqlite3.Connection], None] | None = None,
            msg_id: str | None = None, ts: int | None = None) -> dict:
        """Store a command (and the caller's `extra` writes) in one durable transaction."""
        with self.lock:
            seq = self._seq + 1
            msg = envelope(type_, msg_id or new_id(), self.device, seq,
                           ts if ts is not None else int(time.time() * 1000), fields)
            payload = msgspec.json.encode(msg)
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute("INSERT INTO outbox(seq, id, topic, payload, created) VALUES (?,?,?,?,?)",
                                  (seq, msg["id"], topic, payload, msg["ts"]))
                self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('seq', ?)", (seq,))
                if extra is not None:
                    extra(self.conn)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self._seq = seq
            return msg

    def void(self, msg_id: str) -> bool:
        """Withdraw a command that must not take effect any more (a call left unanswered):
        it becomes a `cmd.void` with the same id and seq, which the service records
        without effect; the original is then ignored if it still arrives."""
        with self.lock:
            row = self.conn.execute("SELECT payload FROM outbox WHERE id = ?", (msg_id,)).fetchone()
            if row is None:
                return False
            void = voided(msgspec.json.decode(row[0]))
            self.conn.execute("UPDATE outbox SET payload = ? WHERE id = ?", (msgspec.json.encode(void), msg_id))
            return True

    def pending(self, limit: int = 1000, after_seq: int = 0) -> list[tuple[int, str, str, bytes]]:
        with self.lock:
            return self.conn.execute(
                "SELECT seq, id, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit)).fetchall()

    def ack(self, msg_id: str) -> bool:
        with self.lock:
            cur = self.conn.execute("DELETE FROM outbox WHERE id = ?", (msg_id,))
            return cur.rowcount > 0

    def count(self) -> int:
        with self.lock:
            return self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self.conn.close()
