"""The web process against the real service on a real broker: booking API, check-in,
public JSON, limits and validation. (Browser tests: test_web_browser.py.)"""
from __future__ import annotations

import hashlib
import json

import pytest
from support.site import make_config
from support.wait import wait_until
from support.web import (
    BOOK_TOKEN,
    KIOSK_TOKEN,
    OTHER_TOKEN,
    REF_A,
    REF_B,
    WEB_EXTRA,
    booking,
    call,
    counter,
    start_web,
    take,
)

from qms.config.site import load_config
from qms.web.server import WebApp


@pytest.fixture
def site_config(tmp_path, broker):       # overrides the shared one: the same site plus a [web] section
    return make_config(tmp_path, broker.port, extra=WEB_EXTRA)


# ---------------------------------------------------------------- authentication
def test_booking_needs_a_booking_token(web, site_clock):
    for token, status, code in [(None, 401, "unauthorized"), ("not-a-token", 401, "unauthorized"),
                                (KIOSK_TOKEN, 403, "forbidden")]:
        st, body, _ = call(web, "POST", "/api/v1/bookings", booking(site_clock), token=token)
        assert (st, body["error"]) == (status, code)
        assert body["message_vi"] and body["message_en"]
    st, body, _ = call(web, "POST", "/api/v1/bookings", booking(site_clock), token=BOOK_TOKEN)
    assert st == 201, body
    b = body["booking"]
    assert len(b["code"]) == 9 and b["code"][4] == "-" and b["state"] == "booked"
    assert b["tracking_url"] == f"http://192.168.1.10:8080/t/{b['ticket_id']}"
    assert "reference" not in json.dumps(body)
    # another integrator cannot read or cancel it; the owner can read it
    assert call(web, "GET", f"/api/v1/bookings/{b['code']}", token=OTHER_TOKEN)[0] == 404
    assert call(web, "DELETE", f"/api/v1/bookings/{b['code']}", token=OTHER_TOKEN)[0] == 404
    st, body, _ = call(web, "GET", f"/api/v1/bookings/{b['code'].lower()}", token=BOOK_TOKEN)
    assert st == 200 and body["booking"]["code"] == b["code"]


def test_guessing_tokens_is_slowed_down(web, site_clock):
    statuses = [call(web, "GET", "/api/v1/bookings/AAAA-BBBB", token=f"guess{i}")[0] for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("raw,headers,status,needle", [
    (b"{not json", {}, 400, "not valid JSON"),
    (b"[]", {}, 400, "Expected `object`"),
    (json.dumps({"service": "ho-tich"}).encode(), {}, 400, "missing required field"),
    (json.dumps({"service": "ho-tich", "date": "2026-11-24", "from": "09:00", "to": "10:00",
                 "reference": REF_A, "name": "Nguyễn Văn A"}).encode(), {}, 400, "unknown field `name`"),
    (json.dumps({"service": "ho-tich", "date": "2026-11-24", "from": "09:00", "to": "10:00",
                 "reference": "001203004567"}).encode(), {}, 400, "reference"),      # an ID number
    (json.dumps({"service": "ho-tich", "date": "2026-11-24", "from": "9h", "to": "10:00",
                 "reference": REF_A}).encode(), {}, 400, "from"),
    (b"{}", {"Content-Type": "text/plain"}, 415, "application/json"),
    (b"{" + b" " * 5000 + b"}", {}, 413, "too large"),
])
def test_malformed_bodies_get_clear_errors(web, raw, headers, status, needle):
    st, body, _ = call(web, "POST", "/api/v1/bookings", raw=raw, token=BOOK_TOKEN, headers=headers)
    assert st == status, body
    assert needle in body["message_en"]
    assert body["message_vi"]


def test_booking_rules(web, site_clock):
    def book(**over):
        st, body, _ = call(web, "POST", "/api/v1/bookings", booking(site_clock, **over), token=BOOK_TOKEN)
        return st, body.get("error") or body["booking"]["state"]

    assert book(date="2020-01-01") == (422, "bad_date")
    assert book(**{"from": "09:00", "to": "09:05"}) == (422, "bad_window")
    assert book(**{"from": "07:00", "to": "08:00"}) == (422, "bad_window")   # already over
    assert book(service="no-such") == (404, "unknown_service")
    assert book(priority="vip") == (422, "unknown_priority")
    assert book(date="2026-02-30") == (400, "bad_request")
    assert book() == (201, "booked")
    assert book() == (201, "booked")
    assert book() == (409, "reference_limit")                   # at most 2 per person per day
    assert book(reference=REF_B) == (201, "booked")
    assert book(date="2026-11-25") == (201, "booked")           # the limit is per day


def test_booking_cap_is_a_share_of_the_daily_cap(web, site_clock):
    # xay-dung: daily_cap 40, booking_cap_percent 50 -> 20 bookable
    codes = []
    for i in range(20):
        ref = hashlib.sha256(f"c{i}".encode()).hexdigest()
        st, body, _ = call(web, "POST", "/api/v1/bookings",
                           booking(site_clock, service="xay-dung", reference=ref), token=BOOK_TOKEN)
        assert st == 201, body
        codes.append(body["booking"]["code"])
    st, body, _ = call(web, "POST", "/api/v1/bookings",
                       booking(site_clock, service="xay-dung", reference=REF_B), token=BOOK_TOKEN)
    assert (st, body["error"]) == (409, "booking_cap")
    assert "Xây dựng" in body["message_vi"]
    # a cancelled booking frees its place
    assert call(web, "DELETE", f"/api/v1/bookings/{codes[0]}", token=BOOK_TOKEN)[1]["booking"]["state"] == "cancelled"
    assert call(web, "POST", "/api/v1/bookings", booking(site_clock, service="xay-dung", reference=REF_B),
                token=BOOK_TOKEN)[0] == 201


# ---------------------------------------------------------------- check-in at the kiosk
def test_booked_ticket_checked_in_and_called_in_its_turn(web, devices, site_clock):
    st, body, _ = call(web, "POST", "/api/v1/bookings", booking(site_clock), token=BOOK_TOKEN)
    b = body["booking"]
    # before check-in, the tracking link shows the booking and its code
    st, page, _ = call(web, "GET", f"/t/{b['ticket_id']}")
    assert st == 200 and b["code"] in page["html"] and 'data-state="booked"' in page["html"]

    walk_in = take(devices, "ho-tich")
    assert call(web, "POST", "/api/v1/checkin", {"code": "xx"}, token=BOOK_TOKEN)[0] == 403
    # typed as the citizen might: lower case, with a space and O for 0
    typed = b["code"].lower().replace("-", " ").replace("0", "o")
    st, body, _ = call(web, "POST", "/api/v1/checkin", {"code": typed, "device": "kiosk-1"}, token=KIOSK_TOKEN)
    assert st == 200, body
    t = body["ticket"]
    assert t["number"] == walk_in["number"] + 1 and t["source"] == "booking"     # the same numbering
    assert t["ticket_id"] == b["ticket_id"] and t["people_ahead"] == 1
    assert t["service_name_vi"] == "Hộ tịch (khai sinh, kết hôn, khai tử)"
    assert body["booking"]["state"] == "checked_in" and body["booking"]["number"] == t["number"]
    # scanning it again gives the same ticket, not a second one
    st, again, _ = call(web, "POST", "/api/v1/checkin", {"code": b["qr_text"]}, token=KIOSK_TOKEN)
    assert st == 200 and again["ticket"]["number"] == t["number"]
    later = take(devices, "ho-tich")

    called = [counter(devices, 3)["ticket"]["number"] for _ in range(3)]
    assert called == [walk_in["number"], t["number"], later["number"]]
    # the web's replica follows the log every 100 ms (the ticket may not be there yet: 404),
    # and the API is rate-limited (60 a minute per address): poll gently
    wait_until(lambda: call(web, "GET", f"/api/v1/tickets/{b['ticket_id']}")[1].get("ticket", {}).get("state")
               == "done", timeout=10, every=0.25)


def test_expired_booking_is_refused(web, site_clock):
    window = booking(site_clock, **{"from": "09:00", "to": "09:15"})
    b = call(web, "POST", "/api/v1/bookings", window, token=BOOK_TOKEN)[1]["booking"]
    tomorrow = call(web, "POST", "/api/v1/bookings", booking(site_clock, date="2026-11-25"),
                    token=BOOK_TOKEN)[1]["booking"]
    st, body, _ = call(web, "POST", "/api/v1/checkin", {"code": tomorrow["code"]}, token=KIOSK_TOKEN)
    assert (st, body["error"]) == (409, "too_early") and "25/11" in body["message_vi"]

    site_clock.advance(16 * 60)
    st, body, _ = call(web, "POST", "/api/v1/checkin", {"code": b["code"]}, token=KIOSK_TOKEN)
    assert (st, body["error"]) == (410, "booking_expired")
    assert "hết hạn" in body["message_vi"]
    assert call(web, "GET", f"/api/v1/bookings/{b['code']}", token=BOOK_TOKEN)[1]["booking"]["state"] == "expired"
    st, page, _ = call(web, "GET", f"/t/{b['ticket_id']}")
    assert 'data-state="expired"' in page["html"] and "/events" not in page["html"]   # final: no live stream


def test_wrong_codes_are_rate_limited(web):
    results = [call(web, "POST", "/api/v1/checkin", {"code": c}, token=KIOSK_TOKEN)
               for c in ["ZZZZ-ZZZZ", "Z", "ZZZZ-ZZZY", "<script>", "ZZZZ-ZZZX", "ZZZZ-ZZZW"]]
    assert [r[0] for r in results] == [404, 400, 404, 400, 404, 429]
    assert results[0][1]["error"] == "unknown_code"
    assert int(results[-1][2]["Retry-After"]) >= 1


def test_checkin_while_the_service_is_down(web, service, broker, site_clock):
    b = call(web, "POST", "/api/v1/bookings", booking(site_clock), token=BOOK_TOKEN)[1]["booking"]
    broker.stop()
    wait_until(lambda: not web.device.online)
    st, body, _ = call(web, "POST", "/api/v1/checkin", {"code": b["code"]}, token=KIOSK_TOKEN)
    assert (st, body["error"]) == (503, "unavailable")
    # pages and the board keep working from the event log
    assert call(web, "GET", "/api/v1/board")[0] == 200
    broker.start()
    wait_until(lambda: web.device.online, 20)
    st, body, _ = call(web, "POST", "/api/v1/checkin", {"code": b["code"]}, token=KIOSK_TOKEN)
    assert st == 200, body


def test_bookings_survive_a_restart(service, site_config, tmp_path, site_clock, devices):
    app = start_web(site_config, tmp_path, site_clock)
    b = call(app, "POST", "/api/v1/bookings", booking(site_clock), token=BOOK_TOKEN)[1]["booking"]
    app.stop()
    app = start_web(site_config, tmp_path, site_clock)
    try:
        st, body, _ = call(app, "POST", "/api/v1/checkin", {"code": b["code"]}, token=KIOSK_TOKEN)
        assert st == 200 and body["ticket"]["ticket_id"] == b["ticket_id"]
    finally:
        app.stop()


# ---------------------------------------------------------------- public reading
def test_public_board_never_shows_ticket_ids(web, devices):
    tickets = [take(devices, "chung-thuc") for _ in range(3)]
    counter(devices, 1)
    wait_until(lambda: call(web, "GET", "/api/v1/board")[1]["calls"])
    st, board, _ = call(web, "GET", "/api/v1/board")
    assert board["calls"][0]["number"] == tickets[0]["number"] and board["calls"][0]["counter"] == 1
    assert {s["service"]: s["waiting"] for s in board["services"]}["chung-thuc"] == 2
    st, page, _ = call(web, "GET", f"/board/{web.cfg.site.id}")
    for t in tickets:
        assert t["ticket_id"] not in json.dumps(board) and t["ticket_id"] not in page["html"]


def test_ticket_json_and_unknown_ticket(web, devices):
    t = take(devices, "dat-dai")
    wait_until(lambda: call(web, "GET", f"/api/v1/tickets/{t['ticket_id']}")[0] == 200)
    body = call(web, "GET", f"/api/v1/tickets/{t['ticket_id']}")[1]["ticket"]
    assert body["number"] == t["number"] and body["service_name_en"] == "Land"
    assert call(web, "GET", "/api/v1/tickets/" + "0" * 32)[0] == 404
    st, page, _ = call(web, "GET", "/t/" + "0" * 32)
    assert st == 404 and "Không tìm thấy số này" in page["html"]


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nowhere", 404), ("GET", "/t/short", 404), ("GET", "/t/../../etc/passwd", 404),
    ("GET", "/board/other-site", 404), ("PUT", "/api/v1/bookings", 405), ("GET", "/api/v1/checkin", 405),
    ("GET", "/static/../web.py", 404), ("GET", "/t/" + "a" * 600, 414),
])
def test_bad_paths(web, method, path, status):
    st, body, headers = call(web, method, path)
    assert st == status
    if path.startswith("/api/"):
        assert body["message_en"] and body["message_vi"]
    else:                                   # a page: the bilingual error page
        assert 'data-lang="vi"' in body["html"] and '<span lang="en">' in body["html"]


def test_pages_are_rate_limited_per_client(service, site_config, tmp_path, site_clock):
    cfg = load_config(site_config)
    cfg.web.pages_per_minute = 5
    app = WebApp(cfg, tmp_path / "service.sqlite", clock=site_clock, bookings_path=tmp_path / "w.sqlite",
                 bind="127.0.0.1", port=0, mqtt=False).start()
    try:
        statuses = [call(app, "GET", f"/board/{cfg.site.id}")[0] for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        st, _, headers = call(app, "GET", "/static/web.css")
        assert st == 429 and headers["Retry-After"] == "12"
    finally:
        app.stop()


def test_new_token_prints_a_token_and_config_lines_that_work(tmp_path, broker, capsys):
    from qms.cli.main import main
    assert main(["web", "--new-token", "kiosk-9", "--scope", "checkin"]) == 0
    out = capsys.readouterr().out
    token = out.split("\n\n")[1].strip()
    lines = out[out.index("[[web.tokens]]"):]
    cfg = load_config(make_config(tmp_path, broker.port, extra=lines))
    app = WebApp(cfg, tmp_path / "none.sqlite", bookings_path=tmp_path / "w.sqlite", bind="127.0.0.1",
                 port=0, mqtt=False)
    try:
        assert app.tokens.check(token).scope == "checkin"
        assert app.tokens.check(token + "x") is None and token not in lines
    finally:
        app.server.server_close()
        app.bookings.close()
    assert main(["web", "--new-token", "Bad Name"]) == 2
