"""`LocalBroker`: a private Mosquitto for the demo and the tests, which can stop and restart it."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


class BrokerMissing(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listens(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds the listening socket of 127.0.0.1:`port` (Linux /proc;
    None where that cannot be read)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
        inodes = {f"socket:[{f[9]}]" for f in map(str.split, lines)
                  if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port}
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def mosquitto_path() -> str:
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if p and Path(p).exists():
            return p
    raise BrokerMissing("mosquitto is not installed: run scripts/setup.sh "
                        "(or: apt-get install mosquitto mosquitto-clients)")


class LocalBroker:
    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "",
                 persistence: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._own_port = port is None        # chosen here: another one if it is taken meanwhile
        self.port = port or free_port()
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"
        self._persist = (f"persistence true\npersistence_location {self.workdir}/\n" if persistence
                         else "persistence false\n")
        self._extra = extra_conf
        self._write_conf()
        self.proc: subprocess.Popen | None = None

    def _write_conf(self) -> None:
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{self._persist}"
            f"max_queued_messages 100000\nset_tcp_nodelay true\nlog_dest file {self.log}\n{self._extra}\n")

    def start(self, timeout: float = 10.0) -> LocalBroker:
        self.proc = subprocess.Popen([mosquitto_path(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                # something answers on the port: ours, or a broker of another process that
                # took the free port first (ours then exits: "address in use")
                owns = _listens(self.proc.pid, self.port)
                if owns or (owns is None and self.proc.poll() is None):
                    return self
                if self.proc.poll() is not None or time.monotonic() > deadline - timeout / 2:
                    self.stop()
                    if not self._own_port:
                        raise RuntimeError(f"port {self.port} is taken by another process")
                    self.port = free_port()
                    self._write_conf()
                    return self.start(timeout)
                time.sleep(0.05)
            except OSError:
                if self.proc.poll() is not None:
                    log = self.log.read_text() if self.log.exists() else ""
                    raise RuntimeError(f"mosquitto exited at start: {log[-2000:]}") from None
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
