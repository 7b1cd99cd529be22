"""Benchmark of `qms report` and of the wait estimate (see bench/README.md, section "report").

    python bench/report.py [--json] [--tickets 100000] [--days 3]

1. seconds_for_100k_tickets: a report (every section, 200 days) over an event log of
   100,000 tickets (issued, called, done or no-show, ~70 % rated: ~370k events), median of
   3 runs. Baseline in the same run: only reading the same events through
   EventStore.events() (one msgspec decode per event into the message classes).
2. wait_mae_minutes / wait_mae_naive_minutes: simulated days of the example ward through the
   real service (qms simulate), mean absolute error of the wait printed on tickets vs the
   actual wait, ours and the naive estimate's, pooled over --days days (different seeds).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mqtt import messages as m  # noqa: E402
from service.config import load_config  # noqa: E402
from service.report_stats import Point, build_report  # noqa: E402
from service.simulate import DayProfile, simulate, working_days  # noqa: E402
from service.store import EventStore  # noqa: E402

CONFIG = Path(__file__).resolve().parent.parent / "config" / "ward-example.toml"


def make_log(cfg, db: Path, tickets: int, days: int) -> tuple[str, str]:
    """A synthetic log: `tickets` tickets spread over `days` working days."""
    rng = random.Random(1)
    store = EventStore(db)
    store.conn.execute("PRAGMA synchronous=OFF")
    services = [s.id for s in cfg.services]
    counters = [c.number for c in cfg.counters]
    dates = working_days(cfg, dt.date(2026, 1, 5), days)
    per_day = tickets // days

    n = 0
    for d in dates:
        day = d.isoformat()
        t0 = int(dt.datetime.combine(d, dt.time(7, 30), cfg.tz).timestamp() * 1000)
        for i in range(per_day if d != dates[-1] else tickets - n):
            n += 1
            at = t0 + i * 60_000
            tid = f"t{n:010d}"
            s = rng.choice(services)
            prio = "nguoi-cao-tuoi" if rng.random() < 0.08 else None
            store.append(day, m.TicketIssued(at=at, ticket_id=tid, number=1000 + i % 999, service=s,
                                             priority=prio, issued_at=at, people_ahead=3, est_wait_s=600))
            call = at + rng.randint(0, 3_600_000)
            c = rng.choice(counters)
            store.append(day, m.TicketCalled(at=call, ticket_id=tid, number=1000, service=s, counter=c,
                                             priority=prio))
            end = call + rng.randint(60_000, 1_200_000)
            if rng.random() < 0.05:
                store.append(day, m.TicketNoShow(at=end, ticket_id=tid, number=1000, counter=c))
                continue
            store.append(day, m.TicketDone(at=end, ticket_id=tid, number=1000, counter=c))
            if rng.random() < 0.7:
                store.append(day, m.RatingSubmitted(at=end + 10_000, ticket_id=tid, counter=c, service=s,
                                                    level=rng.randint(1, 4)))
    store.commit()
    store.close()
    return dates[0].isoformat(), dates[-1].isoformat()


def timed(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=3, help="simulated days for the wait accuracy")
    args = ap.parse_args()
    cfg = load_config(CONFIG)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.sqlite"
        since, until = make_log(cfg, db, args.tickets, 200)
        report = build_report([Point(cfg, db)], since, until)
        assert report.total.issued == args.tickets
        ours = timed(lambda: build_report([Point(cfg, db)], since, until))
        store = EventStore(db)
        base = timed(lambda: sum(1 for _ in store.events(since_day=since, until_day=until)))
        store.close()
        scale = 100_000 / args.tickets
        out["seconds_for_100k_tickets"] = round(ours * scale, 3)
        out["baseline_read_events_seconds_for_100k"] = round(base * scale, 3)
        out["ratio_vs_baseline"] = round(ours / base, 3)

        for name, tickets in (("", 320), ("_busy_day", 400)):
            sim_db = Path(tmp) / f"sim{name}.sqlite"
            t = time.perf_counter()
            res = simulate(cfg, sim_db, working_days(cfg, dt.date(2026, 11, 24), args.days),
                           DayProfile(tickets=tickets), seed=1)
            out[f"simulated_days{name}"] = args.days
            out[f"tickets_per_day{name}"] = tickets
            out[f"wait_mae_minutes{name}"] = res["wait_mae_minutes"]
            out[f"wait_mae_naive_minutes{name}"] = res["wait_mae_naive_minutes"]
            out[f"mae_ratio_vs_naive{name}"] = res["mae_ratio_vs_naive"]
            out[f"simulation_seconds_per_day{name}"] = round((time.perf_counter() - t) / args.days, 2)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:42} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
