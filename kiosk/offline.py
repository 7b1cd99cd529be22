"""Numbers a kiosk prints on its own when the service cannot answer.

Each kiosk/robot owns a fixed block at the top of every service's range, which the
service never issues itself (the rule is `qms.core.offline`). Within its block a kiosk
counts upwards from the bottom, one row per ticket in its own SQLite file, written in
the same transaction as the `ticket.offline` command in the outbox: after a power cut
either both exist or neither does, and a number is never printed twice.
"""
from __future__ import annotations

import datetime as dt
import sqlite3

from qms.config.site import SiteConfig
from qms.core.offline import next_offline_number, offline_block

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offline_tickets (
    day TEXT NOT NULL,
    service TEXT NOT NULL,
    n INTEGER NOT NULL,
    ticket_id TEXT NOT NULL UNIQUE,
    issued_at INTEGER NOT NULL,
    PRIMARY KEY (day, service, n)
);
-- offline tickets the service gave another number (the paper's was not this kiosk's to
-- print, or was taken): kept so staff can see which printed numbers are called as what,
-- and shown on the kiosk's screen until the ticket is called (called_at)
CREATE TABLE IF NOT EXISTS offline_renumbered (
    ticket_id TEXT PRIMARY KEY,
    day TEXT NOT NULL,
    service TEXT NOT NULL,
    printed INTEGER NOT NULL,
    number INTEGER NOT NULL,
    at INTEGER NOT NULL,
    called_at INTEGER
);
"""


class BlockExhausted(Exception):
    """Every offline number of this service is used today."""


class OfflineNumbers:
    def __init__(self, cfg: SiteConfig, device: str, conn: sqlite3.Connection):
        self.cfg = cfg
        self.device = device
        self.conn = conn
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(offline_renumbered)")}
        if "called_at" not in columns:          # a store made before the screen showed them
            conn.execute("ALTER TABLE offline_renumbered ADD COLUMN called_at INTEGER")

    def day_of(self, ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, self.cfg.tz).date().isoformat()

    def block(self, service: str) -> range:
        return offline_block(self.cfg, service, self.device)

    def next_number(self, service: str, now_ms: int) -> int:
        """The full ticket number (code*1000 + n) the next offline ticket would get."""
        row = self.conn.execute("SELECT max(n) FROM offline_tickets WHERE day = ? AND service = ?",
                                (self.day_of(now_ms), service)).fetchone()
        number = next_offline_number(self.cfg, service, self.device, row[0])
        if number is None:
            raise BlockExhausted(service)
        return number

    def record(self, service: str, number: int, ticket_id: str, now_ms: int):
        """An `extra` for Outbox.add: the number's row, in the outbox's transaction."""
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO offline_tickets(day, service, n, ticket_id, issued_at) "
                         "VALUES (?,?,?,?,?)", (self.day_of(now_ms), service, number % 1000, ticket_id, now_ms))
        return write

    def renumbered(self, ticket: dict, now_ms: int) -> tuple[str, int, int] | None:
        """The service's answer to one of our offline tickets says it is called by another
        number: record it (once). Returns (its day, printed, new number), or None if not
        ours or not renumbered (or recorded already)."""
        printed, number, tid = ticket.get("printed_number"), ticket.get("number"), ticket.get("ticket_id")
        if not isinstance(printed, int) or not isinstance(number, int) or printed == number:
            return None
        row = self.conn.execute("SELECT day, service FROM offline_tickets WHERE ticket_id = ?", (tid,)).fetchone()
        if row is None:
            return None
        cur = self.conn.execute("INSERT OR IGNORE INTO offline_renumbered(ticket_id, day, service, printed, number, at) "
                                "VALUES (?,?,?,?,?,?)", (tid, row[0], row[1], printed, number, now_ms))
        return (row[0], printed, number) if cur.rowcount else None

    def renumbered_today(self, day: str) -> list[tuple[int, int]]:
        """(printed, new number) of today's renumbered offline tickets, oldest first."""
        return self.conn.execute("SELECT printed, number FROM offline_renumbered WHERE day = ? ORDER BY at, rowid",
                                 (day,)).fetchall()

    def renumbered_waiting(self) -> list[tuple[str, str, int, int]]:
        """(ticket id, day, printed, new number) of the renumbered tickets not called yet,
        oldest first (the screen keeps today's)."""
        return self.conn.execute("SELECT ticket_id, day, printed, number FROM offline_renumbered "
                                 "WHERE called_at IS NULL ORDER BY at, rowid").fetchall()

    def renumbered_called(self, ticket_ids: list[str], now_ms: int) -> int:
        """These tickets were called: their notices are done. How many were waiting."""
        n = 0
        for tid in ticket_ids:
            n += self.conn.execute("UPDATE offline_renumbered SET called_at = ? WHERE ticket_id = ? "
                                   "AND called_at IS NULL", (now_ms, tid)).rowcount
        return n

    def used(self, day: str) -> list[tuple[str, int, str, int]]:
        return self.conn.execute("SELECT service, n, ticket_id, issued_at FROM offline_tickets "
                                 "WHERE day = ? ORDER BY issued_at", (day,)).fetchall()

    def left(self, service: str, now_ms: int) -> int:
        try:
            return self.block(service).stop - self.next_number(service, now_ms) % 1000
        except BlockExhausted:
            return 0
