"""The counter box's logic with umqtt.simple's own code against a real Mosquitto and the
real central service.

umqtt.simple (firmware_py/vendor/umqtt_simple.py, the file a box runs) is used
unchanged; only its `socket` module is swapped for a thin adapter that gives CPython
sockets MicroPython's stream methods (read/write, non-blocking read -> None). So the MQTT
bytes on the wire are the box's, and the service that answers is production code.
"""
from __future__ import annotations

import socket as pysocket
import time
import types

import pytest
from support.mqtt import Recorder, issue
from support.wait import wait_until

from qms.config.site import load_config
from qms.firmware.testing import fakes
from qms.firmware.testing.rig import Rig
from qms.firmware.vendor import umqtt_simple
from qms.mqtt.device import Device
from qms.mqtt.outbox import new_id
from qms.protocol import messages as m


class MpSocket:
    """A CPython socket with MicroPython's socket stream API, as umqtt.simple uses it."""

    def __init__(self):
        self.s = pysocket.socket()
        self.blocking = True

    def settimeout(self, t):
        self.s.settimeout(t)

    def setblocking(self, flag):
        self.blocking = flag
        self.s.setblocking(flag)

    def connect(self, addr):
        self.s.connect(addr)

    def write(self, buf, n=None):
        if isinstance(buf, str):             # MicroPython streams take text as UTF-8
            buf = buf.encode()
        data = bytes(buf if n is None else memoryview(buf)[:n])
        self.s.sendall(data)
        return len(data)

    def read(self, n):
        if not self.blocking:
            try:
                return self.s.recv(n)
            except BlockingIOError:
                return None
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def close(self):
        self.s.close()


mp_socket = types.SimpleNamespace(socket=MpSocket, getaddrinfo=pysocket.getaddrinfo)


class HostClock(fakes.FakeClock):
    """Real time in MicroPython's wrapping ticks; `advance` sleeps."""

    def __init__(self):
        super().__init__(start=fakes.TICKS_PERIOD - 3000)   # wrap during the test
        self.t0 = time.monotonic()
        self.base = self.t

    def ticks_ms(self):
        return (self.base + int((time.monotonic() - self.t0) * 1000)) % fakes.TICKS_PERIOD

    def unix_ms(self):
        return int(time.time() * 1000)

    def advance(self, ms):
        time.sleep(ms / 1000)


@pytest.fixture
def box(monkeypatch, broker, service):
    monkeypatch.setattr(umqtt_simple, "socket", mp_socket)
    clients = []

    def factory():
        clients.append(umqtt_simple.MQTTClient("counter-3", "127.0.0.1", broker.port, keepalive=30))
        return clients[-1]
    rig = Rig(clock=HostClock(), client_factory=factory)
    rig.clients = clients
    rig.box.link.backoff_min, rig.box.link.backoff_max = 200, 1000
    yield rig
    rig.box.link.close()


@pytest.fixture
def kiosk(site_config, tmp_path, service):
    k = Device(load_config(site_config), "kiosk-1", "kiosk", outbox_path=tmp_path / "kiosk.sqlite").start()
    yield k
    k.stop()



def events(service, type_):
    return [e for e in service.store.events(day=service.core.day) if m.type_of(e) == type_]


def wait_for(rig, cond, seconds=5.0):
    """Run the box's loop until `cond` holds."""
    return wait_until(cond, seconds, step=lambda: rig.run(10), every=0)


def test_box_calls_recalls_transfers_and_gets_rated_through_the_real_service(box, kiosk, service, broker):
    status_topic = "qms/v1/phuong-an-khanh/status/counter-3"
    watcher = Recorder(broker.port, status_topic)
    try:
        n = issue(kiosk, n=3)
        assert wait_for(box, lambda: box.box.link.online and box.box.status is not None)
        assert wait_for(box, lambda: (watcher.latest(status_topic) or {}).get("online") is True)

        box.press("next")
        assert wait_for(box, lambda: box.shown() == str(n[0]))
        assert [(e.number, e.counter) for e in events(service, "ticket.called")] == [(n[0], 3)]

        box.press("recall")
        assert wait_for(box, lambda: len(events(service, "ticket.recalled")) == 1)

        box.press("transfer")
        assert box.shown() == "L-2"
        box.press("transfer")
        assert box.shown() == "q-2"
        box.hold("transfer")
        assert wait_for(box, lambda: len(events(service, "ticket.transferred")) == 1)
        assert events(service, "ticket.transferred")[0].to_counter == 2

        box.run(1600)
        box.press("next")
        assert wait_for(box, lambda: box.shown() == str(n[1]))
        box.press("done")
        box.press("rate4")
        box.press("rate1")
        assert wait_for(box, lambda: len(events(service, "rating.submitted")) == 1)
        box.run(300)
        rated = events(service, "rating.submitted")
        assert [(e.level, e.counter) for e in rated] == [(4, 3)] and rated[0].ticket_id == \
            events(service, "ticket.done")[0].ticket_id

        box.hold("no_show", 50)            # too short for a no-show: nothing
        box.run(1600)
        box.press("next")
        assert wait_for(box, lambda: box.shown() == str(n[2]))
        box.hold("no_show")
        assert wait_for(box, lambda: [e.number for e in events(service, "ticket.no_show")] == [n[2]])
        assert wait_for(box, lambda: box.shown() == "----")
        assert service.stats["invalid"] == 0
    finally:
        watcher.close()


def test_box_through_a_broker_outage_refuses_calls_and_applies_queued_ones_once(box, kiosk, service, broker):
    issue(kiosk, n=2)
    assert wait_for(box, lambda: box.box.link.online and box.box.status is not None)
    box.press("next")
    assert wait_for(box, lambda: box.box.serving() is not None)
    box.run(1600)

    broker.stop()
    box.run(200)                             # the closed socket shows at the next receive
    assert not box.box.link.online
    box.run(1600)
    box.press("next")
    assert box.showing("OFF")
    box.press("done")
    box.press("rate2")
    box.press("pause")
    assert len(box.box.channel.outbox.entries) == 3

    broker.start()
    assert service.link.wait_connected(10)
    assert wait_for(box, lambda: box.box.channel.outbox.entries == [], 15)
    assert wait_for(box, lambda: box.box.status == "paused")
    assert len(events(service, "ticket.called")) == 1       # the refused/withdrawn calls never arrived
    assert len(events(service, "ticket.done")) == 1
    assert [e.level for e in events(service, "rating.submitted")] == [2]
    assert len(events(service, "counter.paused")) == 1
    assert any("next refused: no link to the service" in line for line in box.lines), box.lines
    assert wait_for(box, lambda: box.box.led_mode() == "paused") and len(box.clients) >= 2


def test_box_keeps_working_when_its_link_dies_mid_session(box, kiosk, service, broker):
    issue(kiosk, n=1)
    assert wait_for(box, lambda: box.box.link.online and box.box.status is not None)
    box.clients[-1].sock.close()             # the Wi-Fi drops under the client
    box.run(100)
    box.press("pause")                       # queued while reconnecting
    assert wait_for(box, lambda: box.box.status == "paused", 10)
    assert len(events(service, "counter.paused")) == 1 and len(box.clients) >= 2


def test_box_shows_a_renumbered_ticket_and_its_paper_number_in_turn(box, kiosk, service, site_clock):
    """Two offline papers with the same number (a kiosk whose store was replaced): the real
    service gives the second a free number; the box's board shows it, then the paper's."""
    for _ in range(2):
        kiosk.send("ticket.offline", ticket_id=new_id(), service="ho-tich", priority=None, number=2950,
                   issued_at=site_clock())
    assert wait_until(lambda: kiosk.outbox.count() == 0, 10)
    new = next(t.number for t in service.core.tickets.values() if t.printed_number == 2950)
    assert wait_for(box, lambda: box.box.link.online and box.box.status is not None)
    box.press("next")
    assert wait_for(box, lambda: box.shown() == "2950")
    box.run(1600)
    box.press("next")
    assert wait_for(box, lambda: box.shown() == str(new))
    assert box.box.serving()["printed_number"] == 2950
    assert wait_for(box, lambda: box.shown() == "2950", 8)         # the paper's number, in turn
    assert wait_for(box, lambda: box.shown() == str(new), 8)
    assert any(f"ok counter.next now {new} (printed 2950)" in line for line in box.lines), box.lines
