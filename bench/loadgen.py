"""A lean MQTT 5 load generator for bench/service.py: V virtual devices, one operation in
flight each, on one raw TCP connection.

Why not paho here: in production the devices are other machines, but this benchmark runs
them on the service's own 2 cores. paho spends ~250 µs of CPU per operation (its own
thread, a PUBACK each way, per-packet Python), which the service then does not get. This
speaks only what the benchmark needs (CONNECT, SUBSCRIBE, PUBLISH at QoS 1 with its
PUBACK, incoming PUBLISH at QoS 0 or 1) and keeps the devices' side of the protocol as it
is: each command is its own QoS 1 PUBLISH, written with its own `send`, as a device does.
`--loadgen paho` in bench/service.py keeps the paho generator for comparison.
"""
from __future__ import annotations

import os
import select
import socket
import struct
import time

import msgspec


class _Ack(msgspec.Struct):
    id: str
    ok: bool


_ack = msgspec.json.Decoder(_Ack)
_enc = msgspec.json.Encoder()


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


class RawLoad:
    """Same load as bench/service.py's paho `Load`: alternately kiosks (`ticket.request`
    over the given services) and counters (`counter.next`); latency = send → ack."""

    def __init__(self, port: int, site: str, devices: int, rounds: int, services: list[str]):
        self.site, self.services = site, services
        self.devices = [("kiosk", f"bk{n // 2}") if n % 2 == 0 else ("counter", f"bc{20 + n // 2}")
                        for n in range(devices)]
        self.remaining = {d: rounds for _, d in self.devices}
        self.dev_seq = {d: 0 for _, d in self.devices}
        self.in_flight: dict[str, tuple[float, str, str]] = {}     # command id -> sent, role, dev
        self.lat: list[float] = []
        self.mid = 0
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_id = "bench-" + os.urandom(3).hex()
        # CONNECT: protocol "MQTT" v5, clean start, keepalive 60 s, no properties
        s.sendall(_packet(0x10, _str("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + b"\x00"
                          + _str(client_id)))
        self.sock, self.buf = s, b""
        self._expect(0x20)                                           # CONNACK
        topic = f"qms/v1/{site}/ack/+"
        s.sendall(_packet(0x82, struct.pack("!H", 1) + b"\x00" + _str(topic) + b"\x01"))
        self._expect(0x90)                                           # SUBACK

    def _expect(self, kind: int) -> None:
        while True:
            for first, body in self._packets(self.sock.recv(65536)):
                if first & 0xF0 == kind:
                    return

    def _packets(self, data: bytes) -> list[tuple[int, bytes]]:
        if not data:
            raise SystemExit("the broker closed the load generator's connection")
        buf = self.buf + data
        out, i = [], 0
        while True:
            if len(buf) - i < 2:
                break
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
        self.dev_seq[dev] += 1
        seq = self.dev_seq[dev]
        cmd_id = os.urandom(16).hex()
        msg = {"v": 1, "id": cmd_id, "dev": dev, "seq": seq, "ts": int(time.time() * 1000)}
        if role == "kiosk":   # spread each kiosk's tickets over the services
            msg.update(type="ticket.request", service=self.services[(seq + int(dev[2:])) % len(self.services)])
        else:
            msg["type"] = "counter.next"
        self.mid = self.mid % 65535 + 1
        body = _str(f"qms/v1/{self.site}/cmd/{role}/{dev}") + struct.pack("!H", self.mid) + b"\x00" + _enc.encode(msg)
        self.in_flight[cmd_id] = (time.perf_counter(), role, dev)
        self.sock.send(_packet(0x32, body))                      # PUBLISH, QoS 1

    def _on_publish(self, first: int, body: bytes) -> None:
        tlen = struct.unpack_from("!H", body)[0]
        i = 2 + tlen
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
        ack = _ack.decode(body[i + plen:])
        sent = self.in_flight.pop(ack.id, None)
        if sent is None:
            return
        if not ack.ok:
            raise SystemExit(f"operation refused: {bytes(body[i + plen:])!r}")
        t, role, dev = sent
        self.lat.append(time.perf_counter() - t)
        self.remaining[dev] -= 1
        if self.remaining[dev] > 0:
            self.send(role, dev)

    def run(self) -> float:
        start = time.perf_counter()
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
        wall = time.perf_counter() - start
        self.sock.close()
        return wall
