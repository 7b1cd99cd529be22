"""The city's public view alone: board requests and live updates under 2,000 live pages.

bench/city.py measures the whole tier at once (uplinks, ingest, PostgreSQL and the public
view on the same 2 cores), so its page figures move with everything else. This one keeps
only what the public view itself does: a real PostgreSQL, `python -m qms.city serve
--no-ingest`, and a writer that changes the live state of `--changes-per-s` points a second
(spread over `--sites`) with the same statement shape the ingest's `city_store()` ends with
(UPDATE ... live, pg_notify). The clients are bench/city.py's: 2,000 live pages (board,
then the stream from its version), one probe page recording when each change arrives, 20
board loaders once a second each.

    python bench/city_page.py [--sites 700] [--changes-per-s 500] [--clients 2000] [--seconds 60] [--json]
                              [--server-from /opt/qms-before]

Prints one JSON line: page p50/p99 (ms), update lag p50/p99 (ms, from the writer's commit to
the probe page), bytes to the pages, CPU share of the public view and of the page clients.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

SERVICES = [("chung-thuc", "Chứng thực"), ("ho-tich", "Hộ tịch"), ("nhan-ket-qua", "Nhận kết quả"),
            ("dat-dai", "Đất đai"), ("kinh-doanh", "Đăng ký kinh doanh")]


def live_state(rng: random.Random, numbers: list[int], name: str, now_ms: int) -> str:
    for k in range(len(numbers)):
        if rng.random() < 0.4:
            numbers[k] = max(0, numbers[k] + rng.choice((-1, 1)))
    return json.dumps({"at": now_ms, "name": name, "address": f"Số {len(name)} đường Lê Lợi",
                       "services": [{"id": sid, "name_vi": vi, "name_en": sid, "waiting": n, "est_wait_s": n * 240,
                                     "open": True} for (sid, vi), n in zip(SERVICES, numbers)]},
                      ensure_ascii=False)


class LiveWriter(threading.Thread):
    """`rate` live-state changes a second, in batches every 50 ms, as the ingest's commits."""

    def __init__(self, dsn: str, sites: list[str], rate: float, seconds: float):
        super().__init__(daemon=True)
        self.dsn, self.sites, self.rate, self.seconds = dsn, sites, rate, seconds
        self.samples: list[tuple[str, int]] = []           # (site, at ms) of every change written

    def run(self) -> None:
        import psycopg
        rng = random.Random(3)
        numbers = {s: [rng.randrange(10) for _ in SERVICES] for s in self.sites}
        done = 0
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            if not self.seconds:                  # every point once: the board before the clients come
                self.write(conn, rng, numbers, self.sites)
                return
            t0 = time.monotonic()
            while (el := time.monotonic() - t0) < self.seconds:
                due = int(el * self.rate) - done
                if due <= 0:
                    time.sleep(0.05)
                    continue
                picked = rng.sample(self.sites, min(due, len(self.sites)))
                self.write(conn, rng, numbers, picked)
                done += len(picked)

    def write(self, conn, rng: random.Random, numbers: dict, picked: list[str]) -> None:
        now = int(time.time() * 1000)
        lives = [live_state(rng, numbers[s], f"Điểm tiếp nhận {s}", now) for s in picked]
        conn.execute("UPDATE city_sites c SET live = v.live::jsonb, last_seen = now() FROM "
                     "unnest(%s::text[], %s::text[]) AS v(site, live) WHERE c.site = v.site", (picked, lives))
        conn.execute("SELECT pg_notify('city_live', s) FROM unnest(%s::text[]) s", (picked,))
        self.samples += [(s, now) for s in picked]


def main() -> int:
    from city import CpuShare, page_results, raise_fd_limit, say, start_pages

    from qms.city.db import add_site, init_schema
    from qms.city.localpg import LocalPostgres
    from qms.mqtt.broker import free_port

    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=700)
    ap.add_argument("--changes-per-s", type=float, default=500)
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--ramp-s", type=float, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--server-from", help="run the public view from this checkout (an A/B against older code)")
    args = ap.parse_args()
    raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="qms-city-page-"))
    pg = LocalPostgres(fsync=True).start()
    procs: list[subprocess.Popen] = []
    result: dict = {"server_from": args.server_from or "this checkout", "sites": args.sites, "changes_per_s": args.changes_per_s, "clients": args.clients}
    try:
        dsn = pg.create_database("city")
        init_schema(dsn)
        sites = [f"site-{i:04d}" for i in range(args.sites)]
        for i, s in enumerate(sites):
            add_site(dsn, s, f"Trung tâm Phục vụ hành chính công phường {i // 4 + 1}")
        warm = LiveWriter(dsn, sites, 0, 0)          # every point has a live state
        warm.run()
        port = free_port()
        logf = open(tmp / "server.log", "ab")
        # (-m puts the working directory first on the path: the checkout's own code)
        view = subprocess.Popen([sys.executable, "-m", "qms.city", "--dsn", dsn, "serve", "--port", str(port),
                                 "--no-ingest"], cwd=args.server_from or ROOT, stdout=logf, stderr=logf, env={**os.environ, "QMS_LOG": "WARNING", **(
                                    {"PYTHONPATH": args.server_from} if args.server_from else {})})
        procs.append(view)
        import httpx
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        say(f"connecting {args.clients} live pages")
        webs, outs, live = start_pages(port, args.clients, args.seconds, args.ramp_s, tmp, logf, 0)
        procs += webs
        result["live_clients"] = live
        say(f"{args.changes_per_s:.0f} changes/s for {args.seconds:.0f} s")
        writer = LiveWriter(dsn, sites, args.changes_per_s, args.seconds)
        share = CpuShare(pg, {"public view": [view], "page clients": webs})
        writer.start()
        writer.join()
        result["cores"] = share.result()
        for w in webs:
            w.wait(args.seconds + 120)
        result.update(page_results(outs, writer.samples))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        pg.stop()
        print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
