"""The six holes an independent client found (issue 15, D1-D6), one test each, and the
smaller mismatches: all from outside, with raw paho and hand-written JSON (tests/support/rawdev.py)."""
from __future__ import annotations

import json

import pytest
from support.rawdev import SITE, RawDevice, retained_on

from qms.service.app import GAP_HOLD_MS

BASE = f"qms/v1/{SITE}"
SUMMARY = f"{BASE}/state/summary"


@pytest.fixture
def raw(broker, service):
    made: list[RawDevice] = []

    def make(dev: str, role: str, *topics: str) -> RawDevice:
        d = RawDevice(broker.port, dev, role, *topics)
        made.append(d)
        return d
    yield make
    for d in made:
        d.close()


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_d1_deeply_nested_payloads_cost_nobody_else_anything(raw):
    """D1: a payload of 1,000 nested objects used to raise RecursionError inside the batch,
    and every good command of that batch lost its effect and its ack."""
    kiosk = raw("kiosk-1", "kiosk", SUMMARY)
    bad = raw("robot-1", "robot")
    ids = []
    for _ in range(20):                       # interleaved: they share batches
        bad.send(nested(1000))
        ids.append(kiosk.send(kiosk.body("ticket.request", service="ho-tich")))
    acks = [kiosk.ack(i, 3) for i in ids]
    assert all(a is not None and a["ok"] for a in acks), acks
    assert sorted(a["result"]["ticket"]["number"] for a in acks) == list(range(2001, 2021))
    # staff see who sent them
    assert kiosk.wait_for(lambda: ((kiosk.latest(SUMMARY) or {}).get("bad_messages", {})
                                   .get("robot-1", {}).get("invalid")) == 20, 10)
    assert kiosk.latest(SUMMARY)["bad_messages"]["robot-1"]["last_error"] == "too_deep"


def test_d2_commands_past_a_gap_are_held_and_applied_when_it_fills(raw):
    """D2: seq 3 and 4 arriving before 2 were dropped unanswered; now they wait for 2."""
    k = raw("kiosk-1", "kiosk")
    b = {n: k.body("ticket.request", seq=n, service="ho-tich") for n in (1, 2, 3, 4)}
    k.send(b[1])
    assert k.ack(b[1]["id"])["ok"]
    k.send(b[3])
    k.send(b[4])
    k.send(b[2])                                  # the gap fills
    acks = [k.ack(b[n]["id"], 3) for n in (2, 3, 4)]
    assert all(a is not None and a["ok"] for a in acks), acks
    # applied in seq order, not in arrival order
    assert [a["result"]["ticket"]["number"] for a in acks] == [2002, 2003, 2004]


def test_d2_a_gap_is_skipped_after_its_timeout_without_another_command(raw, site_clock):
    """D2: a gap used to be skipped only when the device's next command arrived after 15 s."""
    k = raw("kiosk-1", "kiosk")
    first, third = (k.body("ticket.request", seq=n, service="ho-tich") for n in (1, 3))
    k.send(first)
    assert k.ack(first["id"])["ok"]
    k.send(third)                                 # 2 is lost for good
    assert k.ack(third["id"], 1.0) is None         # held for the gap
    site_clock.advance(GAP_HOLD_MS / 1000 + 1)
    ack = k.ack(third["id"], 3)
    assert ack is not None and ack["ok"] and ack["result"]["ticket"]["number"] == 2002


def test_d3_a_handled_id_is_never_applied_again_whatever_its_seq(raw):
    """D3: the same id under a new seq gave a second ticket."""
    k = raw("kiosk-1", "kiosk")
    x = k.body("ticket.request", seq=1, service="ho-tich")
    k.send(x)
    first = k.ack(x["id"])
    k.send(k.body("ticket.request", seq=2, service="ho-tich"))
    replay = dict(x, seq=3)
    k.acks.clear()
    k.send(replay)
    again = k.ack(x["id"])
    assert again == first                          # the stored answer, not a new ticket
    nxt = k.body("ticket.request", seq=3, service="ho-tich")     # seq 3 is still free
    k.send(nxt)
    assert k.ack(nxt["id"])["result"]["ticket"]["number"] == 2003


def test_d4_offline_numbers_outside_the_block_or_taken_are_renumbered(raw, service):
    """D4: an offline number outside the kiosk's block, or one issued online already, was
    accepted: two tickets 2003 were both called."""
    k = raw("kiosk-1", "kiosk", f"{BASE}/event/ticket.renumbered")
    online = []
    for _ in range(3):
        b = k.body("ticket.request", service="ho-tich")
        k.send(b)
        online.append(k.ack(b["id"])["result"]["ticket"]["number"])
    assert online == [2001, 2002, 2003]
    block = service.core.offline_block("ho-tich", "kiosk-1")
    now = service.clock()

    def offline(number):
        b = k.body("ticket.offline", ticket_id=f"paper-{number}-{len(k.acks)}", service="ho-tich",
                   number=number, issued_at=now)
        k.send(b)
        a = k.ack(b["id"])
        assert a is not None and a["ok"], a
        return a["result"]["ticket"]["number"]

    taken = offline(2003)                          # issued online already
    outside = offline(2000 + block.start - 1)      # another kiosk's block (robot-1)
    own = offline(2000 + block.start)               # its own, free: kept as printed
    assert own == 2000 + block.start
    numbers = online + [taken, outside, own]
    assert len(set(numbers)) == len(numbers), numbers
    assert k.wait_for(lambda: len([1 for t, _, _ in k.messages if t.endswith("ticket.renumbered")]) == 2)
    renumbered = [json.loads(p) for t, p, _ in k.messages if t.endswith("ticket.renumbered")]
    assert {(r["old_number"], r["number"]) for r in renumbered} == {(2003, taken), (2000 + block.start - 1, outside)}


def test_d5_a_retained_command_is_refused_and_cleared(raw, broker):
    """D5: a command published as retained came back at every service restart and, with an
    id not in the log, was applied as an "outbox reset"."""
    k = raw("kiosk-1", "kiosk")
    for _ in range(3):
        b = k.body("ticket.request", service="ho-tich")
        k.send(b)
        assert k.ack(b["id"])["ok"]
    stale = k.body("ticket.request", seq=1, service="ho-tich")      # a new id, an old seq
    k.send(stale, retain=True)
    ack = k.ack(stale["id"])
    assert ack is not None and not ack["ok"] and ack["error"] == "retained", ack
    assert k.wait_for(lambda: retained_on(broker.port, k.topic) == [], 5)
    # the device's sequence did not restart: its next command goes straight through
    nxt = k.body("ticket.request", seq=4, service="ho-tich")
    k.send(nxt)
    assert k.ack(nxt["id"], 3)["result"]["ticket"]["number"] == 2004


def test_d6_an_invalid_command_is_answered_and_fills_its_place(raw, service):
    """D6: a rating with level 9 (or an id shorter than 8 characters) got no answer; the
    device re-sent it forever and its next command waited 15 s for the hole."""
    c = raw("counter-1", "counter")
    nine = c.body("rating.submit", ticket_id="ticket-00000001", level=9)
    c.send(nine)
    ack = c.ack(nine["id"])
    assert ack is not None and ack["ok"] is False and ack["error"] == "invalid", ack
    assert ack["message_vi"] and "level" in ack["message_en"]
    short = c.body("counter.pause", msg_id="abc")
    c.send(short)
    assert c.ack("abc")["error"] == "invalid"
    nxt = c.body("counter.resume")                   # seq 3: no hole to wait for
    c.send(nxt)
    assert c.ack(nxt["id"], 2)["ok"]
    c.acks.clear()
    c.send(nine)                                     # re-sent: the same answer, no new count
    assert c.ack(nine["id"])["error"] == "invalid"


def test_acks_carry_v_and_a_second_rating_is_not_rateable(raw):
    k, c = raw("kiosk-1", "kiosk"), raw("counter-1", "counter")
    t = k.body("ticket.request", service="chung-thuc")
    k.send(t)
    ticket = k.ack(t["id"])
    assert ticket["v"] == 1
    for type_ in ("counter.next", "counter.done"):
        b = c.body(type_)
        c.send(b)
        assert c.ack(b["id"])["ok"]
    tid = ticket["result"]["ticket"]["ticket_id"]
    r1, r2 = c.body("rating.submit", ticket_id=tid, level=4), c.body("rating.submit", ticket_id=tid, level=1)
    c.send(r1)
    c.send(r2)
    assert c.ack(r1["id"])["ok"] and c.ack(r1["id"])["v"] == 1
    assert c.ack(r2["id"])["error"] == "not_rateable" and c.ack(r2["id"])["v"] == 1


def test_unlisted_devices_are_refused_for_every_role_and_a_wrong_role_is_named(raw):
    for dev, role, type_, fields in (("kiosk-9", "kiosk", "ticket.request", {"service": "ho-tich"}),
                                     ("counter-9", "counter", "counter.next", {})):
        d = raw(dev, role)
        b = d.body(type_, **fields)
        d.send(b)
        ack = d.ack(b["id"])
        assert ack["error"] == "unknown_device" and dev in ack["message_en"], ack
    k = raw("kiosk-1", "counter")                       # a kiosk on a counter topic
    b = k.body("counter.next")
    k.send(b)
    ack = k.ack(b["id"])
    assert ack["error"] == "not_allowed" and "listed as a kiosk" in ack["message_en"], ack
    assert "kiosk" in ack["message_vi"]


def test_a_command_that_raises_is_a_dead_letter_and_the_rest_of_its_batch_commits(raw, service, monkeypatch,
                                                                                   site_config, capsys):
    """Per-command isolation: a bug hit by one command (here one that half-applies its
    events, then raises) rolls back that command alone, is answered `internal_error`, kept
    with its payload and traceback, counted in state/summary, and never retried."""
    from qms.core.queue import QueueCore
    done_for_real = QueueCore._on_TicketDone

    def buggy(self, e):
        done_for_real(self, e)
        raise ZeroDivisionError("a bug in the queue core")
    monkeypatch.setattr(QueueCore, "_on_TicketDone", buggy)
    k, c1, c2 = raw("kiosk-1", "kiosk", SUMMARY), raw("counter-1", "counter"), raw("counter-2", "counter")
    for _ in range(2):
        b = k.body("ticket.request", service="chung-thuc")
        k.send(b)
        assert k.ack(b["id"])["ok"]
    b = c1.body("counter.next")
    c1.send(b)
    assert c1.ack(b["id"])["result"]["ticket"]["number"] == 1001
    done, nxt, req = c1.body("counter.done"), c2.body("counter.next"), k.body("ticket.request", service="ho-tich")
    for dev, body in ((c1, done), (c2, nxt), (k, req)):           # one burst: likely one batch
        dev.send(body)
    bad = c1.ack(done["id"])
    assert bad["ok"] is False and bad["error"] == "internal_error" and bad["message_vi"], bad
    assert c2.ack(nxt["id"])["result"]["ticket"]["number"] == 1002
    assert k.ack(req["id"])["result"]["ticket"]["number"] == 2001
    assert service.core.counters[1].current is not None           # the half-applied done is undone
    assert k.wait_for(lambda: (k.latest(SUMMARY) or {}).get("dead_letters") == 1)
    rows = service.store.dead_letters()
    assert len(rows) == 1 and rows[0][1:4] == ("counter-1", done["id"], done["seq"])
    assert json.loads(rows[0][5])["type"] == "counter.done" and "ZeroDivisionError" in rows[0][6]
    c1.acks.clear()
    c1.send(done)                                                  # re-sent: answered, not retried
    assert c1.ack(done["id"])["error"] == "internal_error"
    assert len(service.store.dead_letters()) == 1
    from qms.cli.main import main
    assert main(["report", "-c", str(site_config), "--db", str(service.store.path), "--day", service.core.day,
                 "--lang", "vi"]) == 0
    assert "Lệnh bị gác lại do lỗi của dịch vụ: 1" in capsys.readouterr().out
    monkeypatch.undo()
    again = c1.body("counter.done")
    c1.send(again)
    assert c1.ack(again["id"])["ok"]


def test_staff_see_which_device_sends_garbage(raw, broker):
    """Per-device counts of invalid and refused messages: state/summary and a retained
    alert/device/<dev> that the alerts page and terminals show."""
    watch = raw("display-1", "display", SUMMARY, f"{BASE}/alert/device/+")
    k = raw("kiosk-1", "kiosk")
    for payload in (b"not json", b"[1,2]", b"{}", b"\x00\xff"):
        k.send(payload)
    k.send(k.body("counter.next"))                  # a kiosk command type it may not send
    assert watch.wait_for(lambda: (watch.latest(SUMMARY) or {}).get("bad_messages", {}).get("kiosk-1")
                          == {"invalid": 4, "refused": 1, "last_error": "not_allowed"})
    assert watch.wait_for(lambda: (watch.latest(f"{BASE}/alert/device/kiosk-1") or {}).get("refused") == 1)
    alert = watch.latest(f"{BASE}/alert/device/kiosk-1")
    assert alert["kind"] == "device" and alert["key"] == "kiosk-1" and alert["active"]
    assert "Thiết bị kiosk-1" in alert["message_vi"] and "4 thông điệp không hợp lệ" in alert["message_vi"]
