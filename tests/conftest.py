"""Shared fixtures: a real Mosquitto on a free port, a test site config, the real service."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(Path(__file__).parent.parent / "var" / "escpos-cache"))

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A real Mosquitto we can stop and restart on the same port."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = ""):
        self.workdir = workdir
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"max_queued_messages 100000\nlog_dest file {self.log}\n{extra_conf}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        if not Path(MOSQUITTO).exists():
            pytest.fail("mosquitto is not installed: run scripts/setup.sh (apt-get install mosquitto)")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text() if self.log.exists() else ''}")
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

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


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


TEST_CONFIG = ROOT / "config" / "ward-example.toml"


def make_config(tmp_path: Path, broker_port: int, extra: str = "", base: Path = TEST_CONFIG,
                hours_all_day: bool = True) -> Path:
    """The example ward config pointed at a test broker and a temp state dir."""
    text = base.read_text(encoding="utf-8")
    text = text.replace("port = 1883", f"port = {broker_port}")
    text = text.replace('state_dir = "../var"', f'state_dir = "{tmp_path / "state"}"')
    if hours_all_day:   # tests run at any hour, any weekday
        text = text.replace('open = "07:30"', 'open = "00:00"').replace('close = "17:00"', 'close = "23:59"')
        text = text.replace("weekdays = [1, 2, 3, 4, 5, 6]", "weekdays = [1, 2, 3, 4, 5, 6, 7]")
        text = text.replace("cutoff_minutes = 15", "cutoff_minutes = 0").replace("early_minutes", "# early")
    path = tmp_path / "site.toml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture
def site_config(tmp_path, broker):
    return make_config(tmp_path, broker.port)


class SiteClock:
    """Service time for tests: a working Tuesday at 09:00 in Vietnam, advancing in real time
    (plus `skip`), so tests pass at any hour and never cross midnight."""

    BASE_MS = 1795485600000      # 2026-11-24 09:00 +07:00

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.skip_ms = 0

    def __call__(self) -> int:
        return self.BASE_MS + int((time.monotonic() - self.t0) * 1000) + self.skip_ms

    def advance(self, seconds: float) -> None:
        self.skip_ms += int(seconds * 1000)


@pytest.fixture
def site_clock():
    return SiteClock()


@pytest.fixture
def service(site_config, tmp_path, site_clock):
    from service.app import CentralService
    from service.config import load_config
    svc = CentralService(load_config(site_config), tmp_path / "service.sqlite", clock=site_clock,
                         tick_seconds=3600).start()
    assert svc.link.wait_connected(10)
    yield svc
    svc.stop()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
