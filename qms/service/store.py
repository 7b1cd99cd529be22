"""The service's durable state: an append-only event log and the ids of handled commands.

Both are written in one transaction, so a command's effect and the record that it was
handled cannot be separated by a crash (exactly-once). SQLite in WAL mode with
synchronous=FULL: a commit survives kill -9 and power loss. Commands arriving together
are committed together (group commit), which is what makes durable writes fast.

Writes are buffered in memory (`append`, `mark_handled`, `put`) and reach SQLite in one
transaction at `commit()`. Rows that need no fsync of their own (the records of refused
commands, the day's counts of bad messages per device) wait up to `LAZY_FLUSH_S` for a
commit that has to fsync anyway: a flood of garbage writes nothing per message. Recently handled ids stay in memory (also before their
commit), so duplicate checks rarely reach SQLite; older ones are looked up through a
separate read connection (WAL readers do not block).
"""
from __future__ import annotations

import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from qms.protocol.messages import AnyEvent, Event

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
    id TEXT NOT NULL,
    dev TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    ack BLOB NOT NULL
);
DROP INDEX IF EXISTS handled_dev_seq_id;
CREATE INDEX IF NOT EXISTS handled_dev_id ON handled(dev, id);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS bad_messages (
    day TEXT NOT NULL,
    dev TEXT NOT NULL,
    invalid INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    PRIMARY KEY (day, dev)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    at INTEGER NOT NULL,
    day TEXT NOT NULL,
    dev TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    error TEXT NOT NULL
);
"""

log = logging.getLogger("qms.store")
# Handled commands are found by (device, id), whatever seq they come with: a device (or a
# hostile client) may replay a handled id under a new seq, and it must not apply again. An
# earlier index on (device, seq, id) grew at one end per device but only found a command
# re-sent with its own seq; the very first schema indexed the random id alone (a random
# page per insert over the whole history). A log of that schema is converted when opened.
_MIGRATE_HANDLED = """
CREATE TABLE handled_v2 (id TEXT NOT NULL, dev TEXT NOT NULL, seq INTEGER NOT NULL,
                         at INTEGER NOT NULL, ack BLOB NOT NULL);
INSERT INTO handled_v2 SELECT id, dev, seq, at, ack FROM handled ORDER BY rowid;
DROP TABLE handled;
ALTER TABLE handled_v2 RENAME TO handled;
"""

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(AnyEvent)
RECENT_IDS = 50_000        # handled ids (with their acks) kept in memory
# Rows that need no fsync wait at most this long for one that does (a crash of the process,
# kill -9, loses at most this much of them: docs/protocol.md).
LAZY_FLUSH_S = 1.0


class HandledFilter:
    """A Bloom filter over every handled (device, id): a command id it has never seen is
    new without a read of the log (the common case; a read per command cost ~100 µs under
    load). "Maybe seen" goes to the log. Bits are never removed: an id rolled back stays
    "maybe", which only costs a read. 10 bits and 7 hashes per id: ~1 % false positives at
    capacity; past it the filter is rebuilt twice as large."""

    HASHES = 7

    def __init__(self, capacity: int = 1 << 18):
        self.capacity = capacity
        self.bits = bytearray(capacity * 10 // 8 + 1)
        self.size = len(self.bits) * 8
        self.count = 0

    def _positions(self, dev: str, msg_id: str) -> list[int]:
        # Python's own string hash (SipHash, seeded per process: the filter is built anew
        # at every start), two of them combined (Kirsch-Mitzenmacher)
        a, b = hash((dev, msg_id)), hash((msg_id, dev)) | 1
        return [(a + i * b) % self.size for i in range(self.HASHES)]

    def add(self, dev: str, msg_id: str) -> None:
        for p in self._positions(dev, msg_id):
            self.bits[p >> 3] |= 1 << (p & 7)
        self.count += 1

    def may_contain(self, dev: str, msg_id: str) -> bool:
        return all(self.bits[p >> 3] & (1 << (p & 7)) for p in self._positions(dev, msg_id))


@dataclass
class Pending:
    """Rows of a batch not yet written."""
    events: list[tuple] = field(default_factory=list)
    handled: list[tuple] = field(default_factory=list)
    kv: list[tuple] = field(default_factory=list)
    dead: list[tuple] = field(default_factory=list)
    bad: dict[tuple[str, str], tuple] = field(default_factory=dict)   # (day, dev) -> its latest counts
    sync: bool = False          # something in it must survive a power cut (see `mark_handled`)
    since: float | None = None  # monotonic time of its first row

    def __bool__(self) -> bool:
        return bool(self.events or self.handled or self.kv or self.dead or self.bad)


@dataclass(frozen=True)
class Savepoint:
    """Where a batch's buffered rows stood before one command (see `EventStore.savepoint`)."""
    events: int
    handled: int
    kv: int
    dead: int
    last_seq: int


class EventStore:
    MIN_FILTER = 1 << 18       # ids the handled-id filter holds before it is rebuilt larger
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self.conn.executescript(_SCHEMA)
        self._reader = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._last_seq = self.conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        self._pending = Pending()
        self._recent: OrderedDict[tuple[str, str], bytes] = OrderedDict()   # (dev, id) -> ack
        self._kv: dict[str, bytes | None] = {}
        self._filter = self._build_filter()

    def _build_filter(self, extra: int = 0) -> HandledFilter:
        rows = self.conn.execute("SELECT count(*) FROM handled").fetchone()[0] + extra
        f = HandledFilter(max(self.MIN_FILTER, 2 * rows))
        for dev, msg_id in self.conn.execute("SELECT dev, id FROM handled"):
            f.add(dev, msg_id)
        return f

    def _migrate(self) -> None:
        old = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_autoindex_handled_1'").fetchall()
        if old:
            log.info("converting the handled-commands table of %s to its new index", self.path)
            self.conn.executescript("BEGIN IMMEDIATE;" + _MIGRATE_HANDLED + "COMMIT;")

    # ------------------------------------------------------------ writing
    def _started(self) -> Pending:
        p = self._pending
        if p.since is None:
            p.since = time.monotonic()
        return p

    def append(self, day: str, e: Event) -> int:
        self._started()
        self._last_seq += 1
        e.seq = self._last_seq
        self._pending.events.append((e.seq, day, e.at, e.__struct_config__.tag, _enc.encode(e)))
        self._pending.sync = True
        return e.seq

    def mark_handled(self, msg_id: str, dev: str, seq: int, at: int, ack: bytes, sync: bool = True) -> None:
        """sync=False: the record of a command refused before it was obeyed (invalid,
        retained). Its answer does not depend on the log, so a batch of nothing else is
        committed without an fsync (SQLite's synchronous=NORMAL in WAL mode: safe from a
        crash of the process, not from a power cut): a flood of garbage does not make the
        good commands wait for fsyncs of its own; it is written with the next commit that
        fsyncs, or within LAZY_FLUSH_S."""
        self._started().handled.append((msg_id, dev, seq, at, ack))
        self._pending.sync |= sync
        self._remember((dev, msg_id), ack)
        self._filter.add(dev, msg_id)
        if self._filter.count > self._filter.capacity:      # rows not committed yet are added too
            self._filter = self._build_filter(len(self._pending.handled))
            for m_id, d, *_ in self._pending.handled:
                self._filter.add(d, m_id)

    def put(self, key: str, value: bytes) -> None:
        self._started().kv.append((key, value))
        self._pending.sync = True
        self._kv[key] = value

    def get(self, key: str) -> bytes | None:
        if key not in self._kv:
            rows = self._reader.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchall()
            self._kv[key] = rows[0][0] if rows else None
        return self._kv[key]

    def dead_letter(self, at: int, day: str, dev: str, msg_id: str, seq: int, topic: str,
                    payload: bytes, error: str) -> None:
        """A command whose handling raised: kept with its payload and traceback."""
        self._started().dead.append((at, day, dev, msg_id, seq, topic, payload, error))
        self._pending.sync = True

    def save_bad_counts(self, day: str, dev: str, invalid: int, refused: int, last_error: str) -> None:
        """A device's counts of invalid and refused messages today (the latest replace the
        earlier: one row per device per write, however many messages). No fsync of its own."""
        self._started().bad[(day, dev)] = (day, dev, invalid, refused, last_error)

    def bad_counts(self, day: str) -> dict[str, dict]:
        rows = self.conn.execute("SELECT dev, invalid, refused, last_error FROM bad_messages WHERE day = ? "
                                 "ORDER BY rowid", (day,))
        return {dev: {"invalid": i, "refused": r, "last_error": e} for dev, i, r, e in rows}

    def bad_devices_before(self, day: str) -> set[str]:
        """Devices counted on an earlier day (their retained alerts are of that day)."""
        return {dev for (dev,) in self.conn.execute("SELECT DISTINCT dev FROM bad_messages WHERE day < ?", (day,))}

    def dead_letters(self, day: str | None = None) -> list[tuple]:
        q = "SELECT at, dev, id, seq, topic, payload, error FROM dead_letters"
        rows = self.conn.execute(q + (" WHERE day = ?" if day else "") + " ORDER BY rowid",
                                 (day,) if day else ())
        return rows.fetchall()

    def count_dead_letters(self, day: str) -> int:
        return self.conn.execute("SELECT count(*) FROM dead_letters WHERE day = ?", (day,)).fetchone()[0]

    # ------------------------------------------------------------ one command's rows
    def savepoint(self) -> Savepoint:
        """Mark the buffered rows before a command: `rollback_to` drops only that command's
        rows, and the rest of the batch commits. (The batch is written in one transaction
        at `commit`, so this is SQLite's SAVEPOINT done on the buffer.)"""
        p = self._pending
        return Savepoint(len(p.events), len(p.handled), len(p.kv), len(p.dead), self._last_seq)

    def rollback_to(self, sp: Savepoint) -> None:
        p = self._pending
        for msg_id, dev, *_ in p.handled[sp.handled:]:
            self._recent.pop((dev, msg_id), None)
        for key, _ in p.kv[sp.kv:]:
            self._kv.pop(key, None)
        del p.events[sp.events:], p.handled[sp.handled:], p.kv[sp.kv:], p.dead[sp.dead:]
        self._last_seq = sp.last_seq

    def pending_events(self) -> list[Event]:
        """Events buffered for the next commit, in order."""
        return [_dec.decode(row[4]) for row in self._pending.events]

    def write(self, p: Pending) -> None:
        """One durable transaction for these rows; raises (rolled back) on failure."""
        c = self.conn
        if not p.sync:
            c.execute("PRAGMA synchronous=NORMAL")
        try:
            self._write(p)
        finally:
            if not p.sync:
                c.execute("PRAGMA synchronous=FULL")

    def _write(self, p: Pending) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if p.events:
                c.executemany("INSERT INTO events(seq, day, at, type, data) VALUES (?,?,?,?,?)", p.events)
            if p.handled:
                c.executemany("INSERT INTO handled(id, dev, seq, at, ack) VALUES (?,?,?,?,?)", p.handled)
            if p.kv:
                c.executemany("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", p.kv)
            if p.dead:
                c.executemany("INSERT INTO dead_letters(at, day, dev, id, seq, topic, payload, error) "
                              "VALUES (?,?,?,?,?,?,?,?)", p.dead)
            if p.bad:
                c.executemany("INSERT INTO bad_messages(day, dev, invalid, refused, last_error) VALUES (?,?,?,?,?) "
                              "ON CONFLICT(day, dev) DO UPDATE SET invalid = excluded.invalid, "
                              "refused = excluded.refused, last_error = excluded.last_error", list(p.bad.values()))
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def commit(self, force: bool = False) -> None:
        """Write what was buffered since the last commit (see `write`). Rows that need no
        fsync wait (up to LAZY_FLUSH_S) for one that does, unless `force`."""
        pending = self._pending
        if not pending or not (force or pending.sync or self.flush_due()):
            return
        self._pending = Pending()
        self.write(pending)

    def flush_due(self, now: float | None = None) -> bool:
        """Rows that need no fsync have waited LAZY_FLUSH_S: write them now."""
        since = self._pending.since
        return since is not None and (now if now is not None else time.monotonic()) - since >= LAZY_FLUSH_S

    def flush_at(self) -> float | None:
        """Monotonic time at which buffered rows are due (None: nothing buffered)."""
        since = self._pending.since
        return None if since is None else since + LAZY_FLUSH_S

    def rollback(self) -> None:
        """Forget everything not written; caches are rebuilt from the database."""
        self._pending = Pending()
        self._recent.clear()
        self._kv.clear()
        self._last_seq = self.conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    def _remember(self, key: tuple[str, str], ack: bytes) -> None:
        self._recent[key] = ack
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    # ------------------------------------------------------------ reading
    def last_seqs(self) -> dict[str, int]:
        """The newest seq handled per device (of the latest sequence, after a reset).
        Rows with seq -1 (refused commands that took no place in a sequence) do not count."""
        rows = self.conn.execute(
            "SELECT dev, seq FROM handled WHERE rowid IN "
            "(SELECT max(rowid) FROM handled WHERE seq >= 0 GROUP BY dev)")
        return {dev: seq for dev, seq in rows}

    def max_seqs(self) -> dict[str, int]:
        """The highest seq ever handled per device, over all its sequences."""
        return dict(self.conn.execute("SELECT dev, max(seq) FROM handled GROUP BY dev"))

    def handled_ack(self, msg_id: str, dev: str, seq: int | None = None) -> bytes | None:
        """The ack of command `msg_id` from `dev`, if it was handled (under any seq)."""
        ack = self._recent.get((dev, msg_id))
        if ack is not None:
            return ack
        if not self._filter.may_contain(dev, msg_id):
            return None
        rows = self._reader.execute("SELECT ack FROM handled WHERE dev = ? AND id = ? LIMIT 1",
                                    (dev, msg_id)).fetchall()
        return rows[0][0] if rows else None

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
        self.commit(force=True)
        self._reader.close()
        self.conn.close()
