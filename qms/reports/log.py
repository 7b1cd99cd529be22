"""Reading a point's event log for a report: read-only, fast, tolerant of unknown events.

A report must never change the log it reads, so the database is opened read-only. All the
rows of the requested days are decoded in one msgspec call into `Row`, a flat struct
holding every field any event may carry (unknown fields are ignored), which is about ten
times faster than decoding each event into its own message class.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec


class LogError(Exception):
    """The event log cannot be read; the message says which file and why."""


class Row(msgspec.Struct, kw_only=True):
    type: str
    at: int
    ticket_id: str = ""
    number: int = 0
    service: str = ""
    priority: str | None = None
    issued_at: int = 0
    source: str = ""
    people_ahead: int = 0
    est_wait_s: int = 0
    counter: int = 0
    from_counter: int = 0
    to_service: str = ""
    to_counter: int | None = None
    reason: str = ""
    level: int = 0


_rows = msgspec.json.Decoder(list[Row])


def read_rows(db: str | Path, since_day: str, until_day: str) -> tuple[list[Row], int]:
    """Every event of the days since_day..until_day (ISO dates, inclusive), in log order,
    and how many damaged rows were skipped."""
    path = Path(db)
    if not path.is_file():
        raise LogError(f"{path}: no event log here")
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            data = conn.execute(
                # (day, seq) is the index's own order: no sort, and the same as log order
                "SELECT data FROM events WHERE day BETWEEN ? AND ? ORDER BY day, seq",
                (since_day, until_day)).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise LogError(f"{path}: not a readable event log ({e})") from None
    if not data:
        return [], 0
    try:
        blob = b"[" + b",".join([d for (d,) in data]) + b"]"
    except TypeError:                   # rows written as text by another tool
        blob = b"[" + b",".join([d if isinstance(d, bytes) else str(d).encode() for (d,) in data]) + b"]"
    try:
        return _rows.decode(blob), 0
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _decode_one_by_one(data, path)


def _decode_one_by_one(data: list, path: Path) -> tuple[list[Row], int]:
    """Slow path for a log with a damaged row: skip what cannot be read, keep the rest."""
    one = msgspec.json.Decoder(Row)
    out = []
    for (d,) in data:
        try:
            out.append(one.decode(d))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
    return out, len(data) - len(out)


def count_dead_letters(db: str | Path, since_day: str, until_day: str) -> int:
    """Commands the service set aside after failing on them (its `dead_letters` table; a
    log written before that table existed has none)."""
    try:
        conn = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM dead_letters WHERE day BETWEEN ? AND ?",
                                (since_day, until_day)).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return 0
