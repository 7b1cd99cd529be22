"""`qms simulate`: a day through the real service, its live summary, and the estimate's accuracy."""
from __future__ import annotations

import datetime as dt
import json

from support.site import TEST_CONFIG

from qms.config.site import load_config
from qms.service.app import CentralService
from qms.sim.simulate import DayProfile, DaySimulation, simulate, working_days

DAY = dt.date(2026, 11, 24)


def test_a_day_runs_through_the_real_service_and_the_estimate_beats_the_naive_one(tmp_path):
    cfg = load_config(TEST_CONFIG)
    result = simulate(cfg, tmp_path / "sim.sqlite", [DAY], DayProfile(tickets=320), seed=11)
    assert result["arrivals"] == 320 and result["issued"] + result["refused"] == 320
    assert result["refused"] > 0                 # late arrivals meet the cut-off
    assert result["estimated_tickets"] > 280
    assert 0 < result["wait_mae_minutes"] < result["wait_mae_naive_minutes"]


def test_live_summary_mid_day_and_a_restart_rebuilds_the_same_state(tmp_path):
    cfg = load_config(TEST_CONFIG)
    db = tmp_path / "sim.sqlite"
    sim = DaySimulation(cfg, db, DAY, DayProfile(tickets=320), seed=3)
    noon = int(dt.datetime(2026, 11, 24, 12, 20, tzinfo=cfg.tz).timestamp() * 1000)
    sim.run(until=noon)
    topic = sim.topics.summary
    summary = json.loads(sim.link.retained[topic])
    core = sim.svc.core
    assert summary["waiting"] == sum(len(x) for x in core.lines.values()) > 0
    assert summary["counters_paused"] >= 1 and summary["counters_open"] >= 1     # lunch rotation
    assert summary["longest_wait_s"] > 0 and summary["day"] == DAY.isoformat()
    views = {s.id: core.service_view(s.id, sim.now) for s in cfg.services}
    sim.close()
    again = CentralService(cfg, db, clock=lambda: sim.now)          # replays the log
    for s in cfg.services:
        assert again.core.service_view(s.id, sim.now) == views[s.id]
    assert again.core.estimator.avg_s == core.estimator.avg_s
    again.store.close()


def test_working_days_skip_closed_days():
    cfg = load_config(TEST_CONFIG)                   # Monday to Saturday
    days = working_days(cfg, dt.date(2026, 11, 28), 3)
    assert [d.isoweekday() for d in days] == [6, 1, 2]


def test_cli_prints_the_result_and_refuses_bad_input(tmp_path, capsys):
    from qms.cli.main import main
    db = tmp_path / "cli.sqlite"
    assert main(["simulate", "-c", str(TEST_CONFIG), "--db", str(db), "--day", "2026-11-24",
                 "--tickets", "60"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["issued"] > 50 and out["db"] == str(db)
    assert main(["simulate", "-c", str(TEST_CONFIG), "--db", str(db), "--day", "24/11/2026"]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["simulate", "-c", str(TEST_CONFIG), "--db", str(db), "--tickets", "-5"]) == 2


def test_a_clerk_with_nobody_to_serve_goes_to_lunch_at_the_time(tmp_path):
    cfg = load_config(TEST_CONFIG)                   # breaks: 1, 3, 5 at 11:30; 2, 4, 6 at 12:15
    sim = DaySimulation(cfg, tmp_path / "sim.sqlite", DAY, DayProfile(tickets=10), seed=5)
    at = int(dt.datetime(2026, 11, 24, 11, 31, tzinfo=cfg.tz).timestamp() * 1000)
    sim.run(until=at)                                # a quiet morning: every counter is idle
    counters = sim.svc.core.counters
    assert [n for n, c in counters.items() if c.paused] == [1, 3, 5]
    assert all(abs(counters[n].paused_at - (at - 60_000)) < 1000 for n in (1, 3, 5))
    sim.close()


def test_clerks_who_eat_without_pause_or_skip_lunch_do_not_fool_the_estimate(tmp_path):
    """Breaks taken without pressing pause, or skipped: the configured rotation is only a
    plan. The estimate used to send every counter on lunch at any later hour (ratios of
    3.3 and 4.6 against the naive estimate on these days)."""
    from qms.sim.simulate import scenario
    cfg = load_config(TEST_CONFIG)
    for name in ("breaks_no_pause", "breaks_skipped"):
        sim = DaySimulation(cfg, tmp_path / f"{name}.sqlite", DAY, scenario(name), seed=5).run()
        pauses = [e for e in sim.svc.store.events(since_day=DAY.isoformat(), until_day=DAY.isoformat())
                  if type(e).__name__ == "CounterPaused"]
        sim.close()
        assert pauses == []                     # nobody pressed pause
        # three days pooled (a single day's ratio swings by +-0.1); seeds not the bench's
        days = working_days(cfg, DAY, 3)
        result = simulate(cfg, tmp_path / f"{name}-acc.sqlite", days, scenario(name), seed=5)
        assert result["mae_ratio_vs_naive"] < 0.6, name


def test_scenarios_late_opening_meeting_and_closing_early_happen(tmp_path):
    from qms.sim.simulate import scenario
    cfg = load_config(TEST_CONFIG)
    for name, reason in (("meeting", "Họp"), ("closing_early", "Nghỉ")):
        sim = DaySimulation(cfg, tmp_path / f"{name}.sqlite", DAY, scenario(name), seed=2).run()
        reasons = [e.reason for e in sim.svc.store.events(since_day=DAY.isoformat(), until_day=DAY.isoformat())
                   if type(e).__name__ == "CounterPaused"]
        sim.close()
        assert reason in reasons, name
    sim = DaySimulation(cfg, tmp_path / "late.sqlite", DAY, scenario("late_opening"), seed=2).run()
    first = {}
    for e in sim.svc.store.events(since_day=DAY.isoformat(), until_day=DAY.isoformat()):
        if type(e).__name__ == "TicketCalled":
            first.setdefault(e.counter, e.at)
    sim.close()
    opening = int(dt.datetime(2026, 11, 24, 7, 30, tzinfo=cfg.tz).timestamp() * 1000)
    assert first[2] - opening >= 40 * 60_000 and first[1] - opening < 10 * 60_000
