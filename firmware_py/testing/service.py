"""A scripted central service for running the box where the real one cannot run (inside
MicroPython): answers one counter's commands like qms/service does — acks with
ok/result/error/message_vi, retained counter state, each command id applied once.
MicroPython-safe."""
import json

from .. import protocol
from . import fakes


class ScriptedService:
    def __init__(self, broker, numbers, site="phuong-an-khanh", counter=3, service=None, printed=None):
        self.broker = broker
        self.base = "qms/v1/" + site
        self.counter = counter
        self.service = service          # the service the waiting tickets are in, if known
        self.printed = printed or {}    # number -> its paper's number (renumbered tickets)
        self.waiting = list(numbers)
        self.serving = None
        self.status = "open"
        self.seen = {}                  # id -> ack payload
        self.applied = []               # (type, detail) in the order applied
        self.silent = False
        self.connect()
        self.publish_state()

    def connect(self):
        """(Again, after the broker restarted.)"""
        self.client = fakes.FakeMqttClient(self.broker, "service")
        self.client.set_callback(self.on_command)
        self.client.connect()
        self.client.subscribe(self.base + "/cmd/counter/+")

    def view(self):
        return {"v": 1, "counter": self.counter, "status": self.status, "serving": self.serving}

    def publish_state(self):
        self.broker.publish(self.base + "/state/counter/" + str(self.counter),
                            json.dumps(self.view()).encode(), True)

    def on_command(self, topic, payload):
        msg = json.loads(payload)
        for k in ("v", "id", "dev", "seq", "ts", "type"):
            assert k in msg, "envelope field %s missing" % k
        assert protocol.valid_id(msg["id"]) and msg["v"] == 1 and isinstance(msg["seq"], int)
        ack_topic = self.base + "/ack/" + msg["dev"]
        if msg["id"] in self.seen:
            self.broker.publish(ack_topic, self.seen[msg["id"]])
            return
        ok, error, t = True, None, msg["type"]
        if t == "counter.next":
            if self.status == "paused":
                ok, error = False, "counter_paused"
            else:
                n = self.waiting.pop(0) if self.waiting else None
                self.serving = {"ticket_id": "ticket-%d" % n, "number": n} if n else None
                if n and self.service:
                    self.serving["service"] = self.service
                if n in self.printed:
                    self.serving["printed_number"] = self.printed[n]
        elif t in ("counter.done", "counter.no_show", "counter.transfer"):
            self.serving = None
        elif t == "counter.pause":
            self.status = "paused"
        elif t == "counter.resume":
            self.status = "open"
        self.applied.append((t, msg.get("level") or msg.get("to_service") or msg.get("to_counter")))
        ack = {"v": 1, "id": msg["id"], "ok": ok}
        if ok:
            ack["result"] = {"counter": self.counter, "state": self.view()}
        else:
            ack["error"] = error
            ack["message_vi"] = "Quầy %d đang tạm nghỉ." % self.counter
        self.seen[msg["id"]] = json.dumps(ack).encode()
        self.broker.publish(ack_topic, self.seen[msg["id"]])
        self.publish_state()

    def __call__(self):
        while self.client.queue and not self.silent:
            self.client.check_msg()
