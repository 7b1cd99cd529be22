"""A point of the city for tests (tests/test_city.py, tests/test_web_city.py): its own config,
its real service driven by the day simulation's entry point, and an uplink to a real city
server (support/postgres.py CityServer) on a thread. Service, uplink (and a test's `qms web`)
run on the point's SiteClock: a working morning in the site's zone whatever the hour of the
run (a real-time clock crossed the site's midnight between a test's tickets and its page)."""
from __future__ import annotations

import datetime as dt
import socket
import threading
from pathlib import Path

from qms.city.db import add_site
from qms.config.site import load_config
from qms.sim.simulate import DaySimulation
from qms.uplink.client import Uplink
from support.site import SiteClock, make_config

CENTER_A = "Trung tâm Phục vụ hành chính công phường An Khánh"
CENTER_B = "Trung tâm Phục vụ hành chính công phường Bình Trưng"


class CityPoint:
    def __init__(self, tmp_path: Path, dsn: str, site: str, name: str, center: str, all_day: bool = True,
                 address: str | None = None, extra: str = ""):
        d = tmp_path / site
        d.mkdir()
        text = make_config(d, 1883, hours_all_day=all_day, extra=extra).read_text(encoding="utf-8")
        text = (text.replace('id = "phuong-an-khanh"', f'id = "{site}"')
                .replace('name = "Điểm tiếp nhận chính"', f'name = "{name}"')
                .replace('center = "Trung tâm Phục vụ hành chính công phường An Khánh"', f'center = "{center}"'))
        if address is not None:
            lines = text.splitlines()
            i = next(i for i, ln in enumerate(lines) if ln.startswith("address = "))
            lines[i] = f'address = "{address}"'
            text = "\n".join(lines) + "\n"
        self.config_path = d / "site.toml"
        self.config_path.write_text(text, encoding="utf-8")
        self.cfg = load_config(self.config_path)
        self.db = self.cfg.state_dir() / "service.sqlite"
        self.token = add_site(dsn, site, center)
        self.site = site
        self.clock = SiteClock()
        self.uplink: Uplink | None = None
        self._stop = threading.Event()

    def connect(self, center_url: str) -> CityPoint:
        self.uplink = Uplink(self.cfg, self.db, center_url, self.token,
                             config_text=self.config_path.read_text(encoding="utf-8"), clock=self.clock)
        threading.Thread(target=self.uplink.run, args=(self._stop,), daemon=True).start()
        return self

    def play_day(self, day: dt.date, seed: int) -> None:
        DaySimulation(self.cfg, self.db, day, seed=seed).run().close()

    def desk(self) -> DaySimulation:
        """The service at work now (the point's clock), for tickets and calls one by one."""
        now = self.clock()
        sim = DaySimulation(self.cfg, self.db, dt.datetime.fromtimestamp(now / 1000, self.cfg.tz).date())
        sim.now = now
        sim.site_clock = self.clock
        return sim

    def close(self) -> None:
        self._stop.set()


def act(sim: DaySimulation, role: str, dev: str, kind: str, **fields):
    sim.now = sim.site_clock()
    ack = sim.send(role, dev, kind, **fields)
    assert ack.ok, ack
    return ack


def silent_city(point: CityPoint, city_url: str, timeout_s: int) -> tuple[socket.socket, Path]:
    """A city that accepts connections and never answers (the listening socket, never
    accepted: a request hangs until its timeout), and a copy of `point`'s config that reads
    it with a `timeout_s` timeout (the point's config has [city] with timeout_seconds = 1)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    config = point.config_path.with_name("silent.toml")
    config.write_text(point.config_path.read_text(encoding="utf-8").replace(
        city_url, f"http://127.0.0.1:{silent.getsockname()[1]}").replace(
        "timeout_seconds = 1", f"timeout_seconds = {timeout_s}"), encoding="utf-8")
    return silent, config
