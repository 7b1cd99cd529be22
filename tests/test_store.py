"""The service's event log (qms/service/store.py): a log of the first schema is converted on
open without losing a handled command."""
from __future__ import annotations

import sqlite3

from qms.service.store import EventStore

OLD_SCHEMA = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, day TEXT NOT NULL, at INTEGER NOT NULL,
                     type TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX events_day ON events(day);
CREATE TABLE handled (id TEXT PRIMARY KEY, dev TEXT NOT NULL, seq INTEGER NOT NULL,
                      at INTEGER NOT NULL, ack BLOB NOT NULL);
CREATE INDEX handled_dev_seq ON handled(dev, seq);
CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def test_a_log_of_the_first_schema_is_converted_and_keeps_every_handled_command(tmp_path):
    path = tmp_path / "old.sqlite"
    c = sqlite3.connect(path)
    c.executescript(OLD_SCHEMA)
    rows = [(f"cmd-{i:08d}", f"kiosk-{i % 3}", i // 3 + 1, 1000 + i, b'{"ok":true,"n":%d}' % i) for i in range(300)]
    c.executemany("INSERT INTO handled VALUES (?,?,?,?,?)", rows)
    c.commit()
    c.close()

    store = EventStore(path)
    try:
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "sqlite_autoindex_handled_1" not in names and "handled_dev_id" in names
        for msg_id, dev, seq, _, ack in rows:
            assert store.handled_ack(msg_id, dev, seq) == ack
        assert store.handled_ack("cmd-00000001", "kiosk-2", 1) is None     # another device's id
        assert store.last_seqs() == {"kiosk-0": 100, "kiosk-1": 100, "kiosk-2": 100}
        assert store.max_seqs() == {"kiosk-0": 100, "kiosk-1": 100, "kiosk-2": 100}
    finally:
        store.close()
    again = EventStore(path)                  # converted once: opening again changes nothing
    try:
        assert again.conn.execute("SELECT count(*) FROM handled").fetchone()[0] == 300
    finally:
        again.close()


def test_the_handled_id_filter_has_no_false_negatives_and_grows(tmp_path, monkeypatch):
    """A handled id is found under any seq, also once the filter outgrew its first size and
    after a restart (the filter is rebuilt from the log); an unknown id skips the log."""
    from qms.service.store import EventStore, HandledFilter
    f = HandledFilter(2000)
    for i in range(2000):
        f.add("kiosk-1", f"id-{i:08d}")
    assert all(f.may_contain("kiosk-1", f"id-{i:08d}") for i in range(2000))
    assert sum(f.may_contain("kiosk-1", f"other-{i:08d}") for i in range(10_000)) < 300   # ~1 % at capacity
    monkeypatch.setattr(EventStore, "MIN_FILTER", 100)
    store = EventStore(tmp_path / "s.sqlite")
    for i in range(250):
        store.mark_handled(f"cmd-{i:08d}", "kiosk-1", i + 1, 0, b"ack%d" % i)
        if i % 50 == 49:
            store.commit()
    assert store._filter.capacity >= 250
    store._recent.clear()                       # only the filter and the log are left
    assert all(store.handled_ack(f"cmd-{i:08d}", "kiosk-1", 999) == b"ack%d" % i for i in range(250))
    assert store.handled_ack("cmd-unknown-1", "kiosk-1") is None
    store.close()
    again = EventStore(tmp_path / "s.sqlite")
    assert again.handled_ack("cmd-00000007", "kiosk-1", 1) == b"ack7"
    again.close()


def test_a_batch_of_refused_garbage_only_is_committed_without_fsync_and_full_returns(tmp_path):
    store = EventStore(tmp_path / "s.sqlite")
    store.mark_handled("junk-0000001", "kiosk-1", 1, 0, b"refused", sync=False)
    assert not store._pending.sync
    store.commit()
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2        # FULL again
    store.mark_handled("cmd-00000001", "kiosk-1", 2, 0, b"ok")
    assert store._pending.sync
    store.commit()
    store.close()
    again = EventStore(tmp_path / "s.sqlite")
    assert again.handled_ack("junk-0000001", "kiosk-1") == b"refused"
    assert again.handled_ack("cmd-00000001", "kiosk-1") == b"ok"
    again.close()
