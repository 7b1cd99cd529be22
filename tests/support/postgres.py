"""A real PostgreSQL for tests: one throw-away cluster per test session (initdb + pg_ctl on a
free port, see qms/city/localpg.py), a fresh database with the city schema per test."""
from __future__ import annotations

import itertools
import sqlite3

import psycopg
import pytest

from qms.city.db import init_schema
from qms.city.localpg import LocalPostgres, PostgresMissing

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster():
    try:
        # fsync off: these tests kill our processes, never the database server's machine
        pg = LocalPostgres(fsync=False).start()
    except PostgresMissing as e:
        pytest.fail(str(e))
    yield pg
    pg.stop()


@pytest.fixture
def city_dsn(pg_cluster) -> str:
    dsn = pg_cluster.create_database(f"city_{next(_names)}")
    init_schema(dsn)
    return dsn


class CityServer:
    """`python -m qms.city serve` in its own process (so a test can kill -9 it)."""

    def __init__(self, dsn: str, port: int | None = None, args: tuple[str, ...] = (), log_path=None):
        from qms.mqtt.broker import free_port
        self.dsn, self.port, self.args = dsn, port or free_port(), args
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = log_path

    def start(self, timeout: float = 30.0) -> CityServer:
        import os
        import subprocess
        import sys
        import time

        import httpx
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qms.city", "--dsn", self.dsn, "serve", "--port", str(self.port), *self.args],
            stdout=out, stderr=out, env={**os.environ, "QMS_LOG": "WARNING"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the city server exited with {self.proc.returncode}")
            try:
                httpx.get(self.url + "/v1/sites/-/position", timeout=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the city server did not start")

    def kill(self) -> None:
        """kill -9: no clean shutdown, in-flight requests cut."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:   # noqa: BLE001
                self.proc.kill()
                self.proc.wait(10)


def point_rows(db) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(s, d, a, t, bytes(x)) for s, d, a, t, x in conn.execute("SELECT seq, day, at, type, data FROM events ORDER BY seq")]
    finally:
        conn.close()


def center_rows(dsn: str, site: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return [(s, d.isoformat(), a, t, bytes(x)) for s, d, a, t, x in conn.execute(
            "SELECT seq, day, at, type, data FROM city_events WHERE site = %s ORDER BY seq", (site,))]


def stored_seq(dsn: str, site: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT stored_seq FROM city_sites WHERE site = %s", (site,)).fetchone()[0]
