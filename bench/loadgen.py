"""Load generators for bench/service.py: V virtual devices, alternately kiosks
(`ticket.request` over the services) and counters (`counter.next`), each with one
operation in flight (closed loop: the next leaves when the ack of the last arrives).
Latency = send -> ack. The first `warmup` operations are not measured.

`RawLoad` (the default) speaks just the MQTT 5 the benchmark needs on one raw TCP
connection. Why not paho: in production the devices are other machines, but here they
run on the service's own 2 cores, and paho spends ~250 µs of CPU per operation (its own
thread, a PUBACK each way, per-packet Python) that the service then does not get. The
devices' side of the protocol is unchanged: each command is its own QoS 1 PUBLISH,
written with its own `send`, as a device does. `PahoLoad` is the same load through paho,
for comparison (`--loadgen paho`).
"""
from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class _Ack(msgspec.Struct):
    id: str
    ok: bool


_ack = msgspec.json.Decoder(_Ack)
_enc = msgspec.json.Encoder()


class _Devices:
    """The virtual devices' bookkeeping, whatever carries their messages."""

    def __init__(self, site: str, devices: int, ops: int, warmup: int, services: list[str]):
        self.site, self.services = site, services
        self.devices = [("kiosk", f"bk{n // 2}") if n % 2 == 0 else ("counter", f"bc{20 + n // 2}")
                        for n in range(devices)]
        self.to_send = ops + warmup - len(self.devices)     # after the first one of each
        self.warmup = warmup
        self.completed = 0
        self.dev_seq = {d: 0 for _, d in self.devices}
        self.in_flight: dict[str, tuple[float, str, str]] = {}     # command id -> sent, role, dev
        self.lat: list[float] = []
        self.started = time.perf_counter()
        self.on_warm = lambda: None         # called once the warm-up is over (CPU snapshots)

    def command(self, role: str, dev: str) -> tuple[str, bytes]:
        self.dev_seq[dev] += 1
        seq = self.dev_seq[dev]
        cmd_id = os.urandom(16).hex()
        msg = {"v": 1, "id": cmd_id, "dev": dev, "seq": seq, "ts": int(time.time() * 1000)}
        if role == "kiosk":   # spread each kiosk's tickets over the services (daily caps)
            msg.update(type="ticket.request", service=self.services[(seq + int(dev[2:])) % len(self.services)])
        else:
            msg["type"] = "counter.next"
        self.in_flight[cmd_id] = (time.perf_counter(), role, dev)
        return f"qms/v1/{self.site}/cmd/{role}/{dev}", _enc.encode(msg)

    def acked(self, payload: bytes) -> tuple[str, str] | None:
        """Record an ack; the (role, device) whose next operation should leave, if any."""
        ack = _ack.decode(payload)
        sent = self.in_flight.pop(ack.id, None)
        if sent is None:
            return None
        if not ack.ok:
            raise SystemExit(f"operation refused: {payload!r}")
        t, role, dev = sent
        self.completed += 1
        if self.completed > self.warmup:
            self.lat.append(time.perf_counter() - t)
        elif self.completed == self.warmup:
            self.started = time.perf_counter()
            self.on_warm()
        if self.to_send <= 0:
            return None
        self.to_send -= 1
        return role, dev

    def begin(self) -> None:
        self.started = time.perf_counter()
        if not self.warmup:
            self.on_warm()

    def wall(self) -> float:
        return time.perf_counter() - self.started


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, b = divmod(n, 128)
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class RawLoad(_Devices):
    def __init__(self, port: int, site: str, devices: int, ops: int, warmup: int, services: list[str]):
        super().__init__(site, devices, ops, warmup, services)
        self.mid = 0
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # CONNECT: protocol "MQTT" v5, clean start, keepalive 60 s, no properties
        s.sendall(_packet(0x10, _str("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + b"\x00"
                          + _str("bench-" + os.urandom(3).hex())))
        self.sock, self.buf = s, b""
        self._expect(0x20)                                           # CONNACK
        # each virtual device's own ack topic, as a device subscribes (ack/+ would also bring
        # the acks of every other device, e.g. of a garbage flood, to this one process)
        filters = b"".join(_str(f"qms/v1/{site}/ack/{dev}") + b"\x01" for _, dev in self.devices)
        s.sendall(_packet(0x82, struct.pack("!H", 1) + b"\x00" + filters))
        self._expect(0x90)                                           # SUBACK

    def _expect(self, kind: int) -> None:
        while not any(first & 0xF0 == kind for first, _ in self._packets(self.sock.recv(65536))):
            pass

    def _packets(self, data: bytes) -> list[tuple[int, bytes]]:
        if not data:
            raise SystemExit("the broker closed the load generator's connection")
        buf = self.buf + data
        out, i = [], 0
        while len(buf) - i >= 2:
            n, mult, j = 0, 1, i + 1
            while j < len(buf):
                b = buf[j]
                n += (b & 127) * mult
                mult *= 128
                j += 1
                if not b & 128:
                    break
            else:
                break
            if len(buf) - j < n:
                break
            out.append((buf[i], buf[j:j + n]))
            i = j + n
        self.buf = buf[i:]
        return out

    def send(self, role: str, dev: str) -> None:
        topic, payload = self.command(role, dev)
        self.mid = self.mid % 65535 + 1
        body = _str(topic) + struct.pack("!H", self.mid) + b"\x00" + payload
        self.sock.send(_packet(0x32, body))                      # PUBLISH, QoS 1

    def _on_publish(self, first: int, body: bytes) -> None:
        i = 2 + struct.unpack_from("!H", body)[0]                 # past the topic
        if first & 0x06:                                          # QoS 1: acknowledge it
            self.sock.send(_packet(0x40, body[i:i + 2] + b"\x00"))
            i += 2
        plen, mult = 0, 1                                         # properties length
        while True:
            b = body[i]
            i += 1
            plen += (b & 127) * mult
            mult *= 128
            if not b & 128:
                break
        nxt = self.acked(body[i + plen:])
        if nxt:
            self.send(*nxt)

    def run(self) -> float:
        self.begin()
        for role, dev in self.devices:
            self.send(role, dev)
        deadline = time.monotonic() + 300
        while self.in_flight:
            if time.monotonic() > deadline:
                raise SystemExit("benchmark did not finish")
            if not select.select([self.sock], [], [], 1.0)[0]:
                continue
            for first, body in self._packets(self.sock.recv(65536)):
                if first & 0xF0 == 0x30:
                    self._on_publish(first, body)
        wall = self.wall()
        self.sock.close()
        return wall


class PahoLoad(_Devices):
    def __init__(self, port: int, site: str, devices: int, ops: int, warmup: int, services: list[str]):
        super().__init__(site, devices, ops, warmup, services)
        self.done = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-" + os.urandom(3).hex(),
                        protocol=paho.MQTTv5)
        c.on_connect = lambda cl, *a: cl.subscribe([(f"qms/v1/{site}/ack/{dev}", 1) for _, dev in self.devices])
        c.on_message = self._on_ack
        c.on_socket_open = lambda cl, ud, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.max_inflight_messages_set(1000)
        c.connect("127.0.0.1", port)
        self.client = c

    def send(self, role: str, dev: str) -> None:
        topic, payload = self.command(role, dev)
        self.client.publish(topic, payload, qos=1)

    def _on_ack(self, client, userdata, msg):
        try:
            nxt = self.acked(msg.payload)
        except SystemExit as e:          # paho's thread: report and end the run
            print(e, flush=True)
            os._exit(1)
        if nxt:
            self.send(*nxt)
        elif not self.in_flight:
            self.done.set()

    def run(self) -> float:
        self.client.loop_start()
        time.sleep(0.5)
        self.begin()
        for role, dev in self.devices:
            self.send(role, dev)
        if not self.done.wait(300):
            raise SystemExit("benchmark did not finish")
        wall = self.wall()
        self.client.loop_stop()
        return wall
