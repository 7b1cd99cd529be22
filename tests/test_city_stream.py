"""The city board's live stream resumes from the version a page holds: exactly the changes
after it, or the whole board when they are no longer kept; a page never shows a partial or
stale board, also across a restart of the public view.

Real parts: `python -m qms.city serve` in its own processes (ingest, public view) on a real
PostgreSQL; live states sent through the points' ingest; the page in a real Chromium."""
from __future__ import annotations

import copy
import json
import queue
import threading

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.sync_api import expect
from support import postgres
from support.postgres import CityServer
from support.wait import wait_until

from qms.city.db import add_site
from qms.city.hub import RING, Hub, merge

pg_cluster, city_dsn = postgres.pg_cluster, postgres.city_dsn     # fixtures
CENTER = "Trung tâm Phục vụ hành chính công phường An Khánh"
SITES = ("an-khanh-1", "an-khanh-2")


def live(waiting: int) -> dict:
    return {"at": 1_764_000_000_000 + waiting, "name": "Điểm tiếp nhận", "address": "",
            "services": [{"id": "ho-tich", "name_vi": "Hộ tịch", "name_en": "Civil status",
                          "waiting": waiting, "est_wait_s": 300 * waiting, "open": True}]}


class Points:
    """The two registered points, sending their live state through the real ingest."""

    def __init__(self, dsn: str, ingest_url: str):
        self.url = ingest_url
        self.tokens = {s: add_site(dsn, s, CENTER) for s in SITES}

    def report(self, site: str, waiting: int) -> None:
        r = httpx.post(f"{self.url}/v1/sites/{site}/events", json={"events": [], "live": live(waiting)},
                       headers={"Authorization": f"Bearer {self.tokens[site]}"})
        assert r.status_code == 200, r.text


def waiting_of(board: list[dict]) -> dict[str, int | None]:
    return {e["site"]: (e["services"][0]["waiting"] if e["services"] else None) for e in board}


def board_at(url: str) -> tuple[str, list[dict]]:
    r = httpx.get(url + "/api/v1/city")
    return r.headers["x-board-version"], r.json()


class Stream:
    """An SSE client on a thread: its messages as (id, event, data) on a queue."""

    def __init__(self, url: str, since: str | None = None, last_id: str | None = None):
        self.messages: queue.Queue = queue.Queue()
        params = {"since": since} if since else {}
        headers = {"Last-Event-ID": last_id} if last_id else {}
        self.client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self.ctx = self.client.stream("GET", url + "/api/v1/city/stream", params=params, headers=headers)
        self.response = self.ctx.__enter__()
        assert self.response.status_code == 200
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        msg: dict = {}
        try:
            for line in self.response.iter_lines():
                if not line:
                    if "data" in msg:
                        self.messages.put((msg.get("id"), msg.get("event", "message"), httpx.Response(
                            200, content=msg["data"]).json()))
                    msg = {}
                elif not line.startswith(":"):
                    k, _, v = line.partition(": ")
                    msg[k] = v
        except httpx.HTTPError:
            pass

    def next(self, timeout: float = 10.0) -> tuple[str, str, list[dict]]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.close()


def test_a_page_resumes_from_its_version_with_exactly_the_changes_after_it(tmp_path, city_dsn):
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    streams: list[Stream] = []
    try:
        points = Points(city_dsn, server.url)
        for s in SITES:
            points.report(s, 1)
        assert wait_until(lambda: waiting_of(board_at(server.url)[1]) == {s: 1 for s in SITES}, 10)
        v0, old = board_at(server.url)

        # changes the page has not seen yet
        points.report("an-khanh-1", 2)
        assert wait_until(lambda: waiting_of(board_at(server.url)[1])["an-khanh-1"] == 2, 10)
        points.report("an-khanh-2", 3)
        assert wait_until(lambda: waiting_of(board_at(server.url)[1])["an-khanh-2"] == 3, 10)
        v2, now = board_at(server.url)

        # from v0: exactly the changes after it (no whole board), which make the board v2
        page = {e["site"]: e for e in old}
        numbered = {e["i"]: e for e in old}
        st = Stream(server.url, since=v0)
        streams.append(st)
        ids = []
        while not ids or ids[-1] != v2:
            mid, event, data = st.next()
            assert event == "message", "a page holding a kept version got the whole board again"
            merge(page, numbered, data)
            ids.append(mid)
        assert len(ids) >= 2 and v0 not in ids
        assert sorted(page.values(), key=lambda e: e["site"]) == sorted(now, key=lambda e: e["site"])
        # ...and then the live changes, applied on top
        points.report("an-khanh-1", 7)
        mid, event, data = st.next()
        merge(page, numbered, data)
        assert event == "message" and waiting_of(list(page.values())) == {"an-khanh-1": 7, "an-khanh-2": 3}

        # a browser reconnecting sends the last id it had (and the same ?since= as before):
        # the id wins, and only what came after it is sent again
        again = Stream(server.url, since=v0, last_id=ids[0])
        streams.append(again)
        replay = [again.next() for _ in range(len(ids))]
        assert [m[0] for m in replay] == ids[1:] + [mid]
        assert all(m[1] == "message" for m in replay)

        # a version this process does not have (another process's, or from the future):
        # the whole board, current
        for since in ("0badcafe-3", v0.split("-")[0] + "-999999", None):
            whole = Stream(server.url, since=since)
            streams.append(whole)
            mid2, event, data = whole.next()
            assert event == "board" and mid2 == board_at(server.url)[0]
            assert waiting_of(data) == {"an-khanh-1": 7, "an-khanh-2": 3}
    finally:
        for s in streams:
            s.close()
        server.stop()


def test_a_client_too_far_behind_gets_the_whole_board(city_dsn):
    """The ring keeps the last RING changes: one before them means the whole board."""
    hub = Hub(city_dsn)
    for i in range(RING + 5):
        hub.board[f"s{i}"] = {"site": f"s{i}", "i": i, "center": "c", "name": "n", "updated_at": i, "services": []}
        hub._publish({"t": 0, "w": [hub.board[f"s{i}"]]}, 1)
    latest = hub.version
    assert hub.resume(hub.tag(latest)) == b""
    tail = hub.resume(hub.tag(latest - 3))
    assert tail.count(b"\nid: ") + tail.startswith(b"id: ") == 3 and b"event: board" not in tail
    assert hub.resume(hub.tag(latest - RING)).count(b"data: ") == RING      # the oldest kept is enough
    whole = hub.resume(hub.tag(latest - RING - 1))
    assert whole.startswith(b"id: " + hub.tag().encode() + b"\nevent: board\n")
    assert whole.count(b'"site"') == RING + 5


def test_the_page_shows_the_whole_current_board_after_the_view_restarts(tmp_path, city_dsn, browser):
    """The public view restarts (a new process: the page's last id means nothing to it)
    while a point changes: the page shows the new board, not its old one patched."""
    ingest = CityServer(city_dsn, args=("--no-public",), log_path=tmp_path / "ingest.log").start()
    view = CityServer(city_dsn, args=("--no-ingest",), log_path=tmp_path / "view.log")
    view.start()
    points = Points(city_dsn, ingest.url)
    ctx = browser.new_context()
    try:
        for s in SITES:
            points.report(s, 1)
        assert wait_until(lambda: waiting_of(board_at(view.url)[1]) == {s: 1 for s in SITES}, 10)
        page = ctx.new_page()
        page.goto(view.url + "/")
        expect(page.locator("#status")).to_have_class("status ok", timeout=10_000)
        row = 'li.point[data-site="{}"] li[data-service="ho-tich"] .wait'
        expect(page.locator(row.format("an-khanh-1"))).to_contain_text("1 người đang chờ")
        points.report("an-khanh-1", 4)                    # live, after the page loaded
        expect(page.locator(row.format("an-khanh-1"))).to_contain_text("4 người đang chờ", timeout=10_000)

        view.stop()
        expect(page.locator("#status")).to_have_class("status lost", timeout=10_000)
        points.report("an-khanh-2", 9)                    # while the page is cut off
        view.start()
        expect(page.locator(row.format("an-khanh-2"))).to_contain_text("9 người đang chờ", timeout=15_000)
        expect(page.locator(row.format("an-khanh-1"))).to_contain_text("4 người đang chờ")
        expect(page.locator("#status")).to_have_class("status ok")
        expect(page.locator("li.point")).to_have_count(2)
    finally:
        ctx.close()
        view.stop()
        ingest.stop()


_services = st.lists(st.fixed_dictionaries({
    "id": st.sampled_from(["ho-tich", "chung-thuc", "dat-dai"]), "name_vi": st.sampled_from(["Hộ tịch", "Đất đai"]),
    "name_en": st.just("x"), "waiting": st.none() | st.integers(0, 500),
    "est_wait_s": st.none() | st.integers(0, 20_000), "open": st.booleans()}), max_size=3)
_entry = st.fixed_dictionaries({
    "center": st.sampled_from(["Phường An Khánh", "Phường Bến Thành"]), "name": st.sampled_from(["Điểm 1", "Điểm 2"]),
    "address": st.just(""), "stale": st.booleans(), "open": st.booleans(), "services": _services,
    "updated_at": st.none() | st.integers(1_764_000_000_000, 1_764_000_100_000)})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _entry), min_size=1, max_size=5),
       st.integers(1_764_000_000_000, 1_764_000_100_000))
def test_every_message_brings_a_client_exactly_to_the_next_board(boards, base):
    """A client holding the board before a message holds, after merging it, exactly the
    board after it: whatever changed (numbers only, a name, the procedures, stale/open)."""
    hub = Hub("")
    client: dict = {}
    numbered: dict = {}
    for k, board in enumerate(boards):
        entries = [{"site": site, **copy.deepcopy(e)} for site, e in board.items()]
        msg = hub.apply(entries, base + k)
        if k == 0:
            merge(client, numbered, copy.deepcopy(sorted(hub.board.values(), key=lambda e: e["i"])))
        elif msg is not None:
            merge(client, numbered, json.loads(json.dumps(msg)))       # as it travels
        assert client == hub.board
