"""Per-(site, day) aggregates of the city's events, so a report over a month reads ~700 × 30
small rows instead of every event (docs/city.md, "Reports at city scale").

- `city_daily` holds, for one site and one service day, what qms.reports.stats' fold found:
  the counts of every group it made (total, point, service, counter, hour, day) and each
  wait and service time once, in ms, with the numbers of the groups it belongs to. A report
  merged from these rows is exactly the report folded from the raw events.
- `city_days_dirty` says which site-days changed since their row was folded. Statement
  triggers on `city_events` keep it (so no ingest code has to): every INSERT or DELETE
  marks the site-days it touched with a new `gen` from one sequence.
- The aggregator (`aggregate`: the `serve` process runs it in the background, and
  `python -m qms.city aggregate` catches up) folds a dirty site-day from a snapshot that
  also read its `gen`, writes the row, and clears the mark only if `gen` did not move
  since: an event stored meanwhile leaves the day dirty, a killed aggregator leaves it
  dirty, and writing the same row twice is an idempotent upsert.
- A report reads, in one snapshot, the rows of clean site-days and folds the events of
  the dirty ones itself (qms/city/report.py): nothing is missed or counted twice.

A ticket belongs to one service day (the service starts a new day's queue at the day's
boundary), so folding day by day is the same as folding the range; a ticket printed
offline on an earlier day is logged, and counted, on the day it reaches the service.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Iterable

import msgspec
import numpy as np
import psycopg

from qms.config.site import ConfigError, SiteConfig, parse_config
from qms.reports.log import Row
from qms.reports.stats import N_COUNTS, _fold_point, _Groups

log = logging.getLogger("qms.city.daily")

FORMAT = 1          # of the stored row; a row of another format is folded again
QUIET_S = 30.0      # a day still taking events is folded again once it has been quiet this long
MAX_DIRTY_S = 300.0  # ... or once it has been dirty this long, however busy

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS city_fold_gen;
CREATE TABLE IF NOT EXISTS city_days_dirty (
    site        text NOT NULL,
    day         date NOT NULL,
    gen         bigint NOT NULL,          -- moves on every change: the fold clears this mark only if unmoved
    max_seq     bigint,                   -- the highest seq stored for the day (informational)
    first_at    timestamptz NOT NULL DEFAULT now(),
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, day)
);
CREATE TABLE IF NOT EXISTS city_daily (
    site        text NOT NULL REFERENCES city_sites(site),
    day         date NOT NULL,
    gen         bigint NOT NULL,          -- the dirty mark this fold cleared (a later fold wins)
    upto_seq    bigint NOT NULL,
    events      integer NOT NULL,
    skipped     integer NOT NULL,         -- events that could not be decoded
    tz          text NOT NULL,            -- the zone hours were taken in: another one means fold again
    format      smallint NOT NULL,
    groups      bytea NOT NULL,           -- msgpack [[section, key], ...]
    counts      bytea NOT NULL,           -- int32 [group][issued .. print_failed, rating 1..5]
    waits       bytea NOT NULL,           -- int32 ms (int64 if one does not fit), one per called ticket
    wait_groups bytea NOT NULL,           -- uint8/16 [wait][service, hour, day, first counter]
    times       bytea NOT NULL,           -- int32 / int64 ms, one per served ticket
    time_groups bytea NOT NULL,           -- uint8/16 [time][service, hour, day, counter or none]
    folded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, day)
);
-- already compressed enough (random numbers): do not try pglz on every read
ALTER TABLE city_daily ALTER COLUMN waits SET STORAGE EXTERNAL, ALTER COLUMN wait_groups SET STORAGE EXTERNAL,
    ALTER COLUMN times SET STORAGE EXTERNAL, ALTER COLUMN time_groups SET STORAGE EXTERNAL;

CREATE OR REPLACE FUNCTION city_mark_days() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g bigint := nextval('city_fold_gen');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO city_days_dirty (site, day, gen, max_seq)
        SELECT site, day, g, max(seq) FROM new_rows GROUP BY site, day
        ON CONFLICT (site, day) DO UPDATE SET gen = EXCLUDED.gen, changed_at = now(),
            max_seq = greatest(city_days_dirty.max_seq, EXCLUDED.max_seq);
    ELSE
        INSERT INTO city_days_dirty (site, day, gen)
        SELECT DISTINCT site, day, g FROM old_rows
        ON CONFLICT (site, day) DO UPDATE SET gen = EXCLUDED.gen, changed_at = now();
    END IF;
    RETURN NULL;
END $$;
"""

# created once, with the marks of the events stored before it existed (an older database)
TRIGGERS = """
CREATE TRIGGER city_events_mark_insert AFTER INSERT ON city_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION city_mark_days();
CREATE TRIGGER city_events_mark_delete AFTER DELETE ON city_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION city_mark_days();
INSERT INTO city_days_dirty (site, day, gen, max_seq)
SELECT site, day, nextval('city_fold_gen'), max(seq) FROM city_events GROUP BY site, day
ON CONFLICT (site, day) DO NOTHING;
"""


def apply_schema(conn: psycopg.Connection) -> None:
    """Tables and triggers (called by qms.city.db.init_schema, in autocommit)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('qms.city.daily schema'))")
        conn.execute(SCHEMA)
        if not conn.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'city_events_mark_insert'").fetchone():
            conn.execute(TRIGGERS)


# ---------------------------------------------------------------- the fold of one site-day
class DayGroups(_Groups):
    """The fold's groups, numbered in the order they were made; each wait and service time
    is kept once, with the numbers of its service, hour, day and counter groups."""

    def __init__(self) -> None:
        super().__init__()
        self.index: dict[int, int] = {}
        self.waits: list[int] = []
        self.wait_groups: list[int] = []
        self.times: list[int] = []
        self.time_groups: list[int] = []

    def __call__(self, section: str, key: str):
        a = self.acc.get((section, key))
        if a is None:
            a = super().__call__(section, key)
            self.index[id(a)] = len(self.acc) - 1
        return a

    # event_groups' order: total, point, service, hour, day (, counter)
    def add_wait(self, ms, issue_groups, first_counter) -> None:
        ix = self.index
        self.waits.append(ms)
        self.wait_groups += (ix[id(issue_groups[2])], ix[id(issue_groups[3])], ix[id(issue_groups[4])],
                             ix[id(first_counter)])

    def add_service_time(self, ms, done_groups) -> None:
        ix = self.index
        self.times.append(ms)
        self.time_groups += (ix[id(done_groups[2])], ix[id(done_groups[3])], ix[id(done_groups[4])],
                             ix[id(done_groups[5])] if len(done_groups) > 5 else -1)


class DayAgg(msgspec.Struct):
    """One site-day's fold, as stored (arrays as bytes) and merged (qms.city.report)."""
    site: str
    day: dt.date
    groups: list[tuple[str, str]]
    counts: bytes
    waits: bytes
    wait_groups: bytes
    times: bytes
    time_groups: bytes
    skipped: int = 0
    events: int = 0
    upto_seq: int = 0

    def group_dtype(self):
        return group_dtype(len(self.groups))

    def arrays(self):
        """(counts [g, N_COUNTS], waits, wait_groups [n, 4], times, time_groups [n, 4]);
        a time with no counter has len(groups) as its counter group."""
        gd = self.group_dtype()
        wg = np.frombuffer(self.wait_groups, gd).reshape(-1, 4)
        tg = np.frombuffer(self.time_groups, gd).reshape(-1, 4)
        return (np.frombuffer(self.counts, np.int32).reshape(-1, N_COUNTS),
                _times(self.waits, len(wg)), wg, _times(self.times, len(tg)), tg)


def _times(data: bytes, n: int) -> np.ndarray:
    return np.frombuffer(data, np.int64 if n and len(data) == 8 * n else np.int32)


def _pack(values: list[int]) -> bytes:
    """int32 (a day's waits fit: 24 days), int64 if a clock's jump made one that does not."""
    a = np.array(values, np.int64)
    if len(a) and (a.min() < -2**31 or a.max() >= 2**31):
        return a.tobytes()
    return a.astype(np.int32).tobytes()


def group_dtype(n_groups: int):
    return np.uint8 if n_groups < 255 else np.uint16 if n_groups < 65535 else np.uint32


_rows = msgspec.json.Decoder(list[Row])
_one = msgspec.json.Decoder(Row)


def decode(data: list[bytes]) -> tuple[list[Row], int]:
    """Events' JSON into rows (one msgspec call; one by one if one is damaged), and how many
    could not be read."""
    if not data:
        return [], 0
    try:
        return _rows.decode(b"[" + b",".join(data) + b"]"), 0
    except (msgspec.DecodeError, msgspec.ValidationError):
        out = []
        for d in data:
            try:
                out.append(_one.decode(d))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        return out, len(data) - len(out)


def fold_day(cfg: SiteConfig, site: str, day: dt.date, data: list[bytes], upto_seq: int = 0) -> DayAgg:
    """The fold of one site-day's events (their JSON, in seq order), with stats.py's code."""
    rows, skipped = decode(data)
    return fold_rows(cfg, site, day, rows, skipped, len(data), upto_seq)


def fold_rows(cfg: SiteConfig, site: str, day: dt.date, rows: list[Row], skipped: int = 0, events: int = 0,
              upto_seq: int = 0) -> DayAgg:
    g = DayGroups()
    _fold_point(g, site, False, cfg, rows)
    n = len(g.acc)
    gd = group_dtype(n)
    counts = np.array([a.counts() for a in g.acc.values()], np.int32).reshape(-1, N_COUNTS)
    tg = np.array(g.time_groups, np.int64)
    tg[tg < 0] = n
    return DayAgg(site=site, day=day, groups=list(g.acc), counts=counts.tobytes(),
                  waits=_pack(g.waits), wait_groups=np.array(g.wait_groups, gd).tobytes(),
                  times=_pack(g.times), time_groups=tg.astype(gd).tobytes(),
                  skipped=skipped, events=events, upto_seq=upto_seq)


_READ_DAYS = """
SELECT r.site, r.day, coalesce(d.gen, c.gen, 0), e.upto, e.n, e.data
FROM unnest(%s::text[], %s::date[]) AS r(site, day)
LEFT JOIN city_days_dirty d ON d.site = r.site AND d.day = r.day
LEFT JOIN city_daily c ON c.site = r.site AND c.day = r.day
CROSS JOIN LATERAL (SELECT max(seq) AS upto, count(*) AS n, string_agg(data, ','::bytea ORDER BY seq) AS data
                    FROM city_events x WHERE x.site = r.site AND x.day = r.day) AS e
"""


def read_days(conn: psycopg.Connection, keys: list[tuple[str, dt.date]]):
    """For each (site, day): its dirty mark's gen (or its row's), its last seq, and its events
    decoded, with how many could not be: one statement, so the mark and the events are of
    one snapshot (the mark read first cannot be newer than the events)."""
    for site, day, gen, upto, n, blob in conn.execute(
            _READ_DAYS, ([k[0] for k in keys], [k[1] for k in keys]), binary=True).fetchall():
        rows, skipped = [], 0
        if n:
            try:        # the events' JSON joined by PostgreSQL: one decode, no per-row fetch
                rows = _rows.decode(b"[" + bytes(blob) + b"]")
            except (msgspec.DecodeError, msgspec.ValidationError):
                rows, skipped = decode([bytes(d) for (d,) in conn.execute(
                    "SELECT data FROM city_events WHERE site = %s AND day = %s ORDER BY seq", (site, day))])
        yield site, day, gen, upto or 0, n, rows, skipped


# ---------------------------------------------------------------- the aggregator
_groups_enc = msgspec.msgpack.Encoder()
_groups_dec = msgspec.msgpack.Decoder(list[tuple[str, str]])

_UPSERT = """
INSERT INTO city_daily (site, day, gen, upto_seq, events, skipped, tz, format, groups, counts, waits,
                        wait_groups, times, time_groups)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (site, day) DO UPDATE SET gen = EXCLUDED.gen, upto_seq = EXCLUDED.upto_seq, events = EXCLUDED.events,
    skipped = EXCLUDED.skipped, tz = EXCLUDED.tz, format = EXCLUDED.format, groups = EXCLUDED.groups,
    counts = EXCLUDED.counts, waits = EXCLUDED.waits, wait_groups = EXCLUDED.wait_groups, times = EXCLUDED.times,
    time_groups = EXCLUDED.time_groups, folded_at = now()
WHERE city_daily.gen <= EXCLUDED.gen
"""


def from_row(site: str, day: dt.date, groups: bytes, counts: bytes, waits: bytes, wait_groups: bytes,
             times: bytes, time_groups: bytes, skipped: int) -> DayAgg:
    return DayAgg(site=site, day=day, groups=_groups_dec.decode(groups), counts=bytes(counts), waits=bytes(waits),
                  wait_groups=bytes(wait_groups), times=bytes(times), time_groups=bytes(time_groups),
                  skipped=skipped)


class Configs:
    """The sites' configs as their uplinks last sent them (parsed once per text)."""

    def __init__(self) -> None:
        self._parsed: dict[str, SiteConfig | None] = {}

    def load(self, conn: psycopg.Connection) -> dict[str, SiteConfig]:
        out = {}
        for site, text in conn.execute("SELECT site, config FROM city_sites WHERE config IS NOT NULL"):
            if text not in self._parsed:
                try:
                    self._parsed[text] = parse_config(text, f"config of {site}")
                except ConfigError as e:
                    log.warning("site %s: its stored config cannot be read (%s); its days stay unfolded", site, e)
                    self._parsed[text] = None
            cfg = self._parsed[text]
            if cfg is not None:
                out[site] = cfg
        return out


BATCH = 32          # site-days read in one statement and written in one transaction


def fold_batch(conn: psycopg.Connection, cfgs: dict[str, SiteConfig], keys: list[tuple[str, dt.date]]) -> int:
    """Fold these site-days and store them (one commit); returns how many dirty marks were
    cleared (a mark moved by events stored meanwhile stays, for the next pass)."""
    folded = [(fold_rows(cfgs[site], site, day, rows, skipped, n, upto), gen)
              for site, day, gen, upto, n, rows, skipped in read_days(conn, keys)]
    cleared = 0
    with conn.transaction():
        for agg, gen in folded:
            site, day = agg.site, agg.day
            if agg.events:
                conn.execute(_UPSERT, (site, day, gen, agg.upto_seq, agg.events, agg.skipped,
                                       cfgs[site].site.timezone, FORMAT, _groups_enc.encode(agg.groups), agg.counts,
                                       agg.waits, agg.wait_groups, agg.times, agg.time_groups))
            else:               # every event of the day deleted
                conn.execute("DELETE FROM city_daily WHERE site = %s AND day = %s AND gen <= %s", (site, day, gen))
            # READ COMMITTED: checked against the mark as it is now (an ingest that moved it
            # and committed meanwhile wins; one still running is waited for)
            cleared += conn.execute("DELETE FROM city_days_dirty WHERE site = %s AND day = %s AND gen = %s",
                                    (site, day, gen)).rowcount
    return cleared


def stale_days(conn: psycopg.Connection, configs: dict[str, SiteConfig]) -> list[tuple[str, dt.date]]:
    """Clean site-days whose row was folded in another zone or format."""
    out = []
    for site, day, tz, fmt in conn.execute(
            "SELECT c.site, c.day, c.tz, c.format FROM city_daily c "
            "WHERE NOT EXISTS (SELECT 1 FROM city_days_dirty d WHERE d.site = c.site AND d.day = c.day)"):
        cfg = configs.get(site)
        if cfg is not None and (tz != cfg.site.timezone or fmt != FORMAT):
            out.append((site, day))
    return out


def aggregate(dsn: str, quiet_s: float = 0.0, max_dirty_s: float = 0.0, stale: bool = True,
              stop: threading.Event | None = None, configs: Configs | None = None, wait: bool = True) -> dict:
    """Fold every dirty site-day (quiet for `quiet_s`, or dirty for `max_dirty_s`), and with
    `stale` every row folded in another zone or format. One aggregator at a time (several
    ingest processes would fold the same days): with `wait` False, if another one is at
    work, do nothing. Returns what it did."""
    configs = configs or Configs()
    stats = {"folded": 0, "cleared": 0, "seconds": 0.0}
    t0 = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        # a session lock: a killed aggregator's goes with its connection
        if wait:
            conn.execute("SELECT pg_advisory_lock(hashtext('qms.city.daily aggregate'))")
        elif not conn.execute("SELECT pg_try_advisory_lock(hashtext('qms.city.daily aggregate'))").fetchone()[0]:
            return stats
        cfgs = configs.load(conn)
        todo: list[tuple[str, dt.date]] = [
            (s, d) for s, d in conn.execute(
                "SELECT site, day FROM city_days_dirty WHERE changed_at <= now() - make_interval(secs => %s) "
                "OR first_at <= now() - make_interval(secs => %s) ORDER BY site, day", (quiet_s, max_dirty_s))
            if s in cfgs]
        if stale:
            todo += stale_days(conn, cfgs)
        batch = int(os.environ.get("QMS_CITY_FOLD_BATCH", BATCH))
        for i in range(0, len(todo), batch):
            if stop is not None and stop.is_set():
                break
            stats["cleared"] += fold_batch(conn, cfgs, todo[i:i + batch])
            stats["folded"] += len(todo[i:i + batch])
    stats["seconds"] = round(time.monotonic() - t0, 3)
    return stats


def run_in_background(dsn: str, stop: threading.Event) -> threading.Thread:
    """The serve process's aggregator: a thread folding quiet dirty days every few seconds
    ($QMS_CITY_FOLD_EVERY_S, $QMS_CITY_FOLD_QUIET_S, $QMS_CITY_FOLD_MAX_DIRTY_S change when)."""
    every_s = float(os.environ.get("QMS_CITY_FOLD_EVERY_S", 10))
    quiet_s = float(os.environ.get("QMS_CITY_FOLD_QUIET_S", QUIET_S))
    max_dirty_s = float(os.environ.get("QMS_CITY_FOLD_MAX_DIRTY_S", MAX_DIRTY_S))

    def loop() -> None:
        configs = Configs()
        first = True
        while not stop.is_set():
            try:
                s = aggregate(dsn, quiet_s, max_dirty_s, stale=first, stop=stop, configs=configs, wait=False)
                first = False
                if s["folded"]:
                    log.info("folded %d site-days in %.1f s", s["folded"], s["seconds"])
            except psycopg.Error as e:          # the database away: try again later
                log.warning("aggregator: %s", e)
            stop.wait(every_s)

    t = threading.Thread(target=loop, name="city-aggregator", daemon=True)
    t.start()
    return t


def _aggregator_process(dsn: str, parent: int) -> None:
    """The aggregator's own process: niced, and gone when `serve` is (even after a kill -9)."""
    import signal
    logging.basicConfig(level=os.environ.get("QMS_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        os.nice(10)
    except OSError:
        pass
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    t = run_in_background(dsn, stop)
    while not stop.wait(1.0):
        if os.getppid() != parent:            # serve died: an orphan must not fold on
            stop.set()
    t.join(30)


def start_process(dsn: str):
    """Run the aggregator beside `serve` in a process of its own. Folding is CPU-bound Python
    (15-18 ms per point-day): in the ingest's process it held the GIL against the event loop
    that answers the points' uplinks, delaying them by whole batches after a city-wide
    catch-up (bench/README.md, "city"). A spawned process (nothing inherited from uvicorn's
    loop), niced, ended with serve."""
    import multiprocessing
    proc = multiprocessing.get_context("spawn").Process(
        target=_aggregator_process, args=(dsn, os.getpid()), name="city-aggregator", daemon=True)
    proc.start()
    return proc


def dirty_days(conn: psycopg.Connection, sites: Iterable[str], since: str, until: str) -> set[tuple[str, dt.date]]:
    return {(s, d) for s, d in conn.execute(
        "SELECT site, day FROM city_days_dirty WHERE site = ANY(%s) AND day BETWEEN %s AND %s",
        (list(sites), since, until))}
