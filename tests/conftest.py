"""Shared fixtures: a real Mosquitto on a free port, a test site config, the real service."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from qms.mqtt.broker import BrokerMissing, LocalBroker, free_port  # noqa: F401 (re-exported)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


class Broker(LocalBroker):
    """A real Mosquitto for a test; a missing broker fails the test with the fix to apply."""

    def start(self, timeout: float = 10.0) -> Broker:
        try:
            return super().start(timeout)
        except BrokerMissing as e:
            pytest.fail(str(e))


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
    from qms.config.site import load_config
    from qms.service.app import CentralService
    svc = CentralService(load_config(site_config), tmp_path / "service.sqlite", clock=site_clock,
                         tick_seconds=3600).start()
    assert svc.link.wait_connected(10)
    yield svc
    svc.stop()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
