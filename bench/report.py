"""Benchmark of `qms report` and of the wait estimate (see bench/README.md, section "report").

    python bench/report.py [--json] [--tickets 100000] [--days 3] [--seed 1] [--blocks 1]
                           [--accuracy-only]

1. seconds_for_100k_tickets: a report (every section, 200 days) over an event log of
   100,000 tickets (issued, called, done or no-show, ~70 % rated: ~370k events), median of
   3 runs. Baseline in the same run: only reading the same events through
   EventStore.events() (one msgspec decode per event into the message classes).
2. wait_mae_minutes / wait_mae_naive_minutes: simulated days of the example ward through the
   real service (qms simulate), mean absolute error of the wait printed on tickets vs the
   actual wait, ours and the naive estimate's, pooled over --days days (different seeds).
   With --blocks N: N runs of --days days each (seeds --seed, --seed + days, ...: held-out
   seeds besides the default 1-3), pooled (total error / total naive error), and the ratio
   of each block.
3. Per scenario (qms/sim/simulate.py `scenario`: breaks taken as pauses, without pause,
   skipped, mixed; a late opening; counters closing early; a meeting; a busy Monday), the
   same: mae_ratio_vs_naive_<scenario>, and wait_mae_ratio_worst, the worst of them.
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

from qms.config.site import load_config  # noqa: E402
from qms.protocol import messages as m  # noqa: E402
from qms.reports.stats import Point, build_report  # noqa: E402
from qms.service.store import EventStore  # noqa: E402
from qms.sim.simulate import SCENARIOS, DayProfile, scenario, simulate, working_days  # noqa: E402

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
    ap.add_argument("--seed", type=int, default=1, help="seed of the first simulated day")
    ap.add_argument("--blocks", type=int, default=1, help="runs of --days days, pooled")
    ap.add_argument("--accuracy-only", action="store_true", help="skip the 100k-ticket report")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated scenarios (qms/sim/simulate.py SCENARIOS); empty: none")
    args = ap.parse_args()
    cfg = load_config(CONFIG)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.accuracy_only:
            report_speed(cfg, Path(tmp), args.tickets, out)
        for name, tickets in (("", 320), ("_busy_day", 400)):
            wait_accuracy(cfg, Path(tmp), name, DayProfile(tickets=tickets), args, out)
        names = [x for x in args.scenarios.split(",") if x]
        for name in names:
            wait_accuracy(cfg, Path(tmp), f"_{name}", scenario(name), args, out)
        if names:
            out["wait_mae_ratio_worst"] = max(out[f"mae_ratio_vs_naive_{n}"] for n in names)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:42} {v}")
    return 0


def report_speed(cfg, tmp: Path, tickets: int, out: dict) -> None:
    """A full report over a synthetic log of `tickets` tickets; baseline: only reading it."""
    db = tmp / "big.sqlite"
    since, until = make_log(cfg, db, tickets, 200)
    report = build_report([Point(cfg, db)], since, until)
    assert report.total.issued == tickets
    ours = timed(lambda: build_report([Point(cfg, db)], since, until))
    store = EventStore(db)
    base = timed(lambda: sum(1 for _ in store.events(since_day=since, until_day=until)))
    store.close()
    scale = 100_000 / tickets
    out["seconds_for_100k_tickets"] = round(ours * scale, 3)
    out["baseline_read_events_seconds_for_100k"] = round(base * scale, 3)
    out["ratio_vs_baseline"] = round(ours / base, 3)


def wait_accuracy(cfg, tmp: Path, name: str, profile: DayProfile, args, out: dict) -> None:
    """Simulated days through the real service; ours and the naive estimate's MAE, pooled
    over the blocks by ticket (each block is its own event log, so its own past days)."""
    t = time.perf_counter()
    n = ours = naive = 0.0
    ratios = []
    for b in range(args.blocks):
        res = simulate(cfg, tmp / f"sim{name}{b}.sqlite", working_days(cfg, dt.date(2026, 11, 24), args.days),
                       profile, seed=args.seed + b * args.days)
        n += res["estimated_tickets"]
        ours += res["wait_mae_minutes"] * res["estimated_tickets"]
        naive += res["wait_mae_naive_minutes"] * res["estimated_tickets"]
        ratios.append(res["mae_ratio_vs_naive"])
    out[f"simulated_days{name}"] = args.days * args.blocks
    out[f"tickets_per_day{name}"] = profile.tickets
    out[f"wait_mae_minutes{name}"] = round(ours / n, 2)
    out[f"wait_mae_naive_minutes{name}"] = round(naive / n, 2)
    out[f"mae_ratio_vs_naive{name}"] = ratios[0] if args.blocks == 1 else round(ours / naive, 3)
    if args.blocks > 1:
        out[f"mae_ratio_per_block{name}"] = ratios
    out[f"simulation_seconds_per_day{name}"] = round((time.perf_counter() - t) / (args.days * args.blocks), 2)


if __name__ == "__main__":
    sys.exit(main())
