"""The queue core, exhaustively: rules by example, then invariants over random interleavings."""
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qms.config.site import load_config, parse_config
from qms.core import refusals as R
from qms.core.queue import QueueCore
from qms.protocol import messages as m

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "ward-example.toml"
CFG = load_config(EXAMPLE)


def at(h, mi=0, day=24):
    return int(dt.datetime(2026, 11, day, h, mi, tzinfo=CFG.tz).timestamp() * 1000)


class Q:
    """A core driven like the service drives it: handler, then apply."""

    def __init__(self, cfg=CFG):
        self.core = QueueCore(cfg)
        self.log: list[m.Event] = []
        self.n = 0

    def do(self, handler, *args):
        events = getattr(self.core, handler)(*args)
        for e in events:
            self.core.apply(e)
        self.log.extend(events)
        self.core.check_invariants()
        return events

    def issue(self, now, service="chung-thuc", priority=None):
        self.n += 1
        return self.do("issue", now, service, priority, f"ticket-{self.n:04d}")[0]

    def next(self, now, counter):
        ev = self.do("next", now, counter)
        called = [e for e in ev if isinstance(e, m.TicketCalled)]
        return called[0].number if called else None


def test_numbers_are_per_service_and_restart_each_day():
    q = Q()
    assert [q.issue(at(8)).number for _ in range(3)] == [1001, 1002, 1003]
    assert q.issue(at(8), "dat-dai").number == 3001
    assert q.issue(at(8, day=25)).number == 1001        # Wednesday: new day, new numbers
    assert q.core.day == "2026-11-25"
    assert len(q.core.tickets) == 1


def test_people_ahead_and_estimate_grow():
    q = Q()
    tickets = [q.issue(at(8)) for _ in range(12)]
    assert [t.people_ahead for t in tickets] == list(range(12))
    waits = [t.est_wait_s for t in tickets]
    assert waits == sorted(waits) and waits[-1] > waits[0]   # 4 counters serve it: the 12th waits
    prio = q.issue(at(8), priority="nguoi-cao-tuoi")
    assert prio.people_ahead == 0 and prio.est_wait_s < waits[-1]


@pytest.mark.parametrize("when,code", [
    (at(6, 30), "not_open"),          # tickets from 07:00 (30 min before opening)
    (at(16, 45), "past_cutoff"),      # closes 17:00, cut-off 15 min
    (at(9, day=29), "closed_day"),    # Sunday
])
def test_refusals_have_reasons(when, code):
    q = Q()
    with pytest.raises(R.Refused) as e:
        q.issue(when)
    assert e.value.code == code
    assert e.value.vi and e.value.en


def test_early_tickets_before_opening_are_allowed():
    assert Q().issue(at(7, 5)).number == 1001


def test_daily_cap():
    cfg = parse_config(EXAMPLE.read_text(encoding="utf-8").replace("daily_cap = 40", "daily_cap = 2"), "x")
    q = Q(cfg)
    q.issue(at(8), "xay-dung")
    q.issue(at(8), "xay-dung")
    with pytest.raises(R.Refused) as e:
        q.issue(at(8), "xay-dung")
    assert e.value.code == "daily_cap" and "Xây dựng" in e.value.vi


def test_counter_prefers_its_services_in_order_then_oldest():
    q = Q()
    q.issue(at(8), "chung-thuc")      # 1001
    q.issue(at(8, 1), "ho-tich")      # 2001
    q.issue(at(8, 2), "ho-tich")      # 2002
    assert q.next(at(8, 30), 3) == 2001   # counter 3: ho-tich first (nobody past the aging limit)
    assert q.next(at(8, 30), 2) == 1001   # counter 2: chung-thuc first
    assert q.next(at(9, 1), 2) == 2002
    assert q.next(at(9, 2), 2) is None
    assert q.next(at(9), 4) is None   # land/construction: nobody waiting


def test_priority_first_but_never_starves_others():
    q = Q()
    q.issue(at(8), "chung-thuc")                        # 1001 normal, oldest
    for i in range(5):
        q.issue(at(8, 1 + i), "chung-thuc", "nguoi-cao-tuoi")   # 1002..1006 priority
    calls = [q.next(at(8, 10 + i), 1) for i in range(6)]     # within the aging limit
    # interleave with burst 2: two priority, then the waiting normal one, then priority again
    assert calls == [1002, 1003, 1001, 1004, 1005, 1006]


def test_strict_priority_mode():
    cfg = parse_config(EXAMPLE.read_text(encoding="utf-8").replace('"interleave"', '"strict"'), "x")
    q = Q(cfg)
    q.issue(at(8))
    for i in range(3):
        q.issue(at(8, 1 + i), priority="phu-nu-mang-thai")
    assert [q.next(at(8, 10 + i), 1) for i in range(4)] == [1002, 1003, 1004, 1001]


def test_next_finishes_current_recall_capped_no_show_and_call_back():
    q = Q()
    q.issue(at(8))
    q.issue(at(8))
    q.next(at(9), 1)
    for _ in range(3):
        q.do("recall", at(9, 1), 1)
    with pytest.raises(R.Refused, match="recall_cap"):
        q.do("recall", at(9, 1), 1)
    q.do("no_show", at(9, 2), 1)
    assert q.core.counters[1].current is None
    assert q.next(at(9, 3), 1) == 1002
    ev = q.do("call_number", at(9, 20), 1, 1001)       # came back within 30 minutes
    assert [type(e).__name__ for e in ev] == ["TicketDone", "TicketCalled"]
    q.do("no_show", at(9, 21), 1)
    with pytest.raises(R.Refused, match="not_callable"):
        q.do("call_number", at(9, 59), 1, 1001)        # window passed


def test_transfer_keeps_place_by_original_issue_time():
    q = Q()
    q.issue(at(8, 0), "chung-thuc")   # 1001 issued first
    q.issue(at(8, 5), "ho-tich")      # 2001
    q.next(at(9), 2)                  # counter 2 takes 1001
    q.do("transfer", at(9, 5), 2, "ho-tich", None)
    assert q.next(at(9, 6), 3) == 1001            # ahead of 2001: it was issued earlier
    q.do("transfer", at(9, 7), 3, None, 5)        # to counter 5 only
    assert q.next(at(9, 8), 4) is None
    assert q.next(at(9, 8), 5) == 1001


def test_pause_blocks_next_and_rating_once():
    q = Q()
    q.issue(at(8))
    q.do("pause", at(8, 30), 1, "Họp giao ban")
    with pytest.raises(R.Refused, match="counter_paused"):
        q.do("next", at(8, 31), 1)
    assert q.core.counter_view(1)["status"] == "paused"
    q.do("resume", at(8, 40), 1)
    q.next(at(8, 41), 1)
    tid = q.core.counters[1].current
    with pytest.raises(R.Refused, match="not_rateable"):
        q.do("rate", at(8, 42), 1, tid, 4)           # not served yet
    q.do("done", at(8, 45), 1)
    assert len(q.do("rate", at(8, 46), 1, tid, 4)) == 1
    with pytest.raises(R.Refused, match="not_rateable"):
        q.do("rate", at(8, 46), 1, tid, 1)            # one rating per ticket
    with pytest.raises(R.Refused):
        q.do("rate", at(8, 46), 2, tid, 4)            # another counter cannot rate it


def test_offline_tickets_take_their_place_by_issue_time_and_renumber():
    q = Q()
    block = q.core.offline_block("chung-thuc", "kiosk-1")
    assert block == range(950, 1000)
    assert q.core.offline_block("chung-thuc", "robot-1") == range(900, 950)
    q.issue(at(8, 10))                                              # 1001 online at 8:10
    off = m.TicketOffline(v=1, id="msg-00000001", dev="kiosk-1", seq=1, ts=at(8, 5),
                          ticket_id="ticket-off1", service="chung-thuc", number=1950, issued_at=at(8, 5))
    q.do("accept_offline", at(8, 20), off)
    assert q.next(at(9), 1) == 1950                                 # printed earlier: called first
    assert q.do("accept_offline", at(8, 20), off) == []             # a repeat changes nothing
    # a request that timed out at the kiosk, then its offline copy: same ticket, paper number wins
    q.do("issue", at(8, 30), "chung-thuc", None, "ticket-late")
    late = m.TicketOffline(v=1, id="msg-00000002", dev="kiosk-1", seq=2, ts=at(8, 30),
                           ticket_id="ticket-late", service="chung-thuc", number=1951, issued_at=at(8, 30))
    ev = q.do("accept_offline", at(8, 31), late)
    assert isinstance(ev[0], m.TicketRenumbered)
    assert q.core.tickets["ticket-late"].number == 1951
    assert q.core.by_number[1951].ticket_id == "ticket-late"


def test_replay_of_the_log_rebuilds_the_same_state():
    q = Q()
    for i in range(10):
        q.issue(at(8, i), ["chung-thuc", "ho-tich"][i % 2], "nguoi-cao-tuoi" if i % 4 == 0 else None)
    q.next(at(9), 1), q.next(at(9), 3), q.do("no_show", at(9, 1), 3), q.next(at(9, 2), 2)
    q.do("done", at(9, 10), 1), q.do("pause", at(9, 11), 2, "")
    fresh = QueueCore(CFG)
    for e in q.log:
        fresh.apply(e)
    for n in q.core.counters:
        assert fresh.counter_view(n) == q.core.counter_view(n)
    for s in q.core.lines:
        assert fresh.service_view(s, at(9, 30)) == q.core.service_view(s, at(9, 30))
    assert fresh.calls_view() == q.core.calls_view()


# ------------------------------------------------------------------ properties
SERVICES = [s.id for s in CFG.services]
COUNTERS = [c.number for c in CFG.counters]
PRIOS = [None, None, None, "nguoi-cao-tuoi", "phu-nu-mang-thai"]

action = st.one_of(
    st.tuples(st.just("issue"), st.sampled_from(SERVICES), st.sampled_from(PRIOS)),
    st.tuples(st.sampled_from(["next", "next", "next", "done", "no_show", "recall", "pause",
                               "resume"]), st.sampled_from(COUNTERS)),
    st.tuples(st.just("transfer"), st.sampled_from(COUNTERS), st.sampled_from(SERVICES + COUNTERS)),
    st.tuples(st.just("call_back"), st.sampled_from(COUNTERS), st.integers(0, 30)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, max_size=120))
def test_random_interleavings_keep_every_invariant(actions):
    q = Q()
    now = at(8)
    q.core.roll(now)
    for a in actions:
        now += 7_000
        try:
            if a[0] == "issue":
                q.issue(now, a[1], a[2])
            elif a[0] == "transfer":
                to = a[2]
                q.do("transfer", now, a[1], to if isinstance(to, str) else None,
                     to if isinstance(to, int) else None)
            elif a[0] == "call_back":
                tickets = list(q.core.tickets.values())
                if tickets:
                    q.do("call_number", now, a[1], tickets[a[2] % len(tickets)].number)
            elif a[0] == "pause":
                q.do("pause", now, a[1], "")
            else:
                q.do(a[0], now, a[1])
        except R.Refused:
            pass
    core = q.core
    # counts add up: every ticket is in exactly one state
    states = [t.state for t in core.tickets.values()]
    waiting = sum(len(line) for line in core.lines.values()) + sum(len(line) for line in core.targeted.values())
    assert states.count("waiting") == waiting
    assert states.count("called") == sum(1 for c in core.counters.values() if c.current)
    assert len(states) == sum(1 for e in q.log if isinstance(e, m.TicketIssued))
    # no ticket is served twice, no ticket at two counters at once
    done = [e.ticket_id for e in q.log if isinstance(e, m.TicketDone)]
    assert len(done) == len(set(done))
    # FIFO within a priority class per service for first calls of never-transferred tickets
    transferred = {e.ticket_id for e in q.log if isinstance(e, m.TicketTransferred)}
    first_calls = {}
    for e in q.log:
        if isinstance(e, m.TicketCalled) and e.ticket_id not in first_calls:
            first_calls[e.ticket_id] = e.seq or len(first_calls)
    by_class: dict[tuple, list] = {}
    for tid in first_calls:
        t = core.tickets[tid]
        if tid in transferred or t.no_show_at is not None:
            continue
        by_class.setdefault((t.service, t.priority is not None), []).append(t.issued_at)
    for seq in by_class.values():
        assert seq == sorted(seq), "FIFO broken within a priority class"
    # the log alone rebuilds the same state (the service rolls to today before replaying)
    fresh = QueueCore(CFG)
    fresh.roll(at(8))
    for e in q.log:
        fresh.apply(e)
    assert [fresh.counter_view(n) for n in COUNTERS] == [core.counter_view(n) for n in COUNTERS]
    assert fresh.calls_view() == core.calls_view()


def test_aging_lets_a_long_wait_jump_the_preference_order():
    text = EXAMPLE.read_text(encoding="utf-8").replace("aging_minutes = 45 ", "aging_minutes = 40 ")
    assert "aging_minutes = 40" in text
    q = Q(parse_config(text, "x"))
    q.issue(at(8, 0), "xay-dung")                    # counter 4 prefers dat-dai
    for i in range(3):
        q.issue(at(8, 30 + i), "dat-dai")
    assert q.next(at(8, 35), 4) == 3001              # 35 min: preference still rules
    assert q.next(at(8, 45), 4) == 4001              # 45 min > 40: the long wait goes first
    assert Q().core.cfg.queue.aging_minutes == 45    # the example ward's choice
    plain = EXAMPLE.read_text(encoding="utf-8").replace("aging_minutes = 45 ", "")
    assert parse_config(plain, "x").queue.aging_minutes == 0    # off unless a center sets it


def test_aging_does_not_jump_priority_citizens():
    q = Q()                                          # the example: aging after 45 minutes
    q.issue(at(8, 0), "xay-dung")                    # 4001, counter 4 prefers dat-dai
    q.issue(at(8, 50), "dat-dai", "nguoi-cao-tuoi")  # 3001, priority
    q.issue(at(8, 51), "dat-dai")                    # 3002
    assert q.next(at(8, 55), 4) == 3001              # priority first, aged or not
    assert q.next(at(8, 56), 4) == 4001              # then the long wait, before the preferred line
    assert q.next(at(8, 57), 4) == 3002


def test_breaks_must_name_known_counters():
    bad = EXAMPLE.read_text(encoding="utf-8").replace("counters = [1, 3, 5]", "counters = [1, 3, 7]")
    with pytest.raises(Exception, match=r"unknown counter 7 at `hours.breaks\[0\].counters\[2\]`"):
        parse_config(bad, "x")
