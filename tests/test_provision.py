"""`qms provision` output run by a real Mosquitto: who may publish and read what."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path

import msgspec
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.site import TEST_CONFIG, Broker, free_port

from qms.cli import main as cli
from qms.config.site import load_config
from qms.ops.provision import check_password, hash_password

SITE = "phuong-an-khanh"
T = f"qms/v1/{SITE}"
NOT_AUTHORIZED = 135


class Client:
    """A bare paho client (MQTT 5) that reports PUBACK reason codes and what it received."""

    def __init__(self, port: int, user: str | None, password: str | None, client_id: str | None = None,
                 tls: dict | None = None):
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or user or "anon",
                             protocol=paho.MQTTv5)
        if user:
            self.c.username_pw_set(user, password)
        if tls:
            self.c.tls_set(**tls)
        self.connack = queue.Queue()
        self.acks: dict[int, queue.Queue] = {}
        self.got: queue.Queue = queue.Queue()
        self.disconnected = threading.Event()
        self.lock = threading.Lock()
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put(rc.value)
        self.c.on_publish = self._on_publish
        self.c.on_message = lambda c, u, m: self.got.put((m.topic, m.payload))
        self.c.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.c.connect_async("127.0.0.1", port)
        self.c.loop_start()
        try:
            self.rc = self.connack.get(timeout=5)
        except queue.Empty:
            self.rc = None

    def _on_publish(self, c, u, mid, rc, props):
        with self.lock:
            self.acks.setdefault(mid, queue.Queue()).put(rc.value)

    def publish(self, topic: str, payload=b"{}", retain=False) -> int:
        with self.lock:
            info = self.c.publish(topic, payload, qos=1, retain=retain)
            q = self.acks.setdefault(info.mid, queue.Queue())
        return q.get(timeout=5)

    def subscribe(self, *filters: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe([(f, 1) for f in filters])
        assert done.wait(5)

    def received(self, timeout=1.0) -> list[str]:
        out = []
        try:
            while True:
                out.append(self.got.get(timeout=timeout)[0])
                timeout = 0.2
        except queue.Empty:
            return out

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def run_generated_broker(tmp: Path, out: Path, port: int) -> Broker:
    b = Broker(tmp / "broker", port)
    # `user root`: pytest's temp dirs are private to root, and Mosquitto would drop to the
    # `mosquitto` user (the installer makes the real files readable by that user)
    conf = (out / "mosquitto" / "qms.conf").read_text() + f"log_dest file {b.log}\nuser root\n"
    b.conf.write_text(conf)
    return b.start()


@pytest.fixture
def provisioned(tmp_path):
    tmp_path.joinpath("broker").mkdir()
    out, port = tmp_path / "out", free_port()
    rc = cli.main(["provision", str(TEST_CONFIG), str(out), "--port", str(port), "--bind", "127.0.0.1",
                   "--in-place"])
    assert rc == 0
    broker = run_generated_broker(tmp_path, out, port)
    clients: list[Client] = []

    def connect(user, client_id=None, password=None):
        pw = password or (out / "devices" / f"{user}.password").read_text().strip()
        c = Client(port, user, pw, client_id)
        clients.append(c)
        return c
    yield out, port, connect
    for c in clients:
        c.close()
    broker.stop()


def test_password_hash_is_mosquittos(tmp_path):
    pw = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "u", "bí mật"], check=True)
    theirs = pw.read_text().strip().split(":", 1)[1]
    assert check_password("bí mật", theirs) and not check_password("bi mat", theirs)
    assert check_password("x", hash_password("x"))


def test_anonymous_and_wrong_password_refused(provisioned):
    out, port, connect = provisioned
    anon = Client(port, None, None)
    assert anon.rc == NOT_AUTHORIZED
    anon.close()
    assert connect("kiosk-1", password="guess").rc == NOT_AUTHORIZED   # 2.0.11 says 135, not 134
    assert connect("kiosk-1").rc == 0


FORBIDDEN = [
    # a kiosk cannot call numbers, publish counter state, forge facts, acks or others' status
    ("kiosk-1", "cmd/counter/counter-1"), ("kiosk-1", "cmd/kiosk/robot-1"),
    ("kiosk-1", "state/counter/1"), ("kiosk-1", "state/notice"), ("kiosk-1", "event/ticket.issued"),
    ("kiosk-1", "ack/kiosk-1"), ("kiosk-1", "status/display-1"),
    ("kiosk-1", "cmd/counter/kiosk-1"),           # its own id under another role
    # a display can only read
    ("display-1", "cmd/display/display-1"), ("display-1", "cmd/kiosk/kiosk-1"),
    ("display-1", "state/calls"), ("display-1", "event/ticket.called"),
    # a counter acts only as its own counter
    ("counter-1", "cmd/counter/counter-2"), ("counter-1", "state/counter/1"),
    ("counter-1", "event/ticket.called"), ("counter-1", "ack/counter-2"),
    ("counter-1", "alert/printer/kiosk-1"),
    # the service does not send commands or speak for devices
    ("service", "cmd/kiosk/kiosk-1"), ("service", "status/kiosk-1"),
    # only an admin writes admin/#: nobody else refills a robot's dispenser
    ("kiosk-1", "admin/robot-1/refill"), ("robot-1", "admin/robot-1/refill"),
    ("counter-1", "admin/robot-1/refill"), ("web", "admin/robot-1/refill"),
    ("service", "admin/robot-1/refill"),
    # `qms web` checks in tickets as itself only, and cannot call or forge state
    ("web", "cmd/kiosk/web"), ("web", "cmd/web/kiosk-1"), ("web", "cmd/counter/counter-1"),
    ("web", "state/counter/1"), ("web", "event/ticket.called"), ("web", "ack/web"),
    ("web", "status/service"),
    # only `qms web` and the service raise alerts
    ("kiosk-1", "alert/wait/ho-tich"), ("display-1", "alert/wait/ho-tich"),
    ("admin-1", "alert/pause/3"),
    # the admin console acts as itself
    ("admin-1", "cmd/admin/service"), ("admin-1", "cmd/counter/counter-1"), ("admin-1", "state/notice"),
]


def test_every_cross_role_and_cross_device_publish_refused(provisioned):
    out, port, connect = provisioned
    clients = {}
    for user, topic in FORBIDDEN:
        c = clients.get(user) or clients.setdefault(user, connect(user))
        assert c.rc == 0
        assert c.publish(f"{T}/{topic}") == NOT_AUTHORIZED, (user, topic)
    # another site's topics, even the same shape as its own
    assert clients["kiosk-1"].publish("qms/v1/other-site/cmd/kiosk/kiosk-1") == NOT_AUTHORIZED


def test_allowed_flows_work_and_nobody_eavesdrops(provisioned):
    out, port, connect = provisioned
    service, kiosk, counter, display = (connect(u) for u in ("service", "kiosk-1", "counter-1",
                                                             "display-1"))
    robot = connect("robot-1")
    service.subscribe(f"{T}/cmd/#", f"{T}/status/+")
    kiosk.subscribe(f"{T}/ack/kiosk-1", f"{T}/state/#", f"{T}/cmd/#", f"{T}/ack/#")  # last two: spying
    counter.subscribe(f"{T}/ack/counter-1", f"{T}/state/#", f"{T}/alert/#")
    display.subscribe(f"{T}/state/#", f"{T}/event/#", f"{T}/status/+", f"{T}/alert/#", f"{T}/cmd/#")
    robot.subscribe(f"{T}/ack/robot-1")

    ok = (0, 16)    # success, or "no matching subscribers"
    assert kiosk.publish(f"{T}/cmd/kiosk/kiosk-1") in ok
    assert robot.publish(f"{T}/cmd/robot/robot-1") in ok
    assert counter.publish(f"{T}/cmd/counter/counter-1") in ok
    assert display.publish(f"{T}/status/display-1", retain=True) in ok
    assert sorted(service.received()) == sorted([f"{T}/cmd/kiosk/kiosk-1", f"{T}/cmd/robot/robot-1",
                                                 f"{T}/cmd/counter/counter-1", f"{T}/status/display-1"])
    for topic in ("ack/kiosk-1", "ack/counter-1", "ack/robot-1", "state/counter/1",
                  "event/ticket.called", "alert/printer/kiosk-1"):
        assert service.publish(f"{T}/{topic}") in ok, topic
    # its own ack may come twice (it also matches the spying ack/#), counter-1's never
    assert set(kiosk.received()) == {f"{T}/ack/kiosk-1", f"{T}/state/counter/1"}
    assert sorted(counter.received()) == [f"{T}/ack/counter-1", f"{T}/alert/printer/kiosk-1",
                                          f"{T}/state/counter/1"]
    assert robot.received() == [f"{T}/ack/robot-1"]
    # the display saw the board, the facts, the alert and the status, but no command
    assert sorted(display.received()) == sorted([f"{T}/status/display-1", f"{T}/state/counter/1",
                                                 f"{T}/event/ticket.called",
                                                 f"{T}/alert/printer/kiosk-1"])


def test_web_alerts_and_admin_refill_flows(provisioned):
    """`qms web` raises and clears alerts that counters and the display see; an admin's
    refill reaches only the robot it is for; the kiosk hears the calls and the service."""
    out, port, connect = provisioned
    web, admin, robot, kiosk, counter, display, service = (
        connect(u) for u in ("web", "admin-1", "robot-1", "kiosk-1", "counter-1", "display-1", "service"))
    web.subscribe(f"{T}/ack/web", f"{T}/state/#", f"{T}/alert/#", f"{T}/cmd/#", f"{T}/event/#")
    counter.subscribe(f"{T}/alert/#")
    display.subscribe(f"{T}/alert/#")
    robot.subscribe(f"{T}/admin/robot-1/#", f"{T}/event/ticket.called", f"{T}/status/service")
    kiosk.subscribe(f"{T}/admin/#", f"{T}/event/ticket.recalled")         # admin/#: spying on the robot's
    service.subscribe(f"{T}/cmd/#")
    ok = (0, 16)
    alert = f"{T}/alert/wait/ho-tich"
    assert web.publish(alert, b'{"v": 1}', retain=True) in ok
    assert counter.received() == [alert] and display.received() == [alert]
    assert web.publish(alert, b"", retain=True) in ok                   # cleared
    assert counter.received() == [alert] and display.received() == [alert]
    assert web.received() == [alert, alert]     # it reads its own alerts back after a restart
    assert web.publish(f"{T}/cmd/web/web") in ok and web.publish(f"{T}/status/web", retain=True) in ok
    assert service.received() == [f"{T}/cmd/web/web"]
    assert admin.publish(f"{T}/admin/robot-1/refill", b'{"items": 200}') in ok
    assert admin.publish(f"{T}/cmd/admin/admin-1") in ok
    assert service.received() == [f"{T}/cmd/admin/admin-1"]
    for topic in ("ack/web", "state/service/ho-tich", "event/ticket.called", "event/ticket.recalled",
                  "status/service"):
        assert service.publish(f"{T}/{topic}", retain=topic.startswith("status")) in ok, topic
    # web: its ack, the state and its own alert; never commands (not even its own) or facts
    assert sorted(web.received()) == [f"{T}/ack/web", f"{T}/state/service/ho-tich"]
    assert sorted(robot.received()) == [f"{T}/admin/robot-1/refill", f"{T}/event/ticket.called",
                                        f"{T}/status/service"]
    assert kiosk.received() == [f"{T}/event/ticket.recalled"]            # not the robot's refill


def test_a_device_cannot_take_over_another_client_id(provisioned):
    out, port, connect = provisioned
    service = connect("service")
    intruder = connect("kiosk-1", client_id="service")
    assert intruder.rc == 0
    assert not service.disconnected.wait(1.0)      # the real service was not kicked off


def test_real_service_and_kiosk_with_generated_credentials(provisioned, tmp_path, site_clock):
    """The project's own MqttLink (will, status, subscriptions) passes the ACL end to end."""
    from qms.mqtt.device import Device
    from qms.service.app import CentralService
    out, port, connect = provisioned
    base = load_config(TEST_CONFIG)

    def cfg_for(device):
        mqtt = msgspec.structs.replace(base.mqtt, port=port,
                                       password_file=str(out / "devices" / f"{device}.password"))
        return msgspec.structs.replace(base, mqtt=mqtt, hours=msgspec.structs.replace(
            base.hours, open="00:00", close="23:59", weekdays=[1, 2, 3, 4, 5, 6, 7], cutoff_minutes=0,
            early_minutes=0))
    watcher = connect("display-1")
    watcher.subscribe(f"{T}/status/+")
    svc = CentralService(cfg_for("service"), tmp_path / "svc.sqlite", clock=site_clock).start()
    kiosk = Device(cfg_for("kiosk-1"), "kiosk-1", "kiosk", outbox_path=tmp_path / "k.sqlite").start()
    try:
        assert svc.link.wait_connected(10) and kiosk.link.wait_connected(10)
        msg, ack = kiosk.request("ticket.request", 10, service="chung-thuc")
        assert ack is not None and ack.ok, ack
        assert ack.result["ticket"]["number"] == 1001
        assert svc.link.stats["refused_publishes"] == 0 and kiosk.link.stats["refused_publishes"] == 0
        statuses = {}
        while not {"service", "kiosk-1"} <= statuses.keys():
            topic, payload = watcher.got.get(timeout=5)
            statuses[topic.rsplit("/", 1)[1]] = json.loads(payload)
        assert statuses["kiosk-1"]["online"] is True
    finally:
        kiosk.stop()
        svc.stop()


def test_tls_listener_needs_a_device_certificate_and_binds_it_to_its_user(tmp_path):
    out, port, tls_port = tmp_path / "out", free_port(), free_port()
    assert cli.main(["provision", str(TEST_CONFIG), str(out), "--port", str(port), "--bind",
                     "127.0.0.1", "--in-place", "--tls", "--tls-port",
                     str(tls_port), "--tls-host", "127.0.0.1"]) == 0
    conf = (out / "mosquitto" / "qms.conf").read_text()
    assert f"listener {port}" not in conf                 # --tls alone: no plain listener
    # the broker drops root: its key must be readable by the group it runs as
    key = out / "mosquitto" / "tls" / "server.key"
    assert key.stat().st_mode & 0o777 == 0o640
    if os.geteuid() == 0 and _group("mosquitto") is not None:
        assert key.stat().st_gid == _group("mosquitto")
    (tmp_path / "broker").mkdir()
    broker = run_generated_broker(tmp_path, out, tls_port)
    pw = {u: (out / "devices" / f"{u}.password").read_text().strip() for u in ("counter-1", "kiosk-1")}
    ca = str(out / "tls" / "ca.crt")

    def certs(dev):
        return {"ca_certs": ca, "certfile": str(out / f"tls/devices/{dev}.crt"),
                "keyfile": str(out / f"tls/devices/{dev}.key")}
    try:
        good = Client(tls_port, "counter-1", pw["counter-1"], tls=certs("counter-1"))
        assert good.rc == 0
        assert good.publish(f"{T}/cmd/counter/counter-1") in (0, 16)
        assert good.publish(f"{T}/cmd/counter/counter-2") == NOT_AUTHORIZED   # ACL still applies
        good.close()
        no_cert = Client(tls_port, "counter-1", pw["counter-1"], tls={"ca_certs": ca})
        assert no_cert.rc != 0            # handshake refused: no client certificate
        no_cert.close()
        # kiosk-1's certificate with counter-1's name and password is kiosk-1, nobody else
        posing = Client(tls_port, "counter-1", pw["counter-1"], tls=certs("kiosk-1"))
        assert posing.rc == 0
        assert posing.publish(f"{T}/cmd/counter/counter-1") == NOT_AUTHORIZED
        assert posing.publish(f"{T}/cmd/kiosk/kiosk-1") in (0, 16)
        posing.close()
        plain = Client(port, "counter-1", pw["counter-1"])
        assert plain.rc is None           # nothing listens there
        plain.close()
    finally:
        broker.stop()


def _group(name: str) -> int | None:
    import grp
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def test_tls_keeps_the_plain_listener_only_when_asked(tmp_path):
    out, port = tmp_path / "out", free_port()
    assert cli.main(["provision", str(TEST_CONFIG), str(out), "--port", str(port), "--bind", "127.0.0.1",
                     "--in-place", "--tls", "--tls-host", "127.0.0.1", "--keep-plain"]) == 0
    conf = (out / "mosquitto" / "qms.conf").read_text()
    assert f"listener {port} 127.0.0.1" in conf and "use_identity_as_username true" in conf


def test_rerun_keeps_passwords_and_files(tmp_path):
    out = tmp_path / "out"
    args = ["provision", str(TEST_CONFIG), str(out)]
    assert cli.main(args) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert cli.main(args) == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert oct((out / "devices" / "kiosk-1.password").stat().st_mode & 0o777) == "0o600"
    assert cli.main(args + ["--rotate"]) == 0
    assert (out / "devices" / "kiosk-1.password").read_bytes() != before[out / "devices" / "kiosk-1.password"]


def test_bad_input_gets_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[site]\nid = 'X'\n")
    assert cli.main(["provision", str(bad), str(tmp_path / "o")]) == 1
    assert "bad.toml" in capsys.readouterr().err
    assert cli.main(["provision", str(TEST_CONFIG), str(tmp_path / "o"), "--tls"]) == 1
    assert "--tls-host" in capsys.readouterr().err


def test_an_oversized_packet_is_refused_at_the_door(provisioned):
    """max_packet_size: a device that sends more than 64 KiB is disconnected by the broker
    (a command is at most 16 KiB; the service would only count it)."""
    out, port, connect = provisioned
    kiosk = connect("kiosk-1")
    assert kiosk.rc == 0
    kiosk.c.publish(f"{T}/cmd/kiosk/kiosk-1", b"x" * 70_000, qos=1)
    assert kiosk.disconnected.wait(5)
