"""Shared fixtures (registered by tests/conftest.py): a real broker, the test site config,
its clock, the real central service, the artifacts folder, gpiozero's mock pins."""
from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero import Device as GpioDevice
from gpiozero.pins.mock import MockFactory

from support.site import ARTIFACTS, Broker, SiteClock, make_config


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def site_config(tmp_path, broker):
    return make_config(tmp_path, broker.port)


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


@pytest.fixture
def mock_pins():
    """gpiozero's MockFactory: real gpiozero devices on simulated pins."""
    GpioDevice.pin_factory = MockFactory()
    yield GpioDevice.pin_factory
    GpioDevice.pin_factory.reset()
    GpioDevice.pin_factory = None
