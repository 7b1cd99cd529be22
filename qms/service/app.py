"""The central counter-assignment service: the queue core behind MQTT, with a durable log.

One thread does it all, in a loop: it runs paho's network loop itself
(`MqttLink.start(own_thread=False)`), takes every message that has arrived (a batch),
handles each command, writes the batch's events and handled ids in one transaction and
commits it (one fsync for the batch: group commit), and only then publishes the acks,
facts and the retained state that changed, in one burst. A crash before the commit loses
nothing: the devices re-send what was not acknowledged. While a commit's fsync runs, new
commands wait in the socket and make the next batch.

Why no threads: a thread that shares the GIL with a busy loop waits for it every time it
needs it (a commit takes it back after each SQLite call), and those waits were the
service's worst latencies; handing each message from paho's thread to a worker cost more
than handling it (bench/README.md).
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from qms.config.site import SiteConfig, load_config
from qms.core import refusals as R
from qms.core.estimate import service_times_from_history
from qms.core.queue import QueueCore
from qms.mqtt.client import MqttLink
from qms.mqtt.outbox import new_id
from qms.ops.sdnotify import Heartbeat, stop_on_sigterm
from qms.protocol import messages as m
from qms.protocol.topics import Topics
from qms.service.offline_clock import offline_intake, record_key
from qms.service.store import EventStore

log = logging.getLogger("qms.service")

_enc = msgspec.json.Encoder()
_REFUSAL_LOGGED = {"closed_day", "not_open", "past_cutoff", "daily_cap"}
GAP_HOLD_MS = 15_000         # how long a command past a gap in a device's seq waits for it
STATE_INTERVAL_S = 0.02      # under load, retained state goes out at most this often (the latest wins)
# QoS per kind of message (docs/protocol.md). A call (`ticket.called`, `ticket.recalled`)
# at 1: a hall display that is connected must not miss one because the service's own
# connection dropped with it in flight. Every other fact, the acks and the retained state
# at 0: a lost ack costs the device a re-send, which it makes anyway until acked; all
# retained state is published again on every reconnect; the other facts are for live
# views, and the log and the retained state hold the truth. A PUBACK for each would
# double the packets per command.
QOS_CALL_FACTS = {"ticket.called", "ticket.recalled"}
QOS_ACK, QOS_STATE = 0, 0


def qos_of_fact(event_type: str) -> int:
    return 1 if event_type in QOS_CALL_FACTS else 0


Outgoing = list[tuple[str, bytes, int, bool, "bytes | None"]]   # topic, payload, qos, retain, correlation


def _now_ms() -> int:
    return int(time.time() * 1000)


class CentralService:
    def __init__(self, cfg: SiteConfig, db_path: str | Path | None = None,
                 clock: Callable[[], int] = _now_ms, device_id: str = "service",
                 tick_seconds: float = 15.0):
        self.cfg = cfg
        self.clock = clock
        self.topics = Topics(cfg.site.id)
        self.device_id = device_id
        self.store = EventStore(db_path or cfg.state_dir() / "service.sqlite")
        self.core = QueueCore(cfg)
        self._incoming: list = []       # filled by the MQTT loop, on the main loop's thread
        self.stats = {"handled": 0, "duplicates": 0, "invalid": 0, "refused": 0, "batches": 0, "held": 0}
        self._last_seq: dict[str, int] = self.store.last_seqs()
        self._max_seq: dict[str, int] = self.store.max_seqs()
        self._gap_since: dict[str, int] = {}
        self.tick_seconds = tick_seconds
        self._published: dict[str, bytes] = {}
        self._republish_all = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._state_at = 0.0             # monotonic time of the last retained-state publish
        self._state_due = False          # a batch's state change is waiting for STATE_INTERVAL_S
        self.heartbeat = Heartbeat()
        self._replay()
        self.link = MqttLink(
            cfg.mqtt, device_id,
            subscriptions=[(self.topics.all_commands, 1)],
            on_message=lambda t, p, props: self._incoming.append((t, p, props)),
            status_topic=self.topics.status(device_id), status={"role": "service"},
            config_dir=Path(cfg.source).resolve().parent if cfg.source else None,
            on_connect=self._republish_all.set,
            # most of what the service sends is QoS 0, and its ACL lets it publish all of
            # its site's topics (qms/ops/acl.py): no refusals to watch for
            report_refusals=False,
        )

    # ------------------------------------------------------------ start-up
    def _replay(self) -> None:
        now = self.clock()
        self.core.roll(now)
        # service times of the past week seed today's estimates (they only shape the waits
        # printed from now on, which the log records; replayed state does not depend on them)
        today = dt.date.fromisoformat(self.core.day)
        self.core.estimator.learn_history(service_times_from_history(self.store.events(
            since_day=(today - dt.timedelta(days=7)).isoformat(),
            until_day=(today - dt.timedelta(days=1)).isoformat())))
        n = 0
        for e in self.store.events(day=self.core.day):
            self.core.apply(e)
            n += 1
        self.core.roll(now)
        log.info("replayed %d events of %s", n, self.core.day)

    def start(self, in_thread: bool = True) -> CentralService:
        """Connect and serve on a thread of its own (or, in_thread=False, when the caller
        calls `run`)."""
        self.link.start(own_thread=False)
        self._started = True
        if in_thread:
            self._thread = threading.Thread(target=self.run, name="service-main", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        loop = getattr(self.link, "loop", None)
        if loop is not None:
            loop.wake()                 # out of its wait at once
        if self._thread:
            self._thread.join(5)
        self.link.stop()
        self.store.close()

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        self.heartbeat.ready("serving site " + self.cfg.site.id)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            wait = 0.25
            if self._state_due:
                wait = max(0.0, self._state_at + STATE_INTERVAL_S - time.monotonic())
            self.link.poll(0.0 if self._incoming else wait)
            batch, self._incoming = self._incoming, []
            try:
                if batch:
                    self.process(batch)
                elif self._state_due:
                    with self.core.estimator.batch():     # shares the last batch's look-ahead run
                        self._submit([])
                if self._republish_all.is_set():
                    self._republish_all.clear()
                    self._published.clear()
                    self._submit([], everything=True)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_seconds
                    self.core.roll(self.clock())
                    self._submit([], everything=True)
            except Exception:   # noqa: BLE001 - never die on one bad batch; devices re-send
                log.exception("batch failed; rolled back, devices will re-send")
                self._recover()
            self.heartbeat.beat()

    def _recover(self) -> None:
        """Back to the state of the log: drop what was not committed, replay."""
        self.store.rollback()
        self._rebuild()
        self._published.clear()
        self._republish_all.set()

    def _rebuild(self) -> None:
        self.core = QueueCore(self.cfg)
        self._last_seq, self._max_seq = self.store.last_seqs(), self.store.max_seqs()
        self._replay()

    def process(self, batch: list) -> None:
        """Handle a batch of raw messages: one commit, then publish."""
        out: Outgoing = []
        with self.core.estimator.batch():
            for topic, payload, props in batch:
                self._handle(topic, payload, props, out)
            self.stats["batches"] += 1
            self._submit(out)

    def _submit(self, out: Outgoing, everything: bool = False) -> None:
        """Commit this batch's rows, then publish its messages (acks and facts, then the
        retained state that changed) as one burst."""
        now = time.monotonic()
        if everything or not self._started or now - self._state_at >= STATE_INTERVAL_S:
            # a burst of batches shares one round of retained state: paho's cost is per message
            self.publish_state(everything, out=out)
            self._state_at, self._state_due = now, False
        else:
            self._state_due = True
        self.store.commit()             # raises (nothing published) if the disk refuses
        if out:
            self.link.publish_many(out)

    # ------------------------------------------------------------ one command
    def _handle(self, topic: str, payload: bytes, props, out: list) -> None:
        parts = topic.split("/")
        # qms/v1/<site>/cmd/<role>/<dev>
        if len(parts) != 6 or parts[3] != "cmd":
            return self._invalid(topic, "not a command topic")
        role, dev = parts[4], parts[5]
        try:
            cmd = m.decode_command(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            return self._invalid(topic, str(e), payload, dev)
        if cmd.dev != dev:
            return self._invalid(topic, f"envelope dev {cmd.dev!r} does not match the topic")
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        ack_topic = self.topics.ack(dev)
        stored = self._seen_before(cmd)
        if stored is not None:
            self.stats["duplicates"] += 1
            out.append((ack_topic, stored, QOS_ACK, False, corr))
            return
        now = self.clock()
        if not self._in_order(cmd, now):
            return                  # no ack: the device re-sends the gap and this, in order
        try:
            result, events = self._dispatch(cmd, role, now)
            ack = m.Ack(id=cmd.id, ok=True, result=result)
        except R.Refused as e:
            self.stats["refused"] += 1
            events = []
            if isinstance(cmd, m.TicketRequest) and e.code in _REFUSAL_LOGGED:
                events = [m.TicketRefused(at=now, service=cmd.service, priority=cmd.priority,
                                          reason=e.code, dev=dev)]
                self._apply(events)
            ack = m.Ack(id=cmd.id, ok=False, error=e.code, message_vi=e.vi, message_en=e.en)
        ack_bytes = _enc.encode(ack)
        self.store.mark_handled(cmd.id, dev, cmd.seq, now, ack_bytes)
        self._last_seq[dev] = max(cmd.seq, self._last_seq.get(dev, 0)) if cmd.seq > 0 else 0
        self._max_seq[dev] = max(cmd.seq, self._max_seq.get(dev, 0))
        self.stats["handled"] += 1
        for e in events:
            kind = e.__struct_config__.tag
            out.append((self.topics.event(kind), _enc.encode(e), qos_of_fact(kind), False, None))
        out.append((ack_topic, ack_bytes, QOS_ACK, False, corr))

    def _seen_before(self, cmd: m.Command) -> bytes | None:
        """The stored ack if this device sent this command before. A device re-sends a
        command with its own seq, so one whose seq is above every seq handled from that
        device is new: no need to look it up in the log (the common case, and a read per
        command). Commands are told apart per device: an id that another device used
        (only a broken or hostile one would) is this device's own command."""
        if cmd.seq > self._max_seq.get(cmd.dev, 0):
            return None
        return self.store.handled_ack(cmd.id, cmd.dev, cmd.seq)

    def _in_order(self, cmd: m.Command, now: int) -> bool:
        """Apply a device's commands in its own order. A command past a gap in `seq` (an
        earlier one lost on the way, e.g. dropped by a bridge queue) is held back unacked;
        the device re-sends its unacked tail in order, so the gap fills first. A gap that
        stays open longer than GAP_HOLD_MS (a device that lost a command for good) is
        accepted, so no device can stall. A lower seq with a new id means the device's
        outbox was reset: it starts a new sequence. A device not heard from before starts
        at 1: its first commands may be the ones lost."""
        last = self._last_seq.get(cmd.dev, 0)
        if cmd.seq <= last + 1:
            self._gap_since.pop(cmd.dev, None)
            return True
        since = self._gap_since.setdefault(cmd.dev, now)
        if now - since < GAP_HOLD_MS:
            self.stats["held"] += 1
            return False
        log.warning("device %s: commands %d..%d never arrived; going on", cmd.dev, last + 1, cmd.seq - 1)
        self._gap_since.pop(cmd.dev, None)
        return True

    def _invalid(self, topic: str, why: str, payload: bytes = b"", dev: str | None = None) -> None:
        self.stats["invalid"] += 1
        if self.stats["invalid"] <= 20 or self.stats["invalid"] % 1000 == 0:
            log.warning("invalid message #%d on %s: %s", self.stats["invalid"], topic, why[:200])

    def _apply(self, events: list[m.Event]) -> None:
        for e in events:
            self.core.apply(e)
            self.store.append(self.core.day, e)

    def _counter_of(self, dev: str) -> int:
        d = self.cfg.device(dev)
        if d is None or d.role != "counter" or d.counter is None:
            raise R.Refused("unknown_device", "Thiết bị chưa được khai báo cho quầy nào.",
                            f"Device {dev!r} is not configured as a counter.")
        return d.counter

    def _offline_intake(self, cmd: m.TicketOffline, now: int) -> m.TicketOffline:
        """A stamp from a kiosk's wrong clock: entered at our time, the reason recorded."""
        if cmd.ticket_id in self.core.tickets:
            return cmd                              # a re-send or a renumbering: as before
        intake = offline_intake(cmd.issued_at, now, self.core.day_of)
        if intake.reason is None:
            return cmd
        log.warning("offline ticket %s (%s) from %s: %s", cmd.number, cmd.ticket_id, cmd.dev, intake.reason)
        self.stats["offline_clock_fixed"] = self.stats.get("offline_clock_fixed", 0) + 1
        self.store.put(record_key(cmd.ticket_id), intake.record(cmd.issued_at))
        return msgspec.structs.replace(cmd, issued_at=intake.issued_at)

    def _dispatch(self, cmd: m.Command, role: str, now: int) -> tuple[dict | None, list[m.Event]]:
        if isinstance(cmd, m.CommandVoid):
            return {"void": True}, []
        allowed = m.ROLE_COMMANDS.get(role, ())
        known = self.cfg.device(cmd.dev)
        if not isinstance(cmd, allowed) or (known is not None and known.role != role):
            raise R.not_allowed(role, m.type_of(cmd))
        core = self.core
        if isinstance(cmd, m.TicketRequest):
            tid = cmd.ticket_id or new_id()
            events = core.issue(now, cmd.service, cmd.priority, tid, source=cmd.source, dev=cmd.dev)
            self._apply(events)
            # the ack prints the ticket: the same estimate as the log's (one run, not two)
            est = events[0].est_wait_s if events else None
            return {"ticket": core.ticket_view(core.tickets[tid], now, est_wait_s=est)}, events
        if isinstance(cmd, m.TicketOffline):
            cmd = self._offline_intake(cmd, now)
            events = core.accept_offline(now, cmd)
            self._apply(events)
            return {"ticket": core.ticket_view(core.tickets[cmd.ticket_id], now)}, events
        if isinstance(cmd, m.NoticeSet):
            notice = _enc.encode({"v": 1, "text_vi": cmd.text_vi, "text_en": cmd.text_en, "at": now})
            self.store.put("notice", notice)
            self._published.pop(self.topics.notice, None)
            return None, []
        n = self._counter_of(cmd.dev)
        if isinstance(cmd, m.RatingSubmit):
            events = core.rate(now, n, cmd.ticket_id, cmd.level)
        elif isinstance(cmd, m.CounterNext):
            events = core.next(now, n)
        elif isinstance(cmd, m.CounterRecall):
            events = core.recall(now, n)
        elif isinstance(cmd, m.CounterNoShow):
            events = core.no_show(now, n)
        elif isinstance(cmd, m.CounterDone):
            events = core.done(now, n)
        elif isinstance(cmd, m.CounterTransfer):
            events = core.transfer(now, n, cmd.to_service, cmd.to_counter)
        elif isinstance(cmd, m.CounterPause):
            events = core.pause(now, n, cmd.reason)
        elif isinstance(cmd, m.CounterResume):
            events = core.resume(now, n)
        elif isinstance(cmd, m.CounterCall):
            events = core.call_number(now, n, cmd.number)
        else:   # pragma: no cover - ROLE_COMMANDS and this chain list the same types
            raise R.not_allowed(role, m.type_of(cmd))
        self._apply(events)
        if isinstance(cmd, (m.CounterNext, m.CounterCall)):   # the answer is who was called
            touched = next((e for e in events if isinstance(e, m.TicketCalled)), None)
        else:
            touched = next((e for e in reversed(events) if hasattr(e, "ticket_id")), None)
        ticket = core.ticket_view(core.tickets[touched.ticket_id], now) if touched else None
        return {"counter": n, "ticket": ticket, "state": core.counter_view(n)}, events

    # ------------------------------------------------------------ retained state
    def _retain(self, topic: str, payload: bytes, out: Outgoing | None) -> None:
        if self._published.get(topic) != payload:
            self._published[topic] = payload
            if out is None:
                self.link.publish(topic, payload, qos=QOS_STATE, retain=True)
            else:
                out.append((topic, payload, QOS_STATE, True, None))

    def publish_state(self, everything: bool = False, out: Outgoing | None = None) -> None:
        """Publish the retained state that changed (to `out`, when given, for the writer)."""
        core, now = self.core, self.clock()
        counters = list(core.counters) if everything else sorted(core.dirty_counters)
        services = list(core.lines) if everything else sorted(core.dirty_services)
        for n in counters:
            self._retain(self.topics.counter_state(n), _enc.encode(core.counter_view(n)), out)
        for s in services:
            self._retain(self.topics.service_state(s), _enc.encode(core.service_view(s, now)), out)
        if everything or core.calls_dirty:
            self._retain(self.topics.calls, _enc.encode(core.calls_view()), out)
        if everything or counters or services:
            summary = core.summary_view(now)
            summary.pop("at")
            self._retain(self.topics.summary, _enc.encode(summary), out)
        if everything or self.topics.notice not in self._published:
            notice = self.store.get("notice")
            if notice is not None:
                self._retain(self.topics.notice, notice, out)
        core.dirty_counters.clear()
        core.dirty_services.clear()
        core.calls_dirty = False


# ------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="site config (TOML)")
    p.add_argument("--db", help="event log (default: <state_dir>/service.sqlite)")
    p.add_argument("--device", default="service", help="this service's MQTT client id")


def run(args) -> int:
    cfg = load_config(args.config)
    svc = CentralService(cfg, args.db, device_id=args.device).start()
    log.info("service for %s running; Ctrl-C to stop", cfg.site.id)
    stop_on_sigterm(svc._stop.set)       # the loop then ends; `finally` closes the log cleanly
    try:
        while svc._thread.is_alive():
            svc._thread.join(1)
    except KeyboardInterrupt:
        pass
    finally:
        svc.stop()
    return 0
