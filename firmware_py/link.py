"""The box's MQTT link over an umqtt.simple-style client, reconnecting by itself.

umqtt.robust retries inside the call that failed and blocks the box meanwhile; here a
failure only marks the link down, and `poll` (called from the main loop) retries with
jittered exponential back-off while keys, display and LED keep working. The client is
made by an injected factory, so tests use an in-memory broker or a real one.
Incoming messages are only queued (`take()` hands them over): umqtt delivers them from
inside `publish` while it waits for a PUBACK, and handling them there could publish
again from within a publish.

umqtt.simple quirks handled here: `check_msg` leaves the socket blocking with no
timeout (so we set the I/O timeout again after each poll), it does not send pings
(we do, within the keep-alive), and its packet id is never wrapped (we wrap it before
it overflows 16 bits).
"""


class MqttLink:
    def __init__(self, factory, clock, rng, *, subscriptions, will=None,
                 online_payload=None, network=None, keepalive_s=30, io_timeout_s=3,
                 backoff_ms=(1000, 30000), log=print):
        self.factory = factory            # () -> client with the umqtt.simple API
        self.clock, self.rng = clock, rng
        self.subscriptions = subscriptions    # [(topic, qos)]
        self.inbox = []                       # [(topic str, payload bytes)]
        self.max_inbox = 64
        self.will = will                      # (topic, payload) retained, or None
        self.online_payload = online_payload  # () -> payload for the will topic once up
        self.network = network                # object with .up() -> bool, or None
        self.keepalive_s = keepalive_s
        self.io_timeout_s = io_timeout_s
        self.backoff_min, self.backoff_max = backoff_ms
        self.log = log
        self.client = None
        self.online = False
        self.failures = 0
        self.retry_at = clock.ticks_ms()
        self.last_out = 0
        self.connects = 0

    # ------------------------------------------------------------ state changes
    def _down(self, why):
        self.log("link down: %s" % why)
        if self.client is not None:
            try:
                self.client.sock.close()
            except Exception:      # noqa: BLE001 - a dead socket may refuse anything
                pass
        self.client = None
        self.online = False
        self.failures += 1
        delay = min(self.backoff_max, self.backoff_min << min(self.failures - 1, 8))
        delay = delay // 2 + self.rng() % (delay // 2 + 1)     # jitter: no lock-step reconnects
        self.retry_at = self.clock.ticks_add(self.clock.ticks_ms(), delay)

    def _connect(self):
        if self.network is not None and not self.network.up():
            raise OSError("no network")
        c = self.factory()
        c.set_callback(self._deliver)
        if self.will:
            c.set_last_will(self.will[0], self.will[1], retain=True, qos=1)
        c.keepalive = self.keepalive_s
        c.connect(timeout=self.io_timeout_s)
        self.client = c
        for topic, qos in self.subscriptions:
            c.subscribe(topic, qos)
        if self.will and self.online_payload:
            c.publish(self.will[0], self.online_payload(), retain=True, qos=1)
        self._after_io()
        self.online = True
        self.failures = 0
        self.connects += 1
        self.last_out = self.clock.ticks_ms()

    def _deliver(self, topic, payload):
        if len(self.inbox) >= self.max_inbox:     # a flood must not exhaust the heap
            self.inbox.pop(0)
        self.inbox.append((topic.decode() if isinstance(topic, bytes) else topic, bytes(payload)))

    def take(self):
        items, self.inbox = self.inbox, []
        return items

    def _after_io(self):
        c = self.client
        if c is None:
            return
        sock = getattr(c, "sock", None)
        if sock is not None:
            try:
                sock.settimeout(self.io_timeout_s)
            except Exception:      # noqa: BLE001 - fakes have no timeouts
                pass
        if getattr(c, "pid", 0) > 60000:
            c.pid = 0

    # ------------------------------------------------------------ main loop
    def poll(self, max_messages=8):
        """Connect when due; take waiting messages; ping within the keep-alive."""
        now = self.clock.ticks_ms()
        if not self.online:
            if self.clock.ticks_diff(now, self.retry_at) >= 0:
                try:
                    self._connect()
                except Exception as e:     # noqa: BLE001 - OSError, MQTTException, asserts
                    self._down("connect failed: %r" % e)
                    return False
                return True
            return False
        try:
            for _ in range(max_messages):
                if self.client.check_msg() is None:
                    break
            if self.clock.ticks_diff(now, self.last_out) >= self.keepalive_s * 500:
                self.client.ping()
                self.last_out = now
            self._after_io()
        except Exception as e:             # noqa: BLE001
            self._down("receive failed: %r" % e)
        return False

    def publish(self, topic, payload, qos=1, retain=False):
        """True once the broker has it (PUBACK for QoS 1); False and link down otherwise."""
        if not self.online:
            return False
        try:
            self.client.publish(topic, payload, retain=retain, qos=qos)
            self._after_io()
        except Exception as e:            # noqa: BLE001
            self._down("publish failed: %r" % e)
            return False
        self.last_out = self.clock.ticks_ms()
        return True

    def close(self):
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:              # noqa: BLE001
                pass
        self.client = None
        self.online = False
