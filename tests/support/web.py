"""The web process as tests use it (registered by tests/conftest.py): a [web] section with
tokens, the `web` app against the real service, real kiosk and counter devices, and a
small HTTP client. A test module that needs the web config overrides `site_config`:

    @pytest.fixture
    def site_config(tmp_path, broker):
        return make_config(tmp_path, broker.port, extra=WEB_EXTRA)
"""
from __future__ import annotations

import hashlib
import http.client
import json
import queue
import uuid

import pytest

from qms.config.site import load_config
from qms.mqtt.client import MqttLink
from qms.mqtt.device import Device
from qms.protocol.topics import Topics
from qms.web.server import WebApp, new_token

BOOK_TOKEN, BOOK_SHA = new_token()
OTHER_TOKEN, OTHER_SHA = new_token()
KIOSK_TOKEN, KIOSK_SHA = new_token()
REF_A = hashlib.sha256(b"citizen A").hexdigest()
REF_B = hashlib.sha256(b"citizen B").hexdigest()

WEB_EXTRA = f"""
[web]
enabled = true
api_per_minute = 600
pages_per_minute = 600
checkin_failures_per_minute = 5
alert_wait_minutes = 45
alert_pause_minutes = 20
alert_check_seconds = 0.2
follow_interval_ms = 50

[[web.tokens]]
id = "dvc-test"
scope = "booking"
sha256 = "{BOOK_SHA}"

[[web.tokens]]
id = "other-app"
scope = "booking"
sha256 = "{OTHER_SHA}"

[[web.tokens]]
id = "kiosk-1"
scope = "checkin"
sha256 = "{KIOSK_SHA}"
"""


def start_web(site_config, tmp_path, site_clock) -> WebApp:
    app = WebApp(load_config(site_config), tmp_path / "service.sqlite", clock=site_clock,
                 bookings_path=tmp_path / "web.sqlite", bind="127.0.0.1", port=0).start()
    assert app.device.link.wait_connected(10)
    return app


@pytest.fixture
def web(service, site_config, tmp_path, site_clock):
    app = start_web(site_config, tmp_path, site_clock)
    yield app
    app.stop()


@pytest.fixture
def devices(service, site_config, tmp_path):
    """A real kiosk and real counter terminals talking MQTT to the service."""
    cfg = load_config(site_config)
    made: dict[str, Device] = {}

    def get(dev: str) -> Device:
        if dev not in made:
            role = "kiosk" if dev.startswith("kiosk") else "counter"
            made[dev] = Device(cfg, dev, role, outbox_path=tmp_path / f"{dev}.outbox").start()
            assert made[dev].link.wait_connected(10)
        return made[dev]
    yield get
    for d in made.values():
        d.stop()


def take(devices, service_id: str) -> dict:
    _, ack = devices("kiosk-1").request("ticket.request", 10, service=service_id)
    assert ack is not None and ack.ok, ack
    return ack.result["ticket"]


def counter(devices, n: int, cmd: str = "counter.next") -> dict:
    _, ack = devices(f"counter-{n}").request(cmd, 10)
    assert ack is not None and ack.ok, ack
    return ack.result


def call(app: WebApp, method: str, path: str, body=None, token: str | None = None,
         headers: dict | None = None, raw: bytes | None = None) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read()
    conn.close()
    ctype = r.getheader("Content-Type", "")
    payload = json.loads(text) if ctype.startswith("application/json") else {"html": text.decode()}
    return r.status, payload, dict(r.getheaders())


def today(site_clock) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(site_clock() / 1000, dt.timezone(dt.timedelta(hours=7))).date().isoformat()


def booking(site_clock, **over) -> dict:
    # the test clock is a Tuesday at 09:00 in Vietnam
    return {"service": "ho-tich", "date": today(site_clock), "from": "09:00", "to": "10:00",
            "reference": REF_A, **over}

def retained_alerts(cfg) -> dict[str, dict]:
    """What a hall display or counter terminal connecting now would see. The broker sends
    the retained alerts on subscribing; a marker published after that (not retained, on an
    alert topic of its own) comes after them: once it is here, all of them are."""
    got: queue.Queue = queue.Queue()
    marker = Topics(cfg.site.id).alert("test-marker", uuid.uuid4().hex[:12])
    link = MqttLink(cfg.mqtt, "alert-reader", subscriptions=[(Topics(cfg.site.id).all_alerts, 1)],
                    on_message=lambda t, p, props: got.put((t, p))).start()
    try:
        assert link.wait_connected(10)
        link.publish(marker, b"", qos=1)
        out = {}
        while True:
            t, p = got.get(timeout=10)
            if t == marker:
                return out
            if p:
                out[t] = json.loads(p)
    finally:
        link.stop()


# headless Chromium as this machine runs it (no network beyond loopback: no background services)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's), one per test module."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()
