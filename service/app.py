"""The central counter-assignment service: the queue core behind MQTT, with a durable log.

One main loop owns the core and the store. paho's thread only queues incoming
messages. The loop takes every message waiting (a batch), handles each command, writes
the events and the handled ids in one transaction, commits (one fsync for the batch),
and only then publishes acks, facts and the retained state that changed. A crash before
the commit loses nothing: the devices re-send what was not acknowledged.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable

import msgspec

from mqtt import messages as m
from mqtt.client import MqttLink
from mqtt.outbox import new_id
from mqtt.topics import Topics
from service import refusals as R
from service.config import SiteConfig, load_config
from service.estimate import service_times_from_history
from service.queue import QueueCore
from service.sdnotify import Heartbeat, stop_on_sigterm
from service.store import EventStore

log = logging.getLogger("qms.service")

_enc = msgspec.json.Encoder()
_REFUSAL_LOGGED = {"closed_day", "not_open", "past_cutoff", "daily_cap"}
GAP_HOLD_MS = 15_000         # how long a command past a gap in a device's seq waits for it


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
        self.inbox: queue.Queue = queue.Queue()
        self.stats = {"handled": 0, "duplicates": 0, "invalid": 0, "refused": 0, "batches": 0, "held": 0}
        self._last_seq: dict[str, int] = self.store.last_seqs()
        self._gap_since: dict[str, int] = {}
        self.tick_seconds = tick_seconds
        self._published: dict[str, bytes] = {}
        self._republish_all = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.heartbeat = Heartbeat()
        self._replay()
        self.link = MqttLink(
            cfg.mqtt, device_id,
            subscriptions=[(self.topics.all_commands, 1)],
            on_message=lambda t, p, props: self.inbox.put((t, p, props)),
            status_topic=self.topics.status(device_id), status={"role": "service"},
            config_dir=Path(cfg.source).resolve().parent if cfg.source else None,
            on_connect=self._republish_all.set,
        )

    # ------------------------------------------------------------ start-up
    def _replay(self) -> None:
        now = self.clock()
        self.core.roll(now)
        # service times of the past week seed today's estimates (they only shape the waits
        # printed from now on, which the log records; replayed state does not depend on them)
        week_ago = (dt.date.fromisoformat(self.core.day) - dt.timedelta(days=7)).isoformat()
        self.core.estimator.learn_history(service_times_from_history(
            e for e in self.store.events(since_day=week_ago) if self._before_today(e)))
        self.core.roll(now)
        n = 0
        for e in self.store.events(day=self.core.day):
            self.core.apply(e)
            n += 1
        self.core.roll(now)
        log.info("replayed %d events of %s", n, self.core.day)

    def _before_today(self, e) -> bool:
        return self.core.day_of(e.at) < self.core.day

    def start(self) -> "CentralService":
        self.link.start()
        self._thread = threading.Thread(target=self.run, name="service-main", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.link.stop()
        self.store.close()

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        self.heartbeat.ready("serving site " + self.cfg.site.id)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            batch = []
            try:
                batch.append(self.inbox.get(timeout=0.25))
                while len(batch) < 512:
                    batch.append(self.inbox.get_nowait())
            except queue.Empty:
                pass
            try:
                if batch:
                    self.process(batch)
                if self._republish_all.is_set():
                    self._republish_all.clear()
                    self._published.clear()
                    self.publish_state(everything=True)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_seconds
                    self.core.roll(self.clock())
                    self.publish_state(everything=True)
            except Exception:   # noqa: BLE001 - never die on one bad batch; devices re-send
                log.exception("batch failed; rolled back, devices will re-send")
                self.store.rollback()
                self._rebuild()
            self.heartbeat.beat()

    def _rebuild(self) -> None:
        self.core = QueueCore(self.cfg)
        self._replay()

    def process(self, batch: list) -> None:
        """Handle a batch of raw messages: one commit, then publish."""
        out: list[tuple[str, bytes, str | None, bytes | None]] = []
        with self.core.estimator.batch():
            for topic, payload, props in batch:
                self._handle(topic, payload, props, out)
            self.store.commit()
            self.stats["batches"] += 1
            for topic, payload, _, corr in out:
                self.link.publish(topic, payload, qos=1, correlation=corr)
            self.publish_state()

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
        stored = self.store.handled_ack(cmd.id)
        if stored is not None:
            self.stats["duplicates"] += 1
            out.append((ack_topic, stored, None, corr))
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
        self.stats["handled"] += 1
        for e in events:
            out.append((self.topics.event(e.__struct_config__.tag), _enc.encode(e), None, None))
        out.append((ack_topic, ack_bytes, None, corr))

    def _in_order(self, cmd: m.Command, now: int) -> bool:
        """Apply a device's commands in its own order. A command past a gap in `seq` (an
        earlier one lost on the way, e.g. dropped by a bridge queue) is held back unacked;
        the device re-sends its unacked tail in order, so the gap fills first. A gap that
        stays open longer than GAP_HOLD_MS (a device that lost a command for good) is
        accepted, so no device can stall. A lower seq with a new id means the device's
        outbox was reset: it starts a new sequence."""
        last = self._last_seq.get(cmd.dev)
        if last is None or cmd.seq <= last + 1:
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
            return {"ticket": core.ticket_view(core.tickets[tid], now)}, events
        if isinstance(cmd, m.TicketOffline):
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
    def _retain(self, topic: str, payload: bytes) -> None:
        if self._published.get(topic) != payload:
            self._published[topic] = payload
            self.link.publish(topic, payload, qos=1, retain=True)

    def publish_state(self, everything: bool = False) -> None:
        core, now = self.core, self.clock()
        counters = list(core.counters) if everything else sorted(core.dirty_counters)
        services = list(core.lines) if everything else sorted(core.dirty_services)
        for n in counters:
            self._retain(self.topics.counter_state(n), _enc.encode(core.counter_view(n)))
        for s in services:
            self._retain(self.topics.service_state(s), _enc.encode(core.service_view(s, now)))
        if everything or core.calls_dirty:
            self._retain(self.topics.calls, _enc.encode(core.calls_view()))
        if everything or counters or services:
            summary = core.summary_view(now)
            summary.pop("at")
            self._retain(self.topics.summary, _enc.encode(summary))
        if everything or self.topics.notice not in self._published:
            notice = self.store.get("notice")
            if notice is not None:
                self._retain(self.topics.notice, notice)
        core.dirty_counters.clear()
        core.dirty_services.clear()
        core.calls_dirty = False


# ------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="site config (TOML)")
    p.add_argument("--db", help="event log (default: <state_dir>/service.sqlite)")
    p.add_argument("--device", default="service", help="this service's MQTT client id")


def run(args) -> int:
    from service.config import ConfigError
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        log.error("%s", e)
        return 2
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
