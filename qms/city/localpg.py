"""A throw-away PostgreSQL cluster on a free port, for tests, benchmarks and demos.

Debian installs the server binaries under /usr/lib/postgresql/<major>/bin (not on PATH).
PostgreSQL refuses to run as root, so when we are root the cluster belongs to the
`postgres` system user (`runuser`). The data directory lives under /tmp (a pytest temp dir
is private to root and the postgres user could not enter it) and is removed at `stop`.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from qms.mqtt.broker import free_port


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def pg_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresMissing("PostgreSQL server not found: install it (apt-get install postgresql, "
                          "or run scripts/setup.sh)")


class LocalPostgres:
    """`start()` runs initdb + pg_ctl; `dsn(db)` connects as superuser `qms` over TCP."""

    def __init__(self, port: int | None = None, fsync: bool = True, settings: dict[str, str] | None = None):
        self.port = port or free_port()
        self.fsync = fsync
        self.settings = settings or {}
        self.bin = pg_bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="qms-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> LocalPostgres:
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "qms", "-E", "UTF8",
                      "--locale", "C.UTF-8" if Path("/usr/lib/locale/C.utf8").exists() else "C")
        opts = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                "unix_socket_directories": str(self.base), "fsync": "on" if self.fsync else "off",
                "max_connections": "200", **self.settings}
        conf = "".join(f"{k} = '{v}'\n" for k, v in opts.items())
        auto = self.data / "postgresql.auto.conf"
        (self.data / "qms.conf").write_text(conf)
        if "include_if_exists = 'qms.conf'" not in (self.data / "postgresql.conf").read_text():
            with open(self.data / "postgresql.conf", "a") as f:
                f.write("\ninclude_if_exists = 'qms.conf'\n")
        if self._user:
            pw = pwd.getpwnam(self._user)
            for p in (self.data / "qms.conf", auto):
                if p.exists():
                    os.chown(p, pw.pw_uid, pw.pw_gid)
        r = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start", check=False)
        if r.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {r.stderr.strip()}\n{self.server_log()}")
        return self

    def server_log(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://qms@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def kill(self) -> None:
        """Stop at once, as a crash would (the next start recovers from the WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)

    def restart(self) -> None:
        self.kill()
        deadline = time.monotonic() + 30
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "stop", check=False)
        shutil.rmtree(self.base, ignore_errors=True)
