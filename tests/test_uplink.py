"""A point's log reaches the center exactly once and in order: across a day cut off, across
kill -9 of the uplink and of the ingest, and only with the site's own credentials.

Real parts: the point's real service (played by the day simulation, the same entry point
as its MQTT loop) writing its real SQLite log, `qms uplink` in its own process, the center's
ingest (`python -m qms.city serve`, uvicorn) in its own process, a real PostgreSQL cluster.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import msgspec
import pytest
from support import postgres
from support.postgres import CityServer, center_rows, point_rows, stored_seq
from support.site import SiteClock, make_config
from support.wait import wait_until

from qms.city.db import add_site
from qms.city.report import city_report
from qms.config.site import load_config
from qms.reports.stats import Point, build_report
from qms.sim.simulate import DaySimulation

pg_cluster, city_dsn = postgres.pg_cluster, postgres.city_dsn     # fixtures
DAY = dt.date(2026, 11, 24)
CENTER = "Trung tâm Phục vụ hành chính công phường An Khánh"


class LinkCut:
    """A TCP relay between the point and the center that a test can cut and restore (the
    point's WAN link): cutting drops the open connections and refuses new ones."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                s = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, s]
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up = False
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.sock.close()


class UplinkProcess:
    def __init__(self, config, center_url: str, token_file, log_path):
        self.args = [sys.executable, "-m", "qms", "uplink", "-c", str(config), "--center", center_url,
                     "--token-file", str(token_file)]
        self.log_path = log_path
        self.proc = None

    def start(self) -> UplinkProcess:
        self.proc = subprocess.Popen(self.args, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "QMS_LOG": "INFO"})
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    stop = kill





@pytest.fixture
def point(tmp_path, city_dsn):
    """A sub-point registered at the center: its config, log path and token file."""
    cfg_path = make_config(tmp_path, 1883, hours_all_day=False)
    cfg = load_config(cfg_path)
    token = add_site(city_dsn, cfg.site.id, CENTER)
    token_file = tmp_path / "uplink.token"
    token_file.write_text(token + "\n")
    return cfg_path, cfg, cfg.state_dir() / "service.sqlite", token_file


def assert_same_log(dsn, site, db) -> None:
    mine, theirs = point_rows(db), center_rows(dsn, site)
    assert len(theirs) == len(mine), f"center has {len(theirs)} events, the point {len(mine)}"
    assert theirs == mine           # same seqs, same bytes, same order: nothing lost, nothing doubled


def test_a_day_cut_off_then_reconnected(tmp_path, city_dsn, point):
    cfg_path, cfg, db, token_file = point
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    link = LinkCut(server.port)
    uplink = UplinkProcess(cfg_path, link.url, token_file, tmp_path / "uplink.log").start()
    sim = DaySimulation(cfg, db, DAY, seed=3)
    try:
        morning = sim._at(DAY, "09:30")
        sim.run(until=morning)
        first = point_rows(db)[-1][0]
        assert wait_until(lambda: stored_seq(city_dsn, cfg.site.id) == first, 30), "the morning did not arrive"

        link.cut()                                    # the WAN link drops for the rest of the day
        sim.run()                                     # the point's service keeps calling all day
        sim.close()
        day_two = DaySimulation(cfg, db, DAY + dt.timedelta(days=1), seed=4).run()   # and the next day
        day_two.close()
        last = point_rows(db)[-1][0]
        assert last > first + 1000
        assert stored_seq(city_dsn, cfg.site.id) == first   # nothing got through the cut link

        link.restore()
        assert wait_until(lambda: stored_seq(city_dsn, cfg.site.id) == last, 60), open(tmp_path / "uplink.log").read()[-2000:]
        assert_same_log(city_dsn, cfg.site.id, db)

        # the center's report of that point is the point's own report
        since, until = DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()
        own = build_report([Point(cfg, db)], since, until)
        central = city_report(city_dsn, since, until, site=cfg.site.id)
        assert msgspec.to_builtins(central.rows) == msgspec.to_builtins(own.rows)
        assert central.total.issued > 500
    finally:
        uplink.stop()
        link.close()
        server.stop()


def test_kill_9_of_uplink_and_ingest_at_random_moments(tmp_path, city_dsn, point):
    cfg_path, cfg, db, token_file = point
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    uplink = UplinkProcess(cfg_path, server.url, token_file, tmp_path / "uplink.log").start()
    rng = random.Random(19)
    kills = {"uplink": 0, "ingest": 0}

    def play_two_days():
        """The point's service at work, a few simulated minutes every 30 ms: the uplink
        keeps sending small batches, so the kills land at any moment of its exchanges."""
        for day in (DAY, DAY + dt.timedelta(days=1)):
            sim = DaySimulation(cfg, db, day, seed=day.day)
            t = sim._at(day, "06:00")
            while t < sim._at(day, "19:00"):
                t += 4 * 60_000
                sim.run(until=t)
                time.sleep(0.03)
            sim.run()
            sim.close()

    service = threading.Thread(target=play_two_days)
    service.start()
    try:
        while service.is_alive():
            time.sleep(rng.uniform(0.1, 0.8))
            victim = rng.choice(["uplink", "ingest"])
            if victim == "uplink":
                uplink.kill()
                uplink.start()
            else:
                server.kill()
                server.start()
            kills[victim] += 1
        service.join()
        assert kills["uplink"] >= 3 and kills["ingest"] >= 3, kills
        last = point_rows(db)[-1][0]
        assert last > 2000
        assert wait_until(lambda: stored_seq(city_dsn, cfg.site.id) == last, 60), open(tmp_path / "uplink.log").read()[-2000:]
        assert_same_log(city_dsn, cfg.site.id, db)
    finally:
        service.join()
        uplink.stop()
        server.stop()


def test_credentials_are_per_site(tmp_path, city_dsn, point):
    cfg_path, cfg, db, token_file = point
    other_token = add_site(city_dsn, "phuong-binh-an", CENTER)
    own_token = token_file.read_text().strip()
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    batch = {"events": [[1, "2026-11-24", SiteClock.BASE_MS, "ticket.issued", {"type": "ticket.issued"}]]}
    try:
        with httpx.Client(base_url=server.url) as http:
            def post(site, token):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return http.post(f"/v1/sites/{site}/events", json=batch, headers=headers)
            # another site's token, used for this site's id: refused, nothing stored
            r = post(cfg.site.id, other_token)
            assert r.status_code == 403 and r.json()["error"] == "wrong_site"
            assert http.get(f"/v1/sites/{cfg.site.id}/position",
                            headers={"Authorization": f"Bearer {other_token}"}).status_code == 403
            assert post(cfg.site.id, "forged-" + own_token).status_code == 401
            assert post(cfg.site.id, None).status_code == 401
            assert post("phuong-khong-co", own_token).status_code == 403
            assert center_rows(city_dsn, cfg.site.id) == [] and center_rows(city_dsn, "phuong-binh-an") == []
            # a config claiming to be another site is refused too
            text = cfg_path.read_text()
            r = http.put("/v1/sites/phuong-binh-an/config", content=text.encode(),
                         headers={"Authorization": f"Bearer {other_token}"})
            assert r.status_code == 400 and "phuong-an-khanh" in r.json()["message"]
            # its own token: accepted (the barrier that the refusals above were real answers)
            r = post(cfg.site.id, own_token)
            assert r.status_code == 200 and r.json() == {"stored": 1}
    finally:
        server.stop()


def test_gap_is_asked_again_and_a_resent_batch_changes_nothing(tmp_path, city_dsn, point):
    cfg_path, cfg, db, token_file = point
    token = token_file.read_text().strip()
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    # a point whose clock jumped back an hour after event 2: the log keeps its own order
    at = [SiteClock.BASE_MS, SiteClock.BASE_MS + 1000, SiteClock.BASE_MS - 3_600_000, SiteClock.BASE_MS - 3_599_000]
    ev = [[i + 1, "2026-11-24", at[i], "ticket.issued", {"type": "ticket.issued", "n": i + 1}] for i in range(4)]
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
            url = f"/v1/sites/{cfg.site.id}/events"
            assert http.post(url, json={"events": ev[:2]}).json() == {"stored": 2}
            r = http.post(url, json={"events": ev[3:]})          # 3 is missing
            assert r.status_code == 409 and r.json()["stored"] == 2 and r.json()["error"] == "gap"
            assert http.post(url, json={"events": ev[:2]}).json() == {"stored": 2}   # a re-send: no change
            r = http.post(url, json={"events": [ev[2], ev[0]]})  # not consecutive: refused whole
            assert r.status_code == 400
            assert http.post(url, json={"events": ev[1:]}).json() == {"stored": 4}   # overlap is fine
        rows = center_rows(city_dsn, cfg.site.id)
        assert [r[0] for r in rows] == [1, 2, 3, 4]
        assert [msgspec.json.decode(r[4])["n"] for r in rows] == [1, 2, 3, 4]
        assert [r[2] for r in rows] == at                      # ordered by seq, not by time
    finally:
        server.stop()


def test_central_database_crash_and_a_replaced_point_log(tmp_path, city_dsn, point, pg_cluster):
    """PostgreSQL killed (immediate stop, as a crash) while a point uplinks: nothing lost or
    doubled once it is back. A point whose log is shorter than what the center holds (an old
    backup restored) is not mixed into the center's copy."""
    cfg_path, cfg, db, token_file = point
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    uplink = UplinkProcess(cfg_path, server.url, token_file, tmp_path / "uplink.log").start()
    try:
        sim = DaySimulation(cfg, db, DAY, seed=5)
        sim.run(until=sim._at(DAY, "10:00"))
        pg_cluster.kill()
        sim.run()                                      # the point goes on while the center is down
        sim.close()
        pg_cluster.start()
        last = point_rows(db)[-1][0]
        assert wait_until(lambda: stored_seq(city_dsn, cfg.site.id) == last, 60), open(tmp_path / "uplink.log").read()[-2000:]
        assert_same_log(city_dsn, cfg.site.id, db)

        uplink.stop()
        old = point_rows(db)
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM events WHERE seq > ?", (last - 100,))    # an older copy of the log
        conn.commit()
        conn.close()
        uplink.start()
        assert wait_until(lambda: "(missing here): was the log replaced?" in open(tmp_path / "uplink.log").read(), 20)
        uplink.stop()
        # ...which then goes on with other events under the same seqs, past the center's
        DaySimulation(cfg, db, DAY + dt.timedelta(days=1), seed=6).run().close()
        assert point_rows(db)[-1][0] > last
        uplink.start()
        assert wait_until(lambda: "(different): was the log replaced?" in open(tmp_path / "uplink.log").read(), 20)
        assert center_rows(city_dsn, cfg.site.id) == old
    finally:
        uplink.stop()
        server.stop()


def test_bad_input_gets_a_clear_message(tmp_path, city_dsn, point):
    cfg_path, cfg, db, token_file = point
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    for tok, why in ((empty, "is empty"), (tmp_path / "none.token", "cannot read the token file")):
        r = subprocess.run([sys.executable, "-m", "qms", "uplink", "-c", str(cfg_path), "--center", "http://127.0.0.1:9",
                            "--token-file", str(tok)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and why in r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "qms.city", "--dsn", city_dsn, "add-site", "--site", cfg.site.id,
                        "--center", "x"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "already registered" in r.stderr
    r = subprocess.run([sys.executable, "-m", "qms.city", "--dsn", city_dsn, "add-site", "--site", "a b",
                        "--center", "x"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "letters, digits" in r.stderr
    r = subprocess.run([sys.executable, "-m", "qms.city", "--dsn", city_dsn, "report", "--from", "2026-13-01"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr


def test_live_state_is_the_services_own_view(tmp_path, point):
    """What the uplink tells the city view is what the point's service itself shows: the
    same waiting, open and estimated wait per service, from the log alone."""
    from qms.uplink.live import LiveState
    from qms.uplink.source import LogReader
    cfg_path, cfg, db, token_file = point
    DaySimulation(cfg, db, DAY - dt.timedelta(days=1), seed=8).run().close()
    sim = DaySimulation(cfg, db, DAY, seed=9)
    sim.run(until=sim._at(DAY, "10:15"))
    reader = LogReader(db)
    live = LiveState(cfg)
    last = reader.last_seq()
    live.start(sim.now, reader.day_events(DAY.isoformat(), last), last,
               reader.days_events((DAY - dt.timedelta(days=7)).isoformat(), (DAY - dt.timedelta(days=1)).isoformat()))
    view = {s["id"]: s for s in live.view(sim.now)["services"]}
    busy = 0
    for s in cfg.services:
        own = sim.svc.core.service_view(s.id, sim.now)
        assert (view[s.id]["waiting"], view[s.id]["open"], view[s.id]["est_wait_s"]) == (
            own["waiting"], own["open"], own["est_wait_s"]), s.id
        busy += own["waiting"] > 0
    assert busy >= 1                     # a real queue, not an empty hall
    # and it follows the log: more events fed, the same view as the service's again
    sim.run(until=sim._at(DAY, "11:00"))
    live.feed(LogReader(db).after(last, 10_000))
    for s in cfg.services:
        own = sim.svc.core.service_view(s.id, sim.now)
        assert live.view(sim.now)["services"][[x.id for x in cfg.services].index(s.id)]["waiting"] == own["waiting"]
    sim.close()
    reader.close()


def test_live_state_left_behind_by_a_batch_goes_without_a_new_event(tmp_path, city_dsn, point):
    """The end of a catch-up goes sooner than the live state may follow it: the state that
    includes those last events must still reach the city view, with nothing more written."""
    import psycopg

    from qms.uplink.client import Uplink
    cfg_path, cfg, db, token_file = point
    sim = DaySimulation(cfg, db, DAY, seed=12)
    sim.run(until=sim._at(DAY, "09:00"))
    sim.close()
    last = point_rows(db)[-1][0]
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    up = Uplink(cfg, db, server.url, token_file.read_text().strip(), batch=last - 1)

    def center_live_at():
        with psycopg.connect(city_dsn) as conn:
            return conn.execute("SELECT (live->>'at')::bigint FROM city_sites WHERE site = %s",
                                (cfg.site.id,)).fetchone()[0]
    try:
        assert up.step()                       # a full batch, with the live state as it was then
        first = center_live_at()
        assert first is not None
        assert not up.step()                   # the last event, too soon for another live state
        assert stored_seq(city_dsn, cfg.site.id) == last
        # nothing more is written: the state with the last event goes by itself
        assert wait_until(lambda: center_live_at() != first, 10, step=up.step, every=0.05)
    finally:
        up.close()
        server.stop()
