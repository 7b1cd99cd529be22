"""The wait estimator on the real queue core: what it knows, and that a replay rebuilds it."""
from __future__ import annotations

import math

from qms.config.site import parse_config
from qms.core.queue import QueueCore

BASE = 1795485600000          # 2026-11-24 09:00 +07:00, a Tuesday
MIN = 60_000

CONFIG = """
[site]
id = "t"
name = "Điểm thử"
center = "Trung tâm thử"
[hours]
open = "08:00"
close = "17:00"
[[services]]
id = "a"
code = 1
name_vi = "A"
name_en = "A"
avg_service_minutes = 10
[[services]]
id = "b"
code = 2
name_vi = "B"
name_en = "B"
avg_service_minutes = 5
[[services]]
id = "lonely"
code = 3
name_vi = "Không quầy"
name_en = "No counter"
[[counters]]
number = 1
services = ["a"]
[[counters]]
number = 2
services = ["b", "a"]
"""


def _core():
    return QueueCore(parse_config(CONFIG))


def _do(core, events):
    for e in events:
        core.apply(e)
    return events


def _open(core, now, *counters):
    for n in counters:               # "next" on an empty queue leaves no trace; resume does
        _do(core, core.resume(now, n))


def _issue(core, now, service, n, priority=None):
    return _do(core, core.issue(now, service, priority, f"ticket-{service}-{n:04d}"))[0]


def test_wait_is_people_ahead_times_service_time_over_counters():
    core = _core()
    _open(core, BASE, 1)                           # counter 1 opens, nobody waiting
    for i in range(6):
        _issue(core, BASE, "a", i)
    # only counter 1 is open: 6 ahead x 10 min, the first after a counter's reaction time
    est = core.estimator.estimate(core, "a", 6, False, BASE)
    assert 59 * MIN / 1000 <= est <= 61 * MIN / 1000
    _do(core, core.next(BASE, 2))                  # counter 2 opens and takes one of "a"
    est2 = core.estimator.estimate(core, "a", 5, False, BASE)
    assert est2 < est * 0.7                        # two counters now


def test_a_shared_counter_serves_its_first_service_first():
    core = _core()
    _open(core, BASE, 1, 2)
    for i in range(4):
        _issue(core, BASE, "b", i)                 # counter 2 has 20 min of "b" to serve
    est_a = core.estimator.estimate(core, "a", 0, False, BASE)
    est_b = core.estimator.estimate(core, "b", 4, False, BASE)
    assert est_a < 60                               # counter 1 is free for "a"
    assert 19 * 60 <= est_b <= 21 * 60


def test_before_opening_the_wait_counts_from_opening_time():
    core = _core()
    early = BASE - 75 * MIN                         # 07:45, doors open at 08:00
    t = _issue(core, early, "a", 1)
    assert 15 * 60 - 5 <= t.est_wait_s <= 15 * 60 + 60


def test_a_paused_counter_delays_the_wait_and_the_pause_length_is_learned():
    core = _core()
    _open(core, BASE, 1, 2)
    _do(core, core.pause(BASE, 1, "Nghỉ trưa"))
    _do(core, core.pause(BASE, 2, "Nghỉ trưa"))
    est = core.estimator.estimate(core, "a", 0, False, BASE)
    assert 25 * 60 <= est <= 35 * 60                # back after a typical pause
    _do(core, core.resume(BASE + 10 * MIN, 2))
    _issue(core, BASE + 10 * MIN, "b", 1)
    _do(core, core.next(BASE + 10 * MIN, 2))        # a call while 1 is away: its pause is seen
    _do(core, core.resume(BASE + 50 * MIN, 1))
    _issue(core, BASE + 50 * MIN, "a", 1)
    _do(core, core.next(BASE + 50 * MIN, 1))        # 1's first call after it teaches the length
    assert core.estimator.pause_guess_s() > 35 * 60


def test_learned_service_time_replaces_the_configured_one():
    core = _core()
    _open(core, BASE, 1)
    now = BASE
    for i in range(12):                             # "a" really takes 20 minutes
        _issue(core, now, "a", i)
        _do(core, core.next(now, 1))
        now += 20 * MIN
    assert core.estimator.avg_s["a"] > 17 * 60


def test_service_without_counters_and_priority_do_not_crash():
    core = _core()
    t = _issue(core, BASE, "lonely", 1)
    assert t.est_wait_s > 0
    _do(core, core.next(BASE, 1))
    for i in range(3):
        _issue(core, BASE, "a", i)
    p = _issue(core, BASE, "a", 9, priority=None)
    assert p.est_wait_s > 0


def test_replay_of_the_events_rebuilds_the_same_estimates():
    core = _core()
    log = []
    now = BASE
    log += _do(core, core.resume(now, 1))
    for i in range(8):
        log += core_issue(core, now, "a" if i % 3 else "b", i)
        now += 3 * MIN
        if i % 2:
            log += _do(core, core.next(now, 1 + i % 2))
    log += _do(core, core.pause(now, 2, "họp"))
    again = _core()
    for e in log:
        again.apply(e)
    for s in ("a", "b", "lonely"):
        assert again.service_view(s, now)["est_wait_s"] == core.service_view(s, now)["est_wait_s"]
    assert again.estimator.avg_s == core.estimator.avg_s


def core_issue(core, now, service, n):
    return _do(core, core.issue(now, service, None, f"ticket-{service}-{n:04d}"))


def test_a_configured_break_is_planned_for():
    # counter 1 alone serves "a"; with its lunch due at 09:30 a ticket with 4 ahead waits 45 min more
    plain, lunch = _core(), QueueCore(parse_config(CONFIG.replace("[[counters]]", """[[hours.breaks]]
start = "09:30"
minutes = 45
counters = [1]

[[counters]]""", 1), "t"))
    for core in (plain, lunch):
        _open(core, BASE, 1)
        for i in range(4):
            _issue(core, BASE, "a", i)
    a = plain.estimator.estimate(plain, "a", 4, False, BASE)
    b = lunch.estimator.estimate(lunch, "a", 4, False, BASE)
    assert 44 * 60 <= b - a <= 46 * 60
    # once the counter is back from its break, nothing more is planned
    _do(lunch, lunch.pause(BASE + 40 * MIN, 1, "Nghỉ trưa"))
    _do(lunch, lunch.resume(BASE + 85 * MIN, 1))
    c = lunch.estimator.estimate(lunch, "a", 4, False, BASE + 85 * MIN)
    d = plain.estimator.estimate(plain, "a", 4, False, BASE + 85 * MIN)
    assert abs(c - d) <= 60


def test_service_times_of_past_days_seed_the_estimate():
    from qms.core.estimate import service_times_from_history
    from qms.protocol import messages as m
    events = []
    for i in range(25):
        events.append(m.TicketCalled(at=i * 1_000_000, ticket_id=f"t{i}", number=1000 + i, service="a", counter=1))
        events.append(m.TicketDone(at=i * 1_000_000 + 300_000, ticket_id=f"t{i}", number=1000 + i, counter=1))
    assert service_times_from_history(events).means == {"a": 300.0}
    assert service_times_from_history(events[:20]).means == {}    # too few to trust
    core = _core()
    _open(core, BASE, 1)
    for i in range(3):
        _issue(core, BASE, "a", i)
    before = core.estimator.estimate(core, "a", 3, False, BASE)
    core.estimator.learn_history(service_times_from_history(events))
    after = core.estimator.estimate(core, "a", 3, False, BASE + 1)
    assert after < before * 0.6                                    # 5 min instead of 10


def test_the_look_ahead_follows_the_aging_rule():
    """Counter 2 prefers "b"; an "a" ticket past the aging limit goes before the b line."""
    def core_with(aging: int) -> QueueCore:
        core = QueueCore(parse_config(CONFIG.replace("[[services]]", f"[queue]\naging_minutes = {aging}\n\n[[services]]", 1), "t"))
        _open(core, BASE - 60 * MIN, 2)                      # counter 1 never opens today
        _issue(core, BASE - 50 * MIN, "a", 0)                # waiting 50 minutes at BASE
        for i in range(6):
            _issue(core, BASE - 5 * MIN, "b", i)
        return core
    plain, aging = core_with(0), core_with(40)
    old_plain = plain.ticket_view(plain.tickets["ticket-a-0000"], BASE)["est_wait_s"]
    old_aging = aging.ticket_view(aging.tickets["ticket-a-0000"], BASE)["est_wait_s"]
    assert old_plain >= 6 * 5 * 60 * 0.9        # behind six "b" of 5 minutes
    assert old_aging <= 60                      # next at counter 2


def test_a_new_ticket_is_expected_to_age_past_the_preferred_line():
    """Counter 2 prefers "b", which keeps coming faster than it is served. A new "a" ticket
    waits for the b tickets issued before it only: once it has waited past the aging limit
    it goes before every b that came after it (the look-ahead ages the new ticket too)."""
    def estimate(aging: int) -> float:
        core = QueueCore(parse_config(CONFIG.replace("[[services]]", f"[queue]\naging_minutes = {aging}\n\n[[services]]", 1), "t"))
        _open(core, BASE - 60 * MIN, 2)                      # counter 1 never opens today
        for i in range(12):                                  # one b every 2.5 min, none served
            _issue(core, BASE - 30 * MIN + i * 150_000, "b", i)
        return core.estimator.estimate(core, "a", 0, False, BASE) / 60
    assert estimate(0) >= 100                    # strict preference: after 12 b and 12 more coming
    assert 12 * 5 <= estimate(30) <= 12 * 5 + 3  # after the 12 b issued before it


def test_a_long_running_service_is_expected_to_run_longer_still():
    from qms.core.service_times import time_left_s
    median = 600 * math.exp(-0.5 ** 2 / 2)             # of log-normal times of mean 600, CV 0.5
    assert abs(time_left_s(600, 0) - median) < 1       # the median, not the mean: |error| counts
    assert time_left_s(600, 300) > median - 300        # more than median - elapsed
    assert time_left_s(600, 1200) > 60                 # past the mean: still some time left
    assert time_left_s(600, 1200) < time_left_s(600, 0)


def test_the_service_time_is_the_days_mean_with_the_prior_counting_as_a_few_services():
    from qms.core.service_times import PRIOR_WEIGHT
    core = _core()
    _open(core, BASE, 1)
    now = BASE
    durations = [5] * 20 + [25]                    # minutes; "a" is configured at 10
    for i in range(len(durations) + 1):
        _issue(core, now, "a", i)
    for d in [0] + durations:                      # the first "next" only calls
        now += d * MIN
        _do(core, core.next(now, 1))
    expected = (PRIOR_WEIGHT * 10 + sum(durations)) / (PRIOR_WEIGHT + len(durations)) * 60
    assert abs(core.estimator.avg_s["a"] - expected) < 1
    # one long service after twenty short ones moves the mean a little, not by a fifth
    assert core.estimator.avg_s["a"] < 7 * 60


def test_past_days_count_by_how_many_services_they_saw():
    from qms.core.past_days import PastDays
    from qms.core.service_times import HISTORY_WEIGHT_MAX
    core = _core()
    core.estimator.learn_history(PastDays({"a": 300.0, "b": 600.0}, {"a": 500, "b": 20}))
    _open(core, BASE, 1)
    _issue(core, BASE, "a", 0)
    _issue(core, BASE, "b", 0)
    _do(core, core.next(BASE, 1))
    _do(core, core.next(BASE + 15 * MIN, 1))       # one "a" of 15 minutes
    n = HISTORY_WEIGHT_MAX                          # a week of services counts as this many
    assert abs(core.estimator.avg_s["a"] - (n * 300 + 900) / (n + 1)) < 1
    _open(core, BASE, 2)                           # "b" from 20 past services: as 20 of today's
    _issue(core, BASE, "b", 1)
    _do(core, core.next(BASE, 2))
    _do(core, core.next(BASE + 20 * MIN, 2))
    assert abs(core.estimator.avg_s["b"] - (20 * 600 + 1200) / 21) < 1


def test_a_quiet_stream_of_priority_tickets_is_projected_within_a_typical_wait():
    from qms.core.arrivals import whole
    assert whole(0.49) == 0 and whole(0.5) == 1 and whole(1.7) == 2

    def wait(recent_priority: bool) -> int:
        core = QueueCore(parse_config(CONFIG + PRIORITY_CLASS))
        _open(core, BASE - 40 * MIN, 1)
        # one ticket in the last half hour, served: a priority one, or not
        _issue(core, BASE - 20 * MIN, "a", 99, priority="nguoi-cao-tuoi" if recent_priority else None)
        _do(core, core.next(BASE - 20 * MIN, 1))
        _do(core, core.next(BASE - 12 * MIN, 1))
        for i in range(4):
            _issue(core, BASE - 5 * MIN, "a", i)
        _do(core, core.next(BASE - 1 * MIN, 1))
        return core.estimator.estimate(core, "a", 3, False, BASE)
    # about one an hour: the next is expected within the 40 minutes this ticket waits, and
    # it goes first (truncating the expected count would never project it: it stays below 1)
    assert wait(True) - wait(False) >= 8 * 60


PRIORITY_CLASS = """
[[priority_classes]]
id = "nguoi-cao-tuoi"
name_vi = "Người cao tuổi"
name_en = "Elderly"
"""


def test_a_batch_shares_one_run_but_a_later_batch_sees_the_calls_since(monkeypatch):
    import qms.core.estimate as E
    runs = []
    real_run = E._Lookahead.run

    def counted(self):
        runs.append(self.now)
        return real_run(self)
    core = _core()
    _open(core, BASE, 1)
    for i in range(5):
        _issue(core, BASE, "a", i)
    monkeypatch.setattr(E._Lookahead, "run", counted)
    with core.estimator.batch():                   # a burst: twenty tickets at once, one run
        for i in range(5, 25):
            _issue(core, BASE + 5_000, "a", i)
    assert len(runs) == 1
    _do(core, core.next(BASE + 20_000, 1))         # a call 20 s later, then another batch
    with core.estimator.batch():
        later = core.estimator.estimate(core, "a", 24, False, BASE + 30_000)
    assert len(runs) == 2                          # a run of the queue as it is now...
    core.estimator._memo = core.estimator._memo_key = None
    assert later == core.estimator.estimate(core, "a", 24, False, BASE + 30_000)   # ...exactly


def test_counters_are_expected_as_late_after_opening_as_on_past_days():
    from qms.core.estimate import service_times_from_history
    from qms.protocol import messages as m
    events, n = [], 0
    for day, late in ((0, 6), (1, 4), (2, 8)):      # counter 1 starts 6, 4, 8 minutes late
        opening = BASE - 60 * MIN + (day - 3) * 24 * 60 * MIN     # 08:00 on past days
        for k in range(3):                           # then calls every 10 minutes
            n += 1
            events.append(m.TicketCalled(at=opening + (late + 10 * k) * MIN, ticket_id=f"t{n}",
                                         number=1000 + n, service="a", counter=1))
    past = service_times_from_history(events)
    assert [at for _, at in past.first_calls] == [events[i].at for i in (0, 3, 6)]
    plain, learned = _core(), _core()
    learned.estimator.learn_history(past)
    early = BASE - 75 * MIN                          # 07:45, doors open at 08:00
    a, b = (_issue(core, early, "a", 1).est_wait_s for core in (plain, learned))
    assert 5 * 60 <= b - a <= 7 * 60                 # the median start: 6 minutes late


def test_projected_tickets_arrive_whole_and_keep_the_priority_share():
    from qms.core.arrivals import whole
    from qms.core.estimate import _Lookahead
    core = QueueCore(parse_config(CONFIG + PRIORITY_CLASS))
    for i in range(12):                               # the last half hour: 12 "a", a quarter priority
        _issue(core, BASE - 29 * MIN + i * 2 * MIN, "a", i, priority="nguoi-cao-tuoi" if i % 4 == 0 else None)
    run = _Lookahead(core.estimator, core, BASE)
    waiting = run.prio["a"], run.normal["a"]
    k = 0
    while run.next_at["a"] < 3 * 3600:                # each projected ticket as it comes
        t = run.next_at["a"]
        run._add_arrivals(t - 1)
        assert run.prio["a"] + run.normal["a"] - sum(waiting) == k      # not yet
        run._add_arrivals(t)
        k += 1
        assert run.prio["a"] + run.normal["a"] - sum(waiting) == k == whole(run.curves["a"].at(t))
        assert run.prio["a"] - waiting[0] == whole(run.curves["a"].at(t) * 0.25)
    assert k >= 5                                     # 12 in the last half hour, fading


# ---------------------------------------------------------------- breaks bound to their windows
# The example ward at 14:00 local (site time zone Asia/Ho_Chi_Minh): lunch in rotation,
# counters 1, 3, 5 at 11:30 and 2, 4, 6 at 12:15, 45 minutes each. Hộ tịch is served at
# counters 2 and 3.
def _ward():
    from pathlib import Path

    from qms.config.site import load_config
    return QueueCore(load_config(Path(__file__).resolve().parent.parent / "config" / "ward-example.toml"))


def _at(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return BASE + ((h - 9) * 60 + m) * MIN        # BASE is 09:00 local


def test_at_14h_breaks_whose_window_passed_are_over():
    core = _ward()
    first = _do(core, core.issue(_at("14:00"), "ho-tich", None, "ht-1"))[0]
    assert first.people_ahead == 0
    assert first.est_wait_s < 3 * 60              # was 2,700 s: both breaks counted as still to come
    assert core.service_view("chung-thuc", _at("14:00"))["away"] is None


def test_at_14h_a_busy_counter_and_an_idle_one_do_not_add_a_lunch():
    core = _ward()
    _open(core, _at("07:30"), 2, 3)
    _do(core, core.issue(_at("14:00"), "ho-tich", None, "ht-1"))
    _do(core, core.next(_at("14:00"), 2))           # counter 2 serves the first one
    menu = core.service_view("ho-tich", _at("14:01"))      # what the kiosk menu shows
    second = _do(core, core.issue(_at("14:01"), "ho-tich", None, "ht-2"))[0]
    assert second.people_ahead == 0
    assert second.est_wait_s < 3 * 60             # was 3,229 s: counter 3 is free
    assert menu["est_wait_s"] == second.est_wait_s  # the menu and the ticket agree
    view = core.ticket_view(core.tickets["ht-2"], _at("14:01"))
    assert view["away"] is None and view["est_wait_s"] == second.est_wait_s


def test_0_ahead_and_a_long_wait_only_when_every_counter_is_away_and_then_it_says_why():
    core = _ward()
    _open(core, _at("07:30"), 3)                    # counter 2 not staffed today
    _do(core, core.pause(_at("11:31"), 3, "Nghỉ trưa"))
    t = _do(core, core.issue(_at("11:40"), "ho-tich", None, "ht-1"))[0]
    assert t.people_ahead == 0
    assert 35 * 60 <= t.est_wait_s <= 37 * 60     # back at 12:16
    away = core.ticket_view(core.tickets["ht-1"], _at("11:40"))["away"]
    assert away["reason"] == "break" and away["counters"] == [3]
    assert away["until"] == _at("12:16")
    assert core.service_view("ho-tich", _at("11:40"))["away"] == away


def test_a_clerk_who_eats_without_pressing_pause_is_away_until_the_break_ends():
    core = _ward()
    _open(core, _at("07:30"), 3)
    _do(core, core.issue(_at("11:20"), "ho-tich", None, "ht-1"))
    _do(core, core.next(_at("11:20"), 3))
    _do(core, core.done(_at("11:33"), 3))           # finished after 11:30, calls nobody
    t = _do(core, core.issue(_at("11:40"), "ho-tich", None, "ht-2"))[0]
    assert 37 * 60 <= t.est_wait_s <= 39 * 60     # back at 12:18
    assert core.ticket_view(core.tickets["ht-2"], _at("11:40"))["away"]["reason"] == "break"
    # after the window (11:30-12:15) the break is over whatever happened
    assert core.ticket_view(core.tickets["ht-2"], _at("12:20"))["est_wait_s"] < 60


def test_a_counter_that_calls_inside_its_break_window_is_not_on_break():
    core = _ward()
    _open(core, _at("07:30"), 3)
    _do(core, core.issue(_at("11:34"), "ho-tich", None, "ht-1"))
    _do(core, core.next(_at("11:35"), 3))           # working through lunch
    _do(core, core.done(_at("11:38"), 3))
    t = _do(core, core.issue(_at("11:40"), "ho-tich", None, "ht-2"))[0]
    assert t.est_wait_s < 3 * 60
    assert core.ticket_view(core.tickets["ht-2"], _at("11:40"))["away"] is None


def test_a_break_still_to_come_is_planned_until_its_window_ends():
    core = _ward()
    _open(core, _at("07:30"), 3)
    _do(core, core.issue(_at("11:00"), "ho-tich", None, "ht-1"))
    _do(core, core.next(_at("11:00"), 3))           # serving until ~11:08, then lunch at 11:30
    for i in range(3):
        _do(core, core.issue(_at("11:00"), "ho-tich", None, f"ht-w{i}"))
    est = core.estimator.estimate(core, "ho-tich", 3, False, _at("11:00"))
    # 3 ahead of ~8 min each from ~11:08 ends at ~11:32: the new one waits for the break
    assert est >= 70 * 60


def test_the_printed_ticket_says_why_a_ticket_with_nobody_ahead_waits_long(tmp_path):
    """The kiosk prints the service's reason under the wait: the ack's ticket view carries
    `away`, the issuer turns it into words, the ticket layout prints them (and the encoder
    sends them to a printer: the page grows by the reason's line)."""
    import datetime as dt

    from qms.config.printer import PrinterConfig
    from qms.drivers.escpos_render import render
    from qms.drivers.ticket_encoder import TicketEncoder
    from qms.drivers.ticket_layout import Text, ticket_blocks
    from qms.kiosk.issuer import _away_texts

    core = _ward()
    _open(core, _at("07:30"), 3)
    _do(core, core.pause(_at("11:31"), 3, "Nghỉ trưa"))
    _do(core, core.issue(_at("11:40"), "ho-tich", None, "ht-1"))
    view = core.ticket_view(core.tickets["ht-1"], _at("11:40"))
    texts = _away_texts(view["away"], core.cfg.tz)
    assert texts["away_vi"] == "Quầy 3 đang nghỉ trưa đến 12:16"
    assert _away_texts(None, core.cfg.tz) == {}          # nobody away: nothing printed

    from qms.drivers.ticket import TicketPrint
    def ticket(**note):
        return TicketPrint(center_name=core.cfg.site.center, point_name=core.cfg.site.name,
                           service_vi="Hộ tịch", number=2001, issued_at=dt.datetime(2026, 11, 24, 11, 40),
                           ticket_id="ht-1", people_ahead=0, est_wait_minutes=36, **note)
    cfg = PrinterConfig()
    with_note = ticket(wait_note_vi=texts["away_vi"], wait_note_en=texts["away_en"])
    lines = [i.text for i in ticket_blocks(with_note, cfg) if isinstance(i, Text)]
    wait_at = next(i for i, line in enumerate(lines) if "36 phút" in line)
    assert "Quầy 3 đang nghỉ trưa đến 12:16" in lines[wait_at + 1:wait_at + 3]   # (after the English wait)
    plain, noted = (render(TicketEncoder(cfg).encode(t), cfg.paper_width_px) for t in (ticket(), with_note))
    assert noted.pages[-1].height > plain.pages[-1].height
