"""The city tier as the field deploys it, from docs/deploy.md "Joining the city" and
docs/city.md, with real parts:

- the central server with PostgreSQL on the same machine and **peer authentication**: a
  cluster whose pg_hba.conf has nothing but `local all all peer`, the role and database made
  as the docs say (`createuser qms`, `createdb -O qms city`, as the `postgres` OS user over
  the socket), `qms install --role city --dsn 'postgresql:///city?host=/var/run/postgresql'`
  with no password, the unit started from its installed files under the sandbox as the
  installer's `qms` user (a real, separate uid: the test runs as root), listening with TLS on
  a port below 1024 thanks to the unit's CAP_NET_BIND_SERVICE drop-in, the admin commands
  run as `qms` the way the docs write them, and a point's installed uplink shipping its log
  to it over HTTPS with a private CA;
- a point whose config names another center than the one it was registered under: refused
  (422 `center_mismatch`, in Vietnamese and English) with nothing stored and nothing lost,
  and everything sent once the operator fixes either side.

The PostgreSQL server must know the `qms` uid by name for peer authentication: it runs in a
mount namespace of its own whose /etc/passwd is the host's plus the installed root's `qms`
line (the host itself is not changed). The unit's sandbox sees the cluster's socket
directory as /run/postgresql, as systemd leaves /run shared with the host.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unicodedata
from pathlib import Path

import httpx
import psycopg
from support import postgres
from support.city import CENTER_A, CENTER_B, CityPoint
from support.deploy import make_root
from support.postgres import CityServer, center_rows, point_rows, stored_seq
from support.site import free_port, make_config
from support.unit_sandbox import NotifyListener, descendants, read_unit, sandboxed, stop
from support.wait import wait_until

from qms.city.db import set_center
from qms.city.localpg import pg_bin_dir
from qms.cli import main as cli
from qms.config.site import load_config
from qms.ops.tls import make_ca, make_cert
from qms.sim.simulate import DaySimulation
from qms.uplink.client import Uplink

pg_cluster, city_dsn = postgres.pg_cluster, postgres.city_dsn     # fixtures
VENV = Path(sys.executable).parent.parent
KEEP_HOME = any(str(p).startswith(("/home/", "/root/")) for p in (VENV, Path(sys.base_prefix)))
DAY = dt.date(2026, 11, 24)
DOCS_DSN = "postgresql:///city?host=/var/run/postgresql"        # docs/deploy.md, word for word


# ---------------------------------------------------------------- peer authentication
def _uid(root: Path, name: str) -> int:
    return next(int(x.split(":")[2]) for x in (root / "etc/passwd").read_text().splitlines()
                if x.startswith(name + ":"))


class PeerPostgres:
    """A cluster owned by the `postgres` OS user, reachable only over its unix socket with
    peer authentication (`local all all peer`, no TCP), on PostgreSQL's default port 5432 so
    that the docs' DSN finds its socket by name (.s.PGSQL.5432) in the socket directory."""

    def __init__(self, passwd_extra: str):
        self.bin = pg_bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="qms-peer-pg-"))
        self.data, self.sock, self.log = self.base / "data", self.base / "sock", self.base / "server.log"
        self.passwd = self.base / "passwd"
        # the installed users first, and no host user of the same name or uid (getpwuid
        # takes the first line that matches)
        mine = {(x.split(":")[0], x.split(":")[2]) for x in passwd_extra.splitlines()}
        names, uids = {n for n, _ in mine}, {u for _, u in mine}
        host = [x for x in Path("/etc/passwd").read_text().splitlines()
                if x.split(":")[0] not in names and x.split(":")[2:3] != [] and x.split(":")[2] not in uids]
        self.passwd.write_text(passwd_extra + "\n".join(host) + "\n")
        pg = pwd.getpwnam("postgres")
        for d in (self.base, self.sock):
            d.mkdir(exist_ok=True)
            os.chown(d, pg.pw_uid, pg.pw_gid)
        self.proc: subprocess.Popen | None = None

    def as_postgres(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True, timeout=120)

    def start(self) -> PeerPostgres:
        r = self.as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                             "--auth-local=peer", "--auth-host=reject")
        assert r.returncode == 0, r.stderr
        (self.data / "pg_hba.conf").write_text("local all all peer\n")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = ''\nport = 5432\nunix_socket_directories = '{self.sock}'\n"
                    "log_connections = on\nfsync = off\n")
        log = open(self.log, "ab")
        # the server looks the peer's uid up by name: our /etc/passwd, in its namespace only
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount --bind "{self.passwd}" /etc/passwd && exec runuser -u postgres -- '
             f'"{self.bin}/postgres" -D "{self.data}"'],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        assert wait_until(lambda: (self.sock / ".s.PGSQL.5432").exists() or self.proc.poll() is not None, 60)
        assert self.proc.poll() is None, self.server_log()
        return self

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)


def free_low_port() -> int:
    """A free port below 1024 (443 may be taken on a shared machine)."""
    for port in range(1023, 600, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 1024")


def as_unit(role: str, root: Path, pg: PeerPostgres, notify: str, command: list[str] | None = None):
    """The role's installed unit under the sandbox (tests/support/unit_sandbox.py), plus two
    things of the unit that sandbox leaves out: /run is the host's (systemd's PrivateTmp
    hides /tmp, not /run: the cluster's socket directory is /run/postgresql), and the
    capabilities the unit grants (AmbientCapabilities=, CapabilityBoundingSet=). Its
    /etc/passwd knows `qms`, as the machine's does once the installer made the user (libpq
    takes the default database user from it). With `command`, that instead of ExecStart, in
    the environment `sudo -u qms` gives (none of the unit's: what it needs, it must read
    itself)."""
    run = sandboxed(role, root, root / "var/lib/qms", notify, keep_home=KEEP_HOME)
    unit = read_unit(root, role)
    caps = [c.lower().removeprefix("cap_") for line in unit.all("AmbientCapabilities") for c in line.split()]
    bounding = [c.lower().removeprefix("cap_") for line in unit.all("CapabilityBoundingSet") for c in line.split()]
    argv = list(run.argv)
    i = next(i for i in range(len(argv) - 1) if argv[i:i + 2] == ["--tmpfs", "/run"])
    argv[i + 2:i + 2] = ["--bind", str(pg.sock), "/run/postgresql", "--ro-bind", str(pg.passwd), "/etc/passwd"]
    grant = "".join(f",+{c}" for c in caps)
    argv = [a.replace("--inh-caps=-all", f"--inh-caps=-all{grant}")
            .replace("--bounding-set=-all", "--bounding-set=-all" + "".join(f",+{c}" for c in bounding))
            for a in argv]
    cut = len(argv) - 1 - argv[::-1].index("--")          # the end of setpriv's options
    argv.insert(cut, f"--ambient-caps=-all{grant}")
    env = run.env
    if command is not None:
        argv = argv[:cut + 2] + command
        env = {"PATH": env["PATH"], "HOME": "/var/lib/qms", "USER": "qms", "LOGNAME": "qms", "LANG": "C.UTF-8"}
    return argv, env, run


def test_city_on_peer_auth_with_tls_on_a_low_port_and_a_point_joining(tmp_path):
    # a separate `qms` uid, a cluster of the `postgres` user, a port below 1024: as on the
    # server, this takes root (the sandbox then drops to `qms` with the unit's capabilities)
    assert os.geteuid() == 0, "this test runs the unit as the installer's qms user: run it as root"
    # the city's server: the installer first (the `qms` user), then PostgreSQL as the docs say
    root = make_root(tmp_path)
    tls = tmp_path / "tls"
    make_ca(tls, "city")
    cert = make_cert(tls, tls / "out", "city", hosts=["127.0.0.1", "localhost"], server=True)
    port = free_low_port()
    assert cli.main(["install", "--root", str(root), "--venv", str(VENV), "--role", "city", "--dsn", DOCS_DSN,
                     "--bind", "127.0.0.1", "--port", str(port), "--tls-cert", str(cert),
                     "--tls-key", str(cert.with_suffix(".key"))]) == 0
    env_file = (root / "etc/qms/city.env").read_text()
    assert f"QMS_CITY_DSN={DOCS_DSN}\n" in env_file and "\nQMS_CITY_PASSWORD_FILE" not in env_file
    assert not (root / "etc/qms/city.password").exists()
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in \
        (root / "etc/systemd/system/qms-city.service.d/50-bind-port.conf").read_text()
    qms_uid = _uid(root, "qms")
    assert qms_uid != os.geteuid()
    qms_line = next(x for x in (root / "etc/passwd").read_text().splitlines() if x.startswith("qms:"))
    pg = PeerPostgres(qms_line + "\n").start()
    try:
        # sudo -u postgres createuser qms && sudo -u postgres createdb -O qms city
        for cmd in (["createuser", "qms"], ["createdb", "-O", "qms", "city"]):
            r = pg.as_postgres(str(pg.bin / cmd[0]), "-h", str(pg.sock), *cmd[1:])
            assert r.returncode == 0, r.stderr + pg.server_log()

        listener = NotifyListener()
        argv, env, run = as_unit("city", root, pg, listener.name)
        log = open(tmp_path / "city.log", "w+")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: listener.wait_for("READY=1", 0.2) or proc.poll() is not None,
                              run.start_timeout) and proc.poll() is None, \
                open(tmp_path / "city.log").read()[-3000:] + pg.server_log()
            r = httpx.get(f"https://127.0.0.1:{port}/api/v1/city", timeout=10,
                          verify=ssl.create_default_context(cafile=str(tls / "ca.crt")))
            assert r.status_code == 200 and r.json() == []
            # it listens below 1024 as `qms`, with CAP_NET_BIND_SERVICE (bit 10) and nothing else
            pid = next(p for p in descendants(proc.pid) if b"serve" in Path(f"/proc/{p}/cmdline").read_bytes())
            server = Path(f"/proc/{pid}/status").read_text()
            fields = dict(line.split(":\t", 1) for line in server.splitlines() if ":\t" in line)
            assert int(fields["Uid"].split()[0]) == qms_uid
            assert int(fields["CapEff"], 16) == int(fields["CapAmb"], 16) == 1 << 10
            # the unit reached PostgreSQL as the OS user `qms`, by peer authentication
            assert 'identity="qms" method=peer' in pg.server_log()

            # the admin commands, as the docs write them: sudo -u qms .../qms city add-site ...
            def admin(*args: str) -> subprocess.CompletedProcess:
                a, e, _ = as_unit("city", root, pg, listener.name, [str(VENV / "bin/qms"), "city", *args])
                return subprocess.run(a, env=e, capture_output=True, text=True, timeout=120)

            added = admin("add-site", "--site", "phuong-an-khanh", "--center", CENTER_A)
            assert added.returncode == 0 and added.stderr == "", added.stderr
            token = tmp_path / "an-khanh.token"
            token.write_text(added.stdout)

            # the point: its installed uplink, over HTTPS with the city's private CA
            point = make_root(tmp_path / "point")
            config = make_config(tmp_path, free_port())
            assert load_config(config).site.center == CENTER_A
            assert cli.main(["install", "--root", str(point), "--venv", str(VENV), "--role", "uplink", "--config",
                             str(config), "--center", f"https://127.0.0.1:{port}", "--center-ca",
                             str(tls / "ca.crt"), "--token-file", str(token)]) == 0
            db = point / "var/lib/qms/service.sqlite"
            DaySimulation(load_config(point / "etc/qms/site.toml"), db, DAY, seed=5).run().close()
            for f in (point / "var/lib/qms").iterdir():
                os.chown(f, _uid(point, "qms"), _uid(point, "qms"))
            last = point_rows(db)[-1][0]
            up_listener = NotifyListener()
            up_run = sandboxed("uplink", point, point / "var/lib/qms", up_listener.name, keep_home=KEEP_HOME)
            up_log = open(tmp_path / "uplink.log", "w+")
            up = subprocess.Popen(up_run.argv, env=up_run.env, stdout=up_log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)

            def stored() -> int | None:
                out = admin("sites").stdout.split("\t")
                return int(out[2]) if len(out) > 2 else None
            try:
                assert up_listener.wait_for("READY=1", up_run.start_timeout)
                assert wait_until(lambda: stored() == last, 90), open(tmp_path / "uplink.log").read()[-3000:]
            finally:
                stop(up.pid)
                assert up.wait(15) == 0
                up_listener.close()
            assert "Traceback" not in open(tmp_path / "uplink.log").read()
            sites = admin("sites")
            assert sites.returncode == 0 and sites.stderr == "", sites.stderr
            assert sites.stdout.startswith(f"{CENTER_A}\tphuong-an-khanh\t{last}\t")
            # the same command as root: peer authentication maps it to a role there is none of
            wrong = subprocess.run([str(VENV / "bin/qms"), "city", "--dsn", f"postgresql:///city?host={pg.sock}",
                                    "sites"], capture_output=True, text=True, timeout=60)
            assert wrong.returncode == 2 and "Traceback" not in wrong.stderr, wrong.stderr
            assert 'role "root" does not exist' in wrong.stderr and "run it as the unit's user" in wrong.stderr
        finally:
            stop(proc.pid)
            code = proc.wait(15)
            listener.close()
        out = open(tmp_path / "city.log").read()
        assert code == 0, out
        assert "Traceback" not in out, out
    finally:
        pg.stop()
    # the drop-in goes with the role
    assert cli.main(["uninstall", "--root", str(root), "--role", "city"]) == 0
    assert not (root / "etc/systemd/system/qms-city.service.d/50-bind-port.conf").exists()


# ---------------------------------------------------------------- a point under another center
def _uplink(p: CityPoint, url: str, config_text: str, **options) -> tuple[Uplink, threading.Event]:
    """The point's uplink on a thread, trying again a second after a refusal (the field's
    minute is REFUSED_BACKOFF_S; the wait is a parameter of the uplink)."""
    up = Uplink(p.cfg, p.db, url, p.token, config_text=config_text, clock=p.clock, refused_wait=1.0, **options)
    halt = threading.Event()
    threading.Thread(target=up.run, args=(halt,), daemon=True).start()
    return up, halt


def _city(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qms.city", "--dsn", dsn, *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QMS_CITY_ENV": "/nonexistent"})


def test_a_point_under_another_center_is_refused_until_the_city_fixes_it(city_dsn, tmp_path, caplog):
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    p = CityPoint(tmp_path, city_dsn, "an-khanh-2", "Điểm tiếp nhận số 2", CENTER_A)
    set_center(city_dsn, p.site, CENTER_B)          # registered under the wrong center
    p.play_day(DAY, seed=7)
    text = p.config_path.read_text(encoding="utf-8")
    try:
        # what the center answers: a code and the reason, in both languages
        r = httpx.put(f"{server.url}/v1/sites/{p.site}/config", content=text.encode(),
                      headers={"Authorization": f"Bearer {p.token}"})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"] == "center_mismatch"
        assert CENTER_A in body["message_vi"] and CENTER_B in body["message_vi"]
        assert "chưa nhận dữ liệu cho đến khi hai tên trùng khớp" in body["message_vi"]
        assert "nothing is stored until they agree" in body["message_en"] == body["message"]

        caplog.set_level(logging.WARNING, logger="qms.uplink")
        up, halt = _uplink(p, server.url, text)
        try:
            assert wait_until(lambda: up.stats["refused"] >= 2, 30), up.last_error
            assert stored_seq(city_dsn, p.site) == 0            # nothing stored, nothing lost
            assert up.stats["batches"] == 0
            said = [r.getMessage() for r in caplog.records if r.name == "qms.uplink"]
            assert len(said) == 1, said                         # said once, not every try
            assert "center_mismatch" in said[0] and "Điểm vẫn giữ nguyên nhật ký" in said[0]
            assert "qms city set-center" in said[0]

            # the operator sees it at the city ...
            sites = _city(city_dsn, "sites")
            assert sites.returncode == 0
            assert f"warning: {p.site}: its uplink is refused: this point's config says" in sites.stderr
            # ... and registers it as its config says (typed decomposed: the same name)
            fixed = _city(city_dsn, "set-center", "--site", p.site, "--center", unicodedata.normalize("NFD", CENTER_A))
            assert fixed.returncode == 0 and fixed.stderr == "", fixed.stderr
            last = point_rows(p.db)[-1][0]
            assert wait_until(lambda: stored_seq(city_dsn, p.site) == last, 30), up.last_error
            assert center_rows(city_dsn, p.site) == point_rows(p.db)
            sites = _city(city_dsn, "sites")
            assert sites.stderr == "" and sites.stdout.startswith(f"{CENTER_A}\t{p.site}\t{last}\t")
        finally:
            halt.set()
    finally:
        p.close()
        server.stop()


def test_a_point_under_another_center_is_sent_once_its_config_is_fixed(city_dsn, tmp_path):
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    p = CityPoint(tmp_path, city_dsn, "binh-trung-2", "Điểm tiếp nhận số 2", CENTER_A)
    set_center(city_dsn, p.site, CENTER_B)          # the point was set up with the wrong center
    p.play_day(DAY, seed=8)
    try:
        up, halt = _uplink(p, server.url, p.config_path.read_text(encoding="utf-8"))
        try:
            assert wait_until(lambda: up.stats["refused"] >= 1, 30)
            assert stored_seq(city_dsn, p.site) == 0
        finally:
            halt.set()
        # the point's site.toml is fixed and qms-uplink restarted
        p.config_path.write_text(p.config_path.read_text(encoding="utf-8").replace(CENTER_A, CENTER_B),
                                 encoding="utf-8")
        p.cfg = load_config(p.config_path)
        up, halt = _uplink(p, server.url, p.config_path.read_text(encoding="utf-8"))
        try:
            last = point_rows(p.db)[-1][0]
            assert wait_until(lambda: stored_seq(city_dsn, p.site) == last, 30), up.last_error
            assert up.stats["refused"] == 0
        finally:
            halt.set()
        assert center_rows(city_dsn, p.site) == point_rows(p.db)
        with psycopg.connect(city_dsn) as conn:
            assert conn.execute("SELECT refused FROM city_sites WHERE site = %s", (p.site,)).fetchone()[0] is None
    finally:
        p.close()
        server.stop()



def test_a_request_refused_as_too_large_is_sent_in_smaller_ones(city_dsn, tmp_path):
    """413 (the ingest's limit, or a proxy's: nginx takes 1 MB by default): the uplink halves
    its batches instead of sending the same request forever."""
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    p = CityPoint(tmp_path, city_dsn, "an-khanh-3", "Điểm tiếp nhận số 3", CENTER_A)
    for i in range(5):
        p.play_day(DAY + dt.timedelta(days=i), seed=20 + i)
    last = point_rows(p.db)[-1][0]
    assert last > 5000                              # more than the ingest takes in one request
    up, halt = _uplink(p, server.url, p.config_path.read_text(encoding="utf-8"), batch=last)
    try:
        assert wait_until(lambda: stored_seq(city_dsn, p.site) == last, 60), up.last_error
        assert up.batch == last // 2
        assert center_rows(city_dsn, p.site) == point_rows(p.db)
    finally:
        halt.set()
        p.close()
        server.stop()


def test_a_rotated_token_is_taken_from_its_file_without_a_restart(city_dsn, tmp_path):
    """docs/city.md: `rotate-token` at the city, then the new token installed on the point
    (`qms install --role uplink --token-file`, which replaces /etc/qms/uplink.token): the
    running uplink, refused with the old one, reads the file again and goes on."""
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    p = CityPoint(tmp_path, city_dsn, "an-khanh-4", "Điểm tiếp nhận số 4", CENTER_A)
    token_file = tmp_path / "uplink.token"
    token_file.write_text(p.token + "\n")
    p.play_day(DAY, seed=30)
    up, halt = _uplink(p, server.url, p.config_path.read_text(encoding="utf-8"), token_file=token_file)
    try:
        first = point_rows(p.db)[-1][0]
        assert wait_until(lambda: stored_seq(city_dsn, p.site) == first, 30), up.last_error
        rotated = _city(city_dsn, "rotate-token", "--site", p.site)
        assert rotated.returncode == 0, rotated.stderr
        token_file.write_text(rotated.stdout)
        server.stop()                               # the ingest forgets the old token (it keeps one 30 s)
        server = CityServer(city_dsn, port=server.port, log_path=tmp_path / "server.log").start()
        p.play_day(DAY + dt.timedelta(days=1), seed=31)
        last = point_rows(p.db)[-1][0]
        assert wait_until(lambda: stored_seq(city_dsn, p.site) == last, 30), up.last_error
        assert up.stats["refused"] >= 1             # the old token was refused, the new one taken
        assert center_rows(city_dsn, p.site) == point_rows(p.db)
    finally:
        halt.set()
        p.close()
        server.stop()
