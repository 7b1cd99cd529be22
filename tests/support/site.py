"""The test site: a real Mosquitto, the example ward's config pointed at it, a service clock."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from qms.mqtt.broker import BrokerMissing, LocalBroker, free_port  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
TEST_CONFIG = ROOT / "config" / "ward-example.toml"


class Broker(LocalBroker):
    """A real Mosquitto for a test; a missing broker fails the test with the fix to apply."""

    def start(self, timeout: float = 10.0) -> Broker:
        try:
            return super().start(timeout)
        except BrokerMissing as e:
            pytest.fail(str(e))


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
