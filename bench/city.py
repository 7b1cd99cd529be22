"""Benchmark of the city tier: many points uplinking to one PostgreSQL center, the city page.

Real pieces: a PostgreSQL cluster of its own (fsync on), `python -m qms.city serve` as two
processes (ingest only; public view only), the points' real `Uplink` code (in 2 driver
processes, one thread per point, as 700 Pis would run one each) reading real SQLite logs
written by the real service (the day simulation), and plain HTTP/SSE clients.

  1. catch_up: every point was offline for a whole day (its log holds the day the
     simulation played, ~2,000 events with 10 counters); all reconnect at once.
     catch_up_s = until the center has every event; events_per_s = events / catch_up_s.
  2. steady load at 10x the usual peak hour: a writer appends events to the points' logs
     (at = now); 2,000 live city pages (SSE) are connected; 20 more clients load the board
     (/api/v1/city) once a second each: city_page_p99_ms. uplink_lag_p99_s = the center's
     received_at - the event's time; city_update_lag_p99_ms = from an event written at a
     point to the first SSE message showing that point's state at or after it.
  3. lost / duplicated: every point's log against the center's copy (count, max seq, and a
     hash of every event's bytes in seq order).
  4. city_month_report_s: the day copied to 30 days for every point in PostgreSQL, folded
     into the per-(site, day) aggregates (daily_aggregate_s: the ingest-time cost, per
     site-day), then the whole city's report (qms.city.report.city_report) over the month.

    python bench/city.py [--sites 700] [--steady-s 60] [--clients 2000] [--json] [--month-only]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

COUNTERS = 10
DRIVER_THREADS = 64          # per uplink driver process (each thread takes turns for ~6 points)
TEMPLATES = 8
PEAK_FACTOR = 10


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- points
def template_config(base_dir: Path) -> str:
    from support.site import make_config
    text = make_config(base_dir, 1883, hours_all_day=False).read_text(encoding="utf-8")
    extra = "".join(f'\n[[counters]]\nnumber = {n}\nservices = ["chung-thuc", "ho-tich", "nhan-ket-qua"]\n'
                    for n in range(7, COUNTERS + 1))
    return text.replace("\n[[devices]]", extra + "\n[[devices]]", 1)


def site_config(template: str, i: int) -> str:
    return (template.replace('id = "phuong-an-khanh"', f'id = "site-{i:04d}"')
            .replace('name = "Điểm tiếp nhận chính"', f'name = "Điểm tiếp nhận số {i % 4 + 1}"')
            .replace('center = "Trung tâm Phục vụ hành chính công phường An Khánh"',
                     f'center = "Trung tâm Phục vụ hành chính công phường {i // 4 + 1}"'))


def make_templates(tmp: Path, day: dt.date) -> tuple[str, list[Path]]:
    from qms.config.site import parse_config
    from qms.sim.simulate import DayProfile, DaySimulation
    (tmp / "tpl").mkdir()
    text = template_config(tmp / "tpl")
    cfg = parse_config(text)
    dbs = []
    for k in range(TEMPLATES):
        db = tmp / "tpl" / f"day{k}.sqlite"
        DaySimulation(cfg, db, day, DayProfile(tickets=320 * COUNTERS // 6), seed=100 + k).run().close()
        dbs.append(db)
    return text, dbs


# ---------------------------------------------------------------- uplink driver (subprocess)
def uplink_driver(spec_file: str) -> int:
    from qms.config.site import parse_config
    from qms.uplink import client as uc
    spec = json.loads(Path(spec_file).read_text())

    class CheapLive:
        """Stands in for LiveState (which replays the day in a QueueCore: a few ms per
        update on a Pi, but here 700 points share 2 cores with the center): the same
        shape; each event changes the numbers of one service, as a ticket or a call does."""

        def __init__(self, cfg):
            self.cfg = cfg
            self.numbers = {s.id: [0, 0] for s in cfg.services}
            self.rng = random.Random(cfg.site.id)

        def start(self, now, day_events, last_seq, past_events=()):
            pass

        def feed(self, rows):
            for _ in rows:
                n = self.numbers[self.rng.choice(list(self.numbers))]
                n[0] = max(0, n[0] + self.rng.choice((-1, 1)))
                n[1] = n[0] * 240

        def view(self, now):
            return {"at": now, "name": self.cfg.site.name, "address": self.cfg.site.address,
                    "services": [{"id": s.id, "name_vi": s.name_vi, "name_en": s.name_en,
                                  "waiting": self.numbers[s.id][0], "est_wait_s": self.numbers[s.id][1], "open": True}
                                 for s in self.cfg.services]}

    stop = threading.Event()
    ups = []
    for p in spec["points"]:
        text = Path(p["config"]).read_text(encoding="utf-8")
        cfg = parse_config(text)
        u = uc.Uplink(cfg, p["db"], spec["url"], p["token"], config_text=text, live=CheapLive(cfg))
        ups.append(u)

    def take_turns(group: list) -> None:
        """Uplink.run for a few points on one thread: each point steps when it is due, and
        after a step that sent nothing waits its own next_wait(), as Uplink.run does."""
        due = [0.0] * len(group)
        while not stop.is_set():
            for i, u in enumerate(group):
                if due[i] <= time.monotonic():
                    due[i] = 0.0 if u.step() else time.monotonic() + u.next_wait()
            stop.wait(max(0.0, min(due) - time.monotonic()))
    # 700 threads each waking 5 times a second cost the 2 shared cores ~40 % of one
    # (GIL hand-offs), where each Pi would spend a sliver of its own: a few points per thread
    n = min(len(ups), DRIVER_THREADS)
    threads = [threading.Thread(target=take_turns, args=(ups[k::n],), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    sys.stdin.read()                    # the orchestrator closes our stdin to stop us
    stop.set()
    for t in threads:
        t.join(10)
    print(json.dumps({k: sum(u.stats[k] for u in ups) for k in ups[0].stats}))
    return 0


# ---------------------------------------------------------------- web clients (subprocess)
async def _sse(port: int, stats: dict, record: list | None, delay: float) -> None:
    """One live city page, as qms/city/static/city.js does it: the board (gzipped) with its
    version, then the stream from that version on, on the same connection."""
    await asyncio.sleep(delay)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    except OSError:
        stats["failed"] += 1
        return
    writer.write(b"GET /api/v1/city HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    headers = dict(h.split(b": ", 1) for h in head.split(b"\r\n")[1:] if b": " in h)
    headers = {k.lower(): v for k, v in headers.items()}
    body = await reader.readexactly(int(headers[b"content-length"]))
    stats["bytes"] += len(head) + len(body)
    version = headers.get(b"x-board-version", b"").decode()
    # the probe names the points of the stream's rows by their number on this board
    numbered = {e.get("i"): e["site"] for e in json.loads(gzip.decompress(body))} if record is not None else {}
    writer.write(f"GET /api/v1/city/stream?since={version} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        stats["failed"] += 1
        return
    stats["connected"] += 1
    buf = b""
    try:
        while True:
            data = await reader.read(1 << 20)
            if not data:
                stats["closed"] += 1
                return
            stats["bytes"] += len(data)
            if record is None:
                continue
            now = time.time() * 1000
            buf += data
            while b"\n\n" in buf:
                msg, buf = buf.split(b"\n\n", 1)
                for line in msg.split(b"\n"):
                    i = line.find(b"data: ")
                    if i >= 0:
                        record += _changes(json.loads(line[i + 6:]), numbered, now)
    except (ConnectionError, asyncio.IncompleteReadError):
        stats["closed"] += 1
    finally:
        writer.close()


def _changes(msg: dict | list, numbered: dict[int, str], now: float) -> list[tuple[str, int, float]]:
    """(site, updated_at, received) of every point a message of the stream (qms/city/hub.py)
    brings; a whole board renumbers the points."""
    if isinstance(msg, list) and msg and "i" not in msg[0]:      # the format before 3 Dec 2026 (A/B runs)
        return [(e["site"], e["updated_at"], now) for e in msg if e.get("updated_at")]
    if isinstance(msg, list):
        numbered.clear()
    entries = msg if isinstance(msg, list) else msg.get("w", [])
    numbered.update((e["i"], e["site"]) for e in entries)
    out = [(e["site"], e["updated_at"], now) for e in entries if e.get("updated_at")]
    if isinstance(msg, dict):
        out += [(numbered[r[0]], msg["t"] + r[1], now) for r in msg.get("n", ()) if r[1] is not None]
    return out


async def _pager(port: int, path: str, until: float, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    await asyncio.sleep(random.random())
    while time.monotonic() < until:
        t0 = time.perf_counter()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        n = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        await reader.readexactly(n)
        el = time.perf_counter() - t0
        out.append(el * 1000)
        await asyncio.sleep(max(0.0, 1.0 - el))
    writer.close()


async def _web_clients(port: int, clients: int, seconds: float, ramp: float, out_file: str, probe: bool) -> None:
    """`clients` live pages. The probe process (`probe`) holds the one page that records
    when each change arrives and the 20 board loaders; the other pages read in another
    process, so that their own reading (a browser each, in a city) does not delay what is
    measured."""
    stats = {"connected": 0, "failed": 0, "closed": 0, "bytes": 0}
    record: list = []
    tasks = [asyncio.create_task(_sse(port, stats, record if probe and i == 0 else None, ramp * i / clients))
             for i in range(clients)]
    t0 = time.monotonic()
    while stats["connected"] + stats["failed"] < clients and time.monotonic() - t0 < ramp + 60:
        await asyncio.sleep(0.2)
    print("ready", json.dumps(stats), flush=True)
    page: list[float] = []
    until = time.monotonic() + seconds
    if probe:
        await asyncio.gather(*(_pager(port, "/api/v1/city", until, page) for _ in range(20)))
    else:
        await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    Path(out_file).write_text(json.dumps({"stats": stats, "page_ms": page, "record": record}))


def web_clients(args) -> int:
    raise_fd_limit()
    # the 2,000 pages' own reading is the rig's cost (each is a browser elsewhere): uvloop
    # reads them for less of the 2 cores the center runs on
    import uvloop
    uvloop.run(_web_clients(args.port, args.clients, args.seconds, args.ramp, args.out, args.probe))
    return 0


def start_pages(port: int, clients: int, seconds: float, ramp: float, tmp: Path, logf, nice: int
                ) -> tuple[list[subprocess.Popen], list[Path], int]:
    """The live pages (two processes: the 1,999 that only read, and the probe), connected;
    returns them, their result files and how many connected."""
    webs, outs, live = [], [], 0
    for n, probe in ((clients - 1, False), (1, True)):
        outs.append(tmp / f"clients-{probe}.json")
        webs.append(subprocess.Popen([sys.executable, __file__, "--web-clients", "--port", str(port),
                                      "--clients", str(n), "--seconds", str(seconds), "--ramp",
                                      str(ramp if not probe else 0), "--out", str(outs[-1]),
                                      *(["--probe"] if probe else [])],
                                     stdout=subprocess.PIPE, stderr=logf, text=True,
                                     # the probe measures: it keeps the center's priority
                                     preexec_fn=None if probe else lambda: os.nice(nice)))
        ready = webs[-1].stdout.readline()
        live += json.loads(ready.split(" ", 1)[1])["connected"] if ready.startswith("ready") else 0
    return webs, outs, live


def page_results(outs: list[Path], written: list[tuple[str, int]]) -> dict:
    """The pages' figures: board requests' p50/p99, and the update lag of the changes
    `written` (site, ms): to the first message showing the point at or after that time."""
    bulk, cl = (json.loads(o.read_text()) for o in outs)
    out: dict = {"city_page_p99_ms": round(pct(cl["page_ms"], 99), 1) if cl["page_ms"] else None,
                 "city_page_p50_ms": round(pct(cl["page_ms"], 50), 1) if cl["page_ms"] else None,
                 "page_samples": len(cl["page_ms"])}
    seen: dict[str, list[tuple[int, float]]] = {}
    for site, upd, recv in cl["record"]:
        seen.setdefault(site, []).append((upd, recv))
    lag = []
    for site, t in written[::max(1, len(written) // 5000)]:
        for upd, recv in seen.get(site, []):
            if upd >= t:
                lag.append(recv - t)
                break
    out["city_update_lag_p50_ms"] = round(pct(lag, 50)) if lag else None
    out["city_update_lag_p99_ms"] = round(pct(lag, 99)) if lag else None
    out["city_update_samples"] = len(lag)
    out["sse_stats"] = {k: bulk["stats"][k] + cl["stats"][k] for k in cl["stats"]}
    return out


# ---------------------------------------------------------------- the writer (steady load)
class Writer(threading.Thread):
    """Appends events to the points' logs as their services would, at `rate` per second."""

    def __init__(self, dbs: list[Path], rows: list[tuple], rate: float, seconds: float, nice: int = 0):
        super().__init__(daemon=True)
        self.nice = nice
        self.dbs, self.rows, self.rate, self.seconds = dbs, rows, rate, seconds
        self.samples: list[tuple[int, int, int]] = []          # (point index, seq, t0 ms)
        self.written = 0

    def run(self) -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)       # this thread only (Linux)
        conns = []
        for db in self.dbs:
            c = sqlite3.connect(db, isolation_level=None)
            c.execute("PRAGMA synchronous=NORMAL")
            conns.append(c)
        seqs = [c.execute("SELECT max(seq) FROM events").fetchone()[0] for c in conns]
        today = dt.date.today().isoformat()
        rng = random.Random(7)
        t0 = time.monotonic()
        while (el := time.monotonic() - t0) < self.seconds:
            due = int(el * self.rate) - self.written
            if due <= 0:
                time.sleep(0.002)
                continue
            for _ in range(due):
                i = rng.randrange(len(conns))
                seqs[i] += 1
                _, _, _, kind, data = self.rows[rng.randrange(len(self.rows))]
                now = int(time.time() * 1000)
                conns[i].execute("INSERT INTO events(seq, day, at, type, data) VALUES (?,?,?,?,?)",
                                 (seqs[i], today, now, kind, data))
                self.samples.append((i, seqs[i], now))
                self.written += 1
        for c in conns:
            c.close()


# ---------------------------------------------------------------- orchestration
def cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and their reaped children."""
    hz, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15])
    return total / hz


def role_pids(pg, roles: dict[str, list]) -> dict[str, list[int]]:
    out = {k: [p.pid for p in v] for k, v in roles.items()}
    try:
        post = int((pg.data / "postmaster.pid").read_text().split()[0])
        kids = [int(d) for d in os.listdir("/proc") if d.isdigit() and _ppid(int(d)) == post]
        out["postgres"] = [post, *kids]
    except (OSError, ValueError):
        pass
    out["bench (writer, orchestration)"] = [os.getpid()]
    return out


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


class CpuShare:
    """Who used the cores during a phase: CPU seconds per role / the phase's seconds."""

    def __init__(self, pg, roles: dict[str, list]):
        self.pg, self.roles = pg, roles
        self.t0 = time.monotonic()
        self.start = {k: cpu_s(v) for k, v in role_pids(pg, roles).items()}

    def result(self) -> dict:
        el = time.monotonic() - self.t0
        now = {k: cpu_s(v) for k, v in role_pids(self.pg, self.roles).items()}
        share = {k: round((now[k] - self.start.get(k, 0)) / el, 2) for k in now}
        return {"cores_used": round(sum(share.values()), 2), **share,
                "load_1min": float(Path("/proc/loadavg").read_text().split()[0])}


def log_digest(db: Path) -> tuple[int, int, str]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    h, n, last = hashlib.md5(), 0, 0
    for seq, data in c.execute("SELECT seq, data FROM events ORDER BY seq"):
        h.update(data)
        n, last = n + 1, seq
    c.close()
    return n, last, h.hexdigest()


def lag_p99_s(dsn: str, writer: Writer, points: list[dict], tmp: Path) -> float | None:
    """p99 of (the center's received_at - the event's time) over what `writer` wrote."""
    import psycopg
    targets = {p["site"]: log_digest(Path(p["db"]))[1] for p in points}
    wait_caught_up(dsn, targets, 600)
    t0, t1 = writer.samples[0][2], writer.samples[-1][2]
    with psycopg.connect(dsn) as conn:
        lags = [float(x) for (x,) in conn.execute(
            "SELECT extract(epoch FROM received_at) * 1000 - at FROM city_events WHERE at BETWEEN %s AND %s "
            "AND day = %s", (t0, t1, dt.date.today()))]
    return round(pct(lags, 99) / 1000, 2) if lags else None


def stored_all(dsn: str) -> dict[str, int]:
    import psycopg
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT site, stored_seq FROM city_sites").fetchall())


def wait_caught_up(dsn: str, targets: dict[str, int], timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = stored_all(dsn)
        if all(s.get(k, 0) >= v for k, v in targets.items()):
            return time.monotonic() - t0
        time.sleep(0.25)
    raise RuntimeError(f"not caught up after {timeout} s: {sum(1 for k, v in targets.items() if stored_all(dsn).get(k, 0) < v)} points behind")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=700)
    ap.add_argument("--steady-s", type=float, default=60)
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--ramp-s", type=float, default=20)
    ap.add_argument("--month-days", type=int, default=30)
    ap.add_argument("--drivers", type=int, default=2)
    ap.add_argument("--rig-nice", type=int, default=0,
                    help="niceness of what stands in for other machines: the points (uplink drivers, the "
                         "writer) and the 1,999 pages that only read; 0 (the default, as in every run in "
                         "bench/README.md until 3 Dec): they compete with the center as equals")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--month-only", action="store_true", help="only section 4 (the day stored without uplinks)")
    ap.add_argument("--copy-aggregates", action="store_true",
                    help="section 4: copy the day's aggregate rows into the month instead of its events (report only)")
    ap.add_argument("--uplink-driver")
    ap.add_argument("--web-clients", action="store_true")
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--port", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--ramp", type=float)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.uplink_driver:
        return uplink_driver(args.uplink_driver)
    if args.web_clients:
        return web_clients(args)
    raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))     # clean up the cluster and processes
    return orchestrate(args)


def store_directly(dsn: str, points: list[dict]) -> None:
    """The points' logs and configs stored as the ingest would, without HTTP (--month-only)."""
    import psycopg
    with psycopg.connect(dsn) as conn:
        for p in points:
            with sqlite3.connect(f"file:{p['db']}?mode=ro", uri=True) as c:
                rows = c.execute("SELECT seq, day, at, type, data FROM events ORDER BY seq").fetchall()
            conn.execute("INSERT INTO city_events (site, seq, day, at, type, data) SELECT %s, * FROM "
                         "unnest(%s::bigint[], %s::date[], %s::bigint[], %s::text[], %s::bytea[])",
                         (p["site"], *map(list, zip(*rows))))
            conn.execute("UPDATE city_sites SET config = %s, stored_seq = %s WHERE site = %s",
                         (Path(p["config"]).read_text(encoding="utf-8"), rows[-1][0], p["site"]))
            conn.commit()


def month_report(dsn: str, yesterday: dt.date, month_days: int, result: dict, copy_aggregates: bool = False) -> None:
    """4. The day copied into `month_days` days inside PostgreSQL, folded into the per-day
    aggregates (qms.city.daily: the ingest-time cost), then the month's reports. With
    `copy_aggregates`, the day's aggregate rows are copied instead of its events: the same
    rows folding the copies would write (the copies keep each event's JSON, so its `at`),
    in seconds instead of half an hour; the fold's cost is then measured on one day."""
    import msgspec
    import psycopg

    from qms.city.daily import aggregate
    from qms.city.report import city_report
    say("building a month of events in PostgreSQL")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM city_events WHERE day <> %s", (yesterday,))
        for k in range(1, 1 if copy_aggregates else month_days):
            conn.execute("INSERT INTO city_events (site, seq, day, at, type, data) "
                         "SELECT site, seq + %s, day - %s, at - %s, type, data FROM city_events WHERE day = %s",
                         (k * 10_000_000, k, k * 86_400_000, yesterday))
        conn.execute("VACUUM ANALYZE city_events")
        result["month_events"] = conn.execute("SELECT count(*) FROM city_events").fetchone()[0]
    day = yesterday.isoformat()
    first = (yesterday - dt.timedelta(days=month_days - 1)).isoformat()
    # baseline in the same run: one day of the whole city folded from its events (no aggregate yet)
    say("whole-city report of one day from the raw events")
    t0 = time.monotonic()
    raw_day = city_report(dsn, day, day)
    result["city_day_report_raw_s"] = round(time.monotonic() - t0, 2)
    say(f"folding the per-day aggregates of {result['month_events']} events")
    t0 = time.monotonic()
    st = aggregate(dsn)
    took = time.monotonic() - t0
    result["daily_aggregate_s"] = round(took, 1)
    result["daily_site_days"] = st["folded"]
    result["daily_ms_per_site_day"] = round(1000 * took / max(1, st["folded"]), 2)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if copy_aggregates:
            cols = ("gen, upto_seq, events, skipped, tz, format, groups, counts, waits, wait_groups, times, "
                    "time_groups")
            for k in range(1, month_days):
                conn.execute(f"INSERT INTO city_daily (site, day, {cols}) SELECT site, day - %s, {cols} "
                             "FROM city_daily WHERE day = %s", (k, yesterday))
            result["month_events"] = conn.execute("SELECT sum(events) FROM city_daily").fetchone()[0]
        conn.execute("VACUUM ANALYZE city_daily")
        result["daily_mb"] = round(conn.execute(
            "SELECT pg_total_relation_size('city_daily')").fetchone()[0] / 2**20, 1)
        result["events_mb"] = round(conn.execute(
            "SELECT pg_total_relation_size('city_events')").fetchone()[0] / 2**20, 1)
        site, center = conn.execute("SELECT site, center FROM city_sites ORDER BY site LIMIT 1").fetchone()
    t0 = time.monotonic()
    agg_day = city_report(dsn, day, day)
    result["city_day_report_s"] = round(time.monotonic() - t0, 2)
    result["day_report_same_as_raw"] = (msgspec.to_builtins(agg_day.rows) == msgspec.to_builtins(raw_day.rows))
    say(f"month report over {result['month_events']} events")
    runs = []
    for _ in range(3):
        t0 = time.monotonic()
        rep = city_report(dsn, first, day)
        runs.append(time.monotonic() - t0)
    result["city_month_report_s"] = round(sorted(runs)[1], 2)
    result["city_month_report_runs_s"] = [round(r, 2) for r in runs]
    result["month_issued"] = rep.total.issued
    for name, kw in (("center", {"center": center}), ("site", {"site": site})):
        t0 = time.monotonic()
        city_report(dsn, first, day, **kw)
        result[f"{name}_month_report_s"] = round(time.monotonic() - t0, 3)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def orchestrate(args) -> int:
    import psycopg

    from qms.city.db import add_site, init_schema
    from qms.city.localpg import LocalPostgres
    from qms.mqtt.broker import free_port

    tmp = Path(tempfile.mkdtemp(prefix="qms-city-bench-"))
    pg = LocalPostgres(fsync=True, settings={"shared_buffers": "512MB", "max_wal_size": "8GB",
                                             "checkpoint_timeout": "30min", "synchronous_commit": "on"}).start()
    procs: list[subprocess.Popen] = []
    result: dict = {"sites": args.sites, "counters": COUNTERS, "rig_nice": args.rig_nice}
    try:
        dsn = pg.create_database("city")
        init_schema(dsn)
        yesterday = dt.date.today() - dt.timedelta(days=1)
        say("simulating template days")
        template, tpl_dbs = make_templates(tmp, yesterday)
        points = []
        for i in range(args.sites):
            d = tmp / "sites" / f"{i:04d}"
            (d / "state").mkdir(parents=True)
            text = site_config(template, i)
            (d / "site.toml").write_text(text, encoding="utf-8")
            db = d / "state" / "service.sqlite"
            shutil.copy(tpl_dbs[i % TEMPLATES], db)
            token = add_site(dsn, f"site-{i:04d}", f"Trung tâm Phục vụ hành chính công phường {i // 4 + 1}")
            points.append({"site": f"site-{i:04d}", "config": str(d / "site.toml"), "db": str(db), "token": token})
        day_events = [log_digest(Path(p["db"]))[1] for p in points]
        total = sum(day_events)
        result["day_events_per_site"] = round(total / args.sites)
        if args.month_only:             # section 4 alone: the day stored straight into PostgreSQL
            store_directly(dsn, points)
            month_report(dsn, yesterday, args.month_days, result, args.copy_aggregates)
            return 0

        ingest_port, public_port = free_port(), free_port()
        logf = open(tmp / "servers.log", "ab")
        for port, flag in ((ingest_port, "--no-public"), (public_port, "--no-ingest")):
            procs.append(subprocess.Popen([sys.executable, "-m", "qms.city", "--dsn", dsn, "serve", "--port", str(port),
                                           flag], stdout=logf, stderr=logf, env={**os.environ, "QMS_LOG": "WARNING"}))
        import httpx
        for port in (ingest_port, public_port):
            for _ in range(300):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)

        # 1. catch-up: everyone offline a day, back at once
        say(f"catch-up of {total} events from {args.sites} points")
        drivers = []
        per = (len(points) + args.drivers - 1) // args.drivers
        t0 = time.monotonic()
        for k in range(args.drivers):
            spec = tmp / f"driver{k}.json"
            spec.write_text(json.dumps({"url": f"http://127.0.0.1:{ingest_port}", "points": points[k * per:(k + 1) * per]}))
            drivers.append(subprocess.Popen([sys.executable, __file__, "--uplink-driver", str(spec)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf,
                                            preexec_fn=lambda: os.nice(args.rig_nice)))
        procs += drivers
        targets = {p["site"]: n for p, n in zip(points, day_events)}
        wait_caught_up(dsn, targets, 3600)
        catch_up = time.monotonic() - t0
        result["catch_up_s"] = round(catch_up, 1)
        result["events_per_s"] = round(total / catch_up)
        say(f"caught up in {catch_up:.1f} s")

        # 2. steady load at 10x the peak hour, with the city page's live clients connected
        with sqlite3.connect(tpl_dbs[0]) as c:
            ats = [a for (a,) in c.execute("SELECT at FROM events")]
            rows = c.execute("SELECT seq, day, at, type, data FROM events").fetchall()
        by_hour: dict[int, int] = {}
        for a in ats:
            by_hour[a // 3_600_000] = by_hour.get(a // 3_600_000, 0) + 1
        peak_hour = max(by_hour.values())
        rate = args.sites * peak_hour * PEAK_FACTOR / 3600
        result["steady_events_per_s"] = round(rate, 1)
        # 2a. steady load alone: the uplinks' lag
        say(f"steady load: {rate:.0f} events/s for {args.steady_s:.0f} s")
        roles = {"ingest": procs[:1], "public view": procs[1:2], "uplink drivers": drivers}
        writer = Writer([Path(p["db"]) for p in points], rows, rate, args.steady_s, args.rig_nice)
        share = CpuShare(pg, roles)
        writer.start()
        writer.join()
        result["cores_steady"] = share.result()
        result["uplink_lag_p99_s"] = lag_p99_s(dsn, writer, points, tmp)
        # 2b. the same load with the city page's live clients connected
        say(f"connecting {args.clients} live city pages")
        webs, outs, live = start_pages(public_port, args.clients, args.steady_s, args.ramp_s, tmp, logf, args.rig_nice)
        procs += webs
        result["live_clients"] = live
        say(f"steady load with the live pages: {rate:.0f} events/s for {args.steady_s:.0f} s")
        writer = Writer([Path(p["db"]) for p in points], rows, rate, args.steady_s, args.rig_nice)
        share = CpuShare(pg, {**roles, "page clients": webs})
        writer.start()
        writer.join()
        result["cores_steady_with_pages"] = share.result()
        for w in webs:
            w.wait(args.steady_s + 120)
        result["uplink_lag_with_pages_p99_s"] = lag_p99_s(dsn, writer, points, tmp)
        result.update(page_results(outs, [(points[i]["site"], t) for i, _seq, t in writer.samples]))

        # 3. nothing lost, nothing doubled: each point's log against the center's copy
        lost = duplicated = differ = 0
        with psycopg.connect(dsn) as conn:
            center = {s: (n, d, m, h) for s, n, d, m, h in conn.execute(
                "SELECT site, count(*), count(DISTINCT seq), max(seq), md5(string_agg(data, ''::bytea ORDER BY seq)) "
                "FROM city_events GROUP BY site")}
        for p in points:
            n, last, h = log_digest(Path(p["db"]))
            cn, cd, cm, ch = center.get(p["site"], (0, 0, 0, ""))
            lost += max(0, n - cd)
            duplicated += (cn - cd) + max(0, cd - n)
            differ += h != ch
        result.update(lost=lost, duplicated=duplicated, logs_differing=differ)
        for d in drivers:
            d.stdin.close()
        for d in drivers:
            d.wait(60)
            for k, v in json.loads(d.stdout.read() or "{}").items():
                result.setdefault("uplink_stats", {})[k] = result.get("uplink_stats", {}).get(k, 0) + v

        # 4. a month's report over the whole city
        month_report(dsn, yesterday, args.month_days, result, args.copy_aggregates)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(result, ensure_ascii=False), flush=True)     # what was measured, even on failure
    return 0


if __name__ == "__main__":
    sys.exit(main())
