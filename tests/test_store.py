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
