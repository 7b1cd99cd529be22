"""The city roles from their *installed* units, inside the units' sandbox (bubblewrap, as
tests/test_unit_sandbox.py does for the five point roles), against a real PostgreSQL:

- `city` on the central server: READY=1 once it listens, WATCHDOG=1 from its event loop,
  the schema made with the DSN and password file the installer wrote, status 0 on SIGTERM;
- `uplink` on a point: it ships the point's log from /var/lib/qms to a real city server
  with the token file the installer wrote, and the same READY/WATCHDOG/SIGTERM contract.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
from support.deploy import make_root
from support.postgres import CityServer, point_rows, stored_seq
from support.site import free_port, make_config
from support.unit_sandbox import NotifyListener, sandboxed, stop
from support.wait import wait_until

from qms.city.db import add_site
from qms.cli import main as cli
from qms.config.site import load_config
from qms.sim.simulate import DaySimulation

VENV = Path(sys.executable).parent.parent
KEEP_HOME = any(str(p).startswith(("/home/", "/root/")) for p in (VENV, Path(sys.base_prefix)))


class Started:
    """A role started from its installed unit under bubblewrap, for a test to watch."""

    def __init__(self, role: str, root: Path, log: Path):
        self.listener = NotifyListener()
        self.run = sandboxed(role, root, root / "var/lib/qms", self.listener.name, keep_home=KEEP_HOME)
        self.log = log.open("w+")
        self.proc = subprocess.Popen(self.run.argv, env=self.run.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def ready(self) -> bool:
        return self.listener.wait_for("READY=1", self.run.start_timeout) and self.proc.poll() is None

    def watchdog(self) -> bool:
        return self.listener.wait_for("WATCHDOG=1", self.run.watchdog_usec / 1e6)

    def terminate(self) -> int:
        """systemd's stop: SIGTERM to the role inside the sandbox."""
        stop(self.proc.pid)
        try:
            return self.proc.wait(15)
        finally:
            self.listener.close()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def test_installed_city_serves_with_the_dsn_and_password_it_was_given(pg_cluster, tmp_path):
    dsn = pg_cluster.create_database("city_unit")          # no schema yet: `serve` makes it
    root = make_root(tmp_path)
    password = tmp_path / "pw"
    password.write_text("not-needed-with-trust\n")         # the test cluster trusts; the file is still read
    port = free_port()
    assert cli.main(["install", "--root", str(root), "--venv", str(VENV), "--role", "city", "--dsn", dsn,
                     "--db-password-file", str(password), "--port", str(port)]) == 0
    role = Started("city", root, tmp_path / "city.log")
    try:
        assert role.ready(), role.output()
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/city", timeout=5)
        assert r.status_code == 200 and r.json() == []
        assert role.watchdog(), role.output()
    finally:
        code = role.terminate()
    assert code == 0, role.output()
    assert "Traceback" not in role.output()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM city_sites").fetchone()[0] == 0


def test_installed_city_says_why_it_cannot_reach_the_database(pg_cluster, tmp_path):
    """A wrong DSN: one clear line in the journal and a non-zero exit (systemd retries),
    not a traceback, and never the password."""
    root = make_root(tmp_path)
    password = tmp_path / "pw"
    password.write_text("hunter2\n")
    assert cli.main(["install", "--root", str(root), "--venv", str(VENV), "--role", "city", "--dsn",
                     f"postgresql://qms@127.0.0.1:{free_port()}/city", "--db-password-file", str(password)]) == 0
    listener = NotifyListener()
    run = sandboxed("city", root, root / "var/lib/qms", listener.name, keep_home=KEEP_HOME)
    proc = subprocess.run(run.argv, env=run.env, capture_output=True, text=True, timeout=run.start_timeout)
    listener.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: cannot reach the database" in proc.stderr and "Connection refused" in proc.stderr
    assert "hunter2" not in proc.stderr and "Traceback" not in proc.stderr
    assert not listener.messages


def test_installed_uplink_ships_the_points_log(city_dsn, tmp_path):
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    try:
        root = make_root(tmp_path)
        config = make_config(tmp_path, free_port())
        site = load_config(config).site.id
        token = tmp_path / "token"
        token.write_text(add_site(city_dsn, site, load_config(config).site.center) + "\n")
        assert cli.main(["install", "--root", str(root), "--venv", str(VENV), "--role", "uplink", "--config",
                         str(config), "--center", server.url, "--token-file", str(token)]) == 0
        # the point's service wrote its log where the unit keeps it
        db = root / "var/lib/qms/service.sqlite"
        DaySimulation(load_config(root / "etc/qms/site.toml"), db, dt.date(2026, 11, 24), seed=3).run().close()
        uid = next(int(x.split(":")[2]) for x in (root / "etc/passwd").read_text().splitlines()
                   if x.startswith("qms:"))
        for f in (root / "var/lib/qms").iterdir():
            os.chown(f, uid, uid)
        last = point_rows(db)[-1][0]

        role = Started("uplink", root, tmp_path / "uplink.log")
        try:
            assert role.ready(), role.output()
            assert wait_until(lambda: stored_seq(city_dsn, site) == last, 60), role.output()
            assert role.watchdog(), role.output()
        finally:
            code = role.terminate()
        assert code == 0, role.output()
        assert "Traceback" not in role.output(), role.output()
    finally:
        server.stop()
