"""The central counter-assignment service: the queue core behind MQTT, with a durable log.

One thread does it all, in a loop: it runs paho's network loop itself
(`MqttLink.start(own_thread=False)`), takes every message that has arrived (a batch),
handles each command, writes the batch's events and handled ids in one transaction and
commits it (one fsync for the batch: group commit), and only then publishes the acks,
facts and the retained state that changed, in one burst. A crash before the commit loses
nothing: the devices re-send what was not acknowledged. While a commit's fsync runs, new
commands wait in the socket and make the next batch.

Each command is isolated within its batch (`_execute`): a savepoint of the batch's buffered
rows before it; one that raises is rolled back alone, answered `internal_error` and kept in
the `dead_letters` table, and the rest of the batch commits. What comes off the command
topics is checked before it is parsed (`_parse`: size, depth, retain flag), put in its
device's order (`_accept`: seen ids, commands held past a gap), then obeyed.

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
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
from paho.mqtt.subscribeoptions import SubscribeOptions

from qms.config.site import SiteConfig, load_config
from qms.core import refusals as R
from qms.core.estimate import service_times_from_history
from qms.core.queue import QueueCore
from qms.mqtt.client import MqttLink
from qms.mqtt.outbox import new_id
from qms.ops.sdnotify import Heartbeat, stop_on_sigterm
from qms.protocol import messages as m
from qms.protocol.alerts import device_alert
from qms.protocol.topics import Topics
from qms.service.offline_clock import offline_intake, record_key
from qms.service.store import EventStore

log = logging.getLogger("qms.service")

_enc = msgspec.json.Encoder()
_REFUSAL_LOGGED = {"closed_day", "not_open", "past_cutoff", "daily_cap"}
# refusals that say a device misbehaves (counted per device for staff), not a queue answer
_DEVICE_REFUSALS = {"unknown_device", "not_allowed", "retained"}
GAP_HOLD_MS = 15_000         # how long commands past a gap in a device's seq wait for it
HELD_PER_DEVICE = 256        # commands held past a gap per device; more are dropped unanswered
MAX_BAD_DEVICES = 100        # devices counted by name; more share one "(other)" count
BAD_SUMMARY_INTERVAL_S = 1.0  # a flood of bad messages republishes the summary at most this often
STATE_INTERVAL_S = 0.02      # under load, retained state goes out at most this often (the latest wins)
# QoS per kind of message (docs/protocol.md). A call (`ticket.called`, `ticket.recalled`)
# at 1: a hall display that is connected must not miss one because the service's own
# connection dropped with it in flight. Every other fact, the acks and the retained state
# at 0: a lost ack costs the device a re-send, which it makes anyway until acked; all
# retained state is published again on every reconnect; the other facts are for live
# views, and the log and the retained state hold the truth. A PUBACK for each would
# double the packets per command.
QOS_CALL_FACTS = {"ticket.called", "ticket.recalled", "ticket.print_failed"}   # the last: staff alert
QOS_ACK, QOS_STATE = 0, 0


def qos_of_fact(event_type: str) -> int:
    return 1 if event_type in QOS_CALL_FACTS else 0


Outgoing = list[tuple[str, bytes, int, bool, "bytes | None"]]   # topic, payload, qos, retain, correlation


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Rejected:
    """Stands in for a command that names its device, id and seq but cannot be obeyed
    (invalid, published as retained): it is answered with its error, like a refused
    command, and its id is recorded. It takes its place in the device's sequence
    (`takes_slot`), so the commands after it do not wait for it."""
    id: str
    dev: str
    seq: int
    refusal: R.Refused
    takes_slot: bool = True
    counted: bool = False       # already counted as an invalid message of its device


@dataclass
class Held:
    """A command waiting for a gap in its device's sequence, with what answering it needs."""
    topic: str
    role: str
    cmd: m.Command | Rejected
    payload: bytes
    corr: bytes | None


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
        self.stats = {"handled": 0, "duplicates": 0, "invalid": 0, "refused": 0, "refused_messages": 0,
                      "batches": 0, "held": 0, "held_dropped": 0, "gaps_skipped": 0, "dead_letters": 0}
        self._last_seq: dict[str, int] = self.store.last_seqs()
        self._held: dict[str, dict[int, Held]] = {}     # dev -> seq -> command past a gap
        self._gap_since: dict[str, int] = {}             # dev -> service ms its oldest gap opened
        self._bad_dirty = False
        self._bad_at = 0.0
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
        self.dead_letters_today = self.store.count_dead_letters(self.core.day or "")
        # today's counts of invalid/refused messages per device, kept across restarts
        self._bad_day = self.core.day or ""
        self.bad: dict[str, dict] = self.store.bad_counts(self._bad_day)
        self._bad_unsaved: set[str] = set()             # devices whose counts changed since saved
        # alerts of earlier days that may still be retained on the broker: cleared once
        self._bad_cleared: set[str] = self.store.bad_devices_before(self._bad_day) - set(self.bad)
        self.link = MqttLink(
            cfg.mqtt, device_id,
            # retain-as-published: a command published with the retain flag is seen as such
            subscriptions=[(self.topics.all_commands, SubscribeOptions(qos=1, retainAsPublished=True))],
            status_topic=self.topics.status(device_id), status={"role": "service"},
            config_dir=Path(cfg.source).resolve().parent if cfg.source else None,
            on_connect=self._republish_all.set,
            # most of what the service sends is QoS 0, and its ACL lets it publish all of
            # its site's topics (qms/ops/acl.py): no refusals to watch for
            report_refusals=False,
        )
        # straight from the packet, with the retain flag: paho's per-message objects cost
        # more than the service's handling of a broken command (mqtt/loop.py)
        self.link.take_publishes(lambda *msg: self._incoming.append(msg))

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
            elif self._bad_dirty:
                wait = max(0.0, self._bad_at + BAD_SUMMARY_INTERVAL_S - time.monotonic())
            gap = self.gap_deadline()
            if gap is not None:
                wait = min(wait, max(0.0, (gap - self.clock()) / 1000))
            flush = self.store.flush_at()       # refusals' records and bad counts, written lazily
            if flush is not None:
                wait = min(wait, max(0.0, flush - time.monotonic()))
            self.link.poll(0.0 if self._incoming else wait)
            batch, self._incoming = self._incoming, []
            try:
                if batch or (gap is not None and self.clock() >= gap):
                    self.process(batch)
                elif self._state_due or (self._bad_dirty and
                                         time.monotonic() >= self._bad_at + BAD_SUMMARY_INTERVAL_S):
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
                if self.store.flush_due():
                    self.store.commit()
            except Exception:   # noqa: BLE001 - never die on one bad batch; devices re-send
                log.exception("batch failed; rolled back, devices will re-send")
                self._recover()
            self.heartbeat.beat()

    def _recover(self) -> None:
        """Back to the state of the log: drop what was not committed, replay."""
        self.store.rollback()
        self._bad_unsaved |= set(self.bad)          # their unsaved counts went with it
        self._rebuild()
        self._published.clear()
        self._republish_all.set()

    def _rebuild(self, with_pending: bool = False) -> None:
        """The queue's state again from the log (and, with_pending, the events of this
        batch not committed yet); the devices' sequences too, unless with_pending."""
        self.core = QueueCore(self.cfg)
        if not with_pending:
            self._last_seq = self.store.last_seqs()
            self._held.clear()
            self._gap_since.clear()
        self._replay()
        if with_pending:
            for e in self.store.pending_events():
                self.core.apply(e)

    def process(self, batch: list) -> None:
        """Handle a batch of raw messages (topic, payload, properties[, retained]): one
        commit, then publish. Gaps that timed out are skipped here too."""
        out: Outgoing = []
        with self.core.estimator.batch():
            for topic, payload, props, *retained in batch:
                self._handle(topic, payload, props, out, bool(retained and retained[0]))
            if self._gap_since:
                self.expire_gaps(out)
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
        if self._bad_unsaved:
            self._save_bad()
        self.store.commit()             # raises (nothing published) if the disk refuses
        if out:
            self.link.publish_many(out)

    # ------------------------------------------------------------ one message
    def _handle(self, topic: str, payload: bytes, props, out: list, retained: bool = False) -> None:
        """One message off the command topics: parse it, then accept it in its device's order."""
        try:
            parsed = self._parse(topic, payload, retained, out)
        except Exception:   # noqa: BLE001 - a parser bug must not cost the batch (nothing applied yet)
            log.exception("could not parse a message on %s", topic)
            parsed = None
            self._count_bad(topic.split("/")[-1], "invalid", "internal_error")
        if parsed is None:
            return
        role, cmd = parsed
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        self._accept(topic, role, cmd, payload, corr, out)

    def _parse(self, topic: str, payload: bytes, retained: bool,
               out: Outgoing) -> tuple[str, m.Command | Rejected] | None:
        """The command in a message, a `Rejected` stand-in for one that names its device,
        id and seq but cannot be obeyed (it is answered with an error), or None (counted,
        not answered: nothing in it can be trusted to answer)."""
        parts = topic.split("/")
        # qms/v1/<site>/cmd/<role>/<dev>
        if len(parts) != 6 or parts[3] != "cmd":
            self._count_bad(parts[-1] if parts else "?", "invalid", "not_a_command_topic")
            return None
        role, dev = parts[4], parts[5]
        if retained:
            if not payload:
                return None             # a retained command cleared (by us, below)
            out.append((topic, b"", QOS_ACK, True, None))    # a command is never kept by the broker
        if len(payload) > m.MAX_COMMAND_BYTES:
            self._count_bad(dev, "invalid", "too_large")
            return None
        if m.nesting_depth(payload) > m.MAX_COMMAND_DEPTH:
            self._count_bad(dev, "invalid", "too_deep")
            return None
        try:
            cmd = m.decode_command(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as e:
            return self._rejected(role, dev, m.decode_envelope(payload), e)
        if cmd.dev != dev:
            return self._rejected(role, dev, m.Envelope(cmd.id, dev, cmd.seq),
                                  f"envelope dev {cmd.dev!r} does not match the topic")
        if retained:
            # a retained command would come back at every service restart (and once came
            # back as a device's "new sequence"): refused, and it takes no place in the
            # device's sequence: a stale copy must not take the place of a real command
            return role, Rejected(cmd.id, dev, cmd.seq, R.retained(), takes_slot=False)
        return role, cmd

    def _rejected(self, role: str, dev: str, env: m.Envelope | None,
                  why: Exception | str) -> tuple[str, Rejected] | None:
        """An invalid command: counted; answered `invalid` if it names this device and an id."""
        self._count_bad(dev, "invalid", "invalid")
        if env is None or not isinstance(env.id, str) or not 1 <= len(env.id) <= 64 or env.dev != dev:
            return None                 # no id of this device to answer
        seq = env.seq if type(env.seq) is int and 0 <= env.seq <= 2**53 else None
        return role, Rejected(env.id, dev, -1 if seq is None else seq, R.invalid(str(why)),
                              takes_slot=seq is not None, counted=True)

    # ------------------------------------------------------------ one command, in order
    def _accept(self, topic: str, role: str, cmd: m.Command | Rejected, payload: bytes,
                corr: bytes | None, out: Outgoing) -> None:
        dev = cmd.dev
        stored = self._seen_before(cmd)
        if stored is not None:
            self.stats["duplicates"] += 1
            out.append((self.topics.ack(dev), stored, QOS_ACK, False, corr))
            return
        held = self._held.get(dev)
        if held and cmd.seq in held and held[cmd.seq].cmd.id == cmd.id:
            self.stats["duplicates"] += 1       # already waiting for its gap
            return
        now = self.clock()
        if not self._in_order(cmd):
            self._hold(Held(topic, role, cmd, payload, corr), now)
            return
        self._execute(Held(topic, role, cmd, payload, corr), now, out)
        self._release_held(dev, out)

    def _seen_before(self, cmd: m.Command | Rejected) -> bytes | None:
        """The stored ack if this device sent this command id before, under any seq (a seen
        id is never applied twice). Commands are told apart per device: an id that another
        device used (only a broken or hostile one would) is this device's own command."""
        return self.store.handled_ack(cmd.id, cmd.dev)

    def _in_order(self, cmd: m.Command | Rejected) -> bool:
        """Apply a device's commands in its own order: a command past a gap in `seq` (an
        earlier one lost on the way, e.g. dropped by a bridge queue) is held until the gap
        fills (`_release_held`) or times out (`expire_gaps`). A lower seq with a new id
        means the device's outbox was reset: it starts a new sequence. A device not heard
        from before starts at 1: its first commands may be the ones lost."""
        if isinstance(cmd, Rejected) and not cmd.takes_slot:
            return True
        return cmd.seq <= self._last_seq.get(cmd.dev, 0) + 1

    def _hold(self, h: Held, now: int) -> None:
        held = self._held.setdefault(h.cmd.dev, {})
        if len(held) >= HELD_PER_DEVICE and h.cmd.seq not in held:
            self.stats["held_dropped"] += 1     # not answered: the device sends it again
            return
        held[h.cmd.seq] = h
        self._gap_since.setdefault(h.cmd.dev, now)
        self.stats["held"] += 1

    def _release_held(self, dev: str, out: Outgoing) -> None:
        """Apply the held commands that are next in the device's order now."""
        held = self._held.get(dev)
        while held:
            # the next one, or one whose place was taken meanwhile (a new sequence after an
            # outbox reset): it is applied now, never left behind the device's position
            due = [seq for seq in held if seq <= self._last_seq.get(dev, 0) + 1]
            if not due:
                break
            h = held.pop(min(due))
            stored = self._seen_before(h.cmd)       # handled meanwhile under another seq
            if stored is not None:
                self.stats["duplicates"] += 1
                self._last_seq[dev] = max(h.cmd.seq, self._last_seq.get(dev, 0))   # nothing to wait for
                out.append((self.topics.ack(dev), stored, QOS_ACK, False, h.corr))
            else:
                self._execute(h, self.clock(), out)
            self._gap_since[dev] = self.clock()     # progress: a later gap gets its own time
        if not held:
            self._held.pop(dev, None)
            self._gap_since.pop(dev, None)

    def gap_deadline(self) -> int | None:
        """Service-clock ms when the oldest open gap is skipped (None: no command waits)."""
        return min(self._gap_since.values()) + GAP_HOLD_MS if self._gap_since else None

    def expire_gaps(self, out: Outgoing) -> None:
        """Skip the gaps open longer than GAP_HOLD_MS (a device that lost a command for
        good, say a call kept in RAM across a reboot), whether or not more commands come."""
        now = self.clock()
        for dev, since in list(self._gap_since.items()):
            held = self._held.get(dev)
            if not held or now - since < GAP_HOLD_MS:
                continue
            first = min(held)
            log.warning("device %s: commands %d..%d never arrived; going on",
                        dev, self._last_seq.get(dev, 0) + 1, first - 1)
            self._last_seq[dev] = first - 1
            self.stats["gaps_skipped"] += 1
            self._release_held(dev, out)

    def _execute(self, h: Held, now: int, out: Outgoing) -> None:
        """Apply one command in isolation: what it wrote is dropped if it raises (a savepoint
        of the batch), it is answered with `internal_error` and kept as a dead letter, and
        the rest of the batch goes on."""
        cmd, dev = h.cmd, h.cmd.dev
        sp = self.store.savepoint()
        try:
            result, events = self._dispatch(cmd, h.role, now)
            ack = m.ack(cmd.id, True, result=result)
        except R.Refused as e:
            events = self._refused(cmd, e, now)
            ack = m.ack(cmd.id, False, error=e.code, message_vi=e.vi, message_en=e.en)
        except Exception as e:  # noqa: BLE001 - one command's bug must not take the batch with it
            events = []
            ack = self._dead_letter(h, sp, e, now)
        ack_bytes = _enc.encode(ack)
        self._record(cmd, now, ack_bytes, obeyed=ack.ok)
        for e in events:
            kind = e.__struct_config__.tag
            out.append((self.topics.event(kind), _enc.encode(e), qos_of_fact(kind), False, None))
        out.append((self.topics.ack(dev), ack_bytes, QOS_ACK, False, h.corr))

    def _refused(self, cmd: m.Command | Rejected, e: R.Refused, now: int) -> list[m.Event]:
        """The facts of a refusal (a refused ticket request is logged for the reports)."""
        self.stats["refused"] += 1
        if e.code in _DEVICE_REFUSALS and not (isinstance(cmd, Rejected) and cmd.counted):
            self._count_bad(cmd.dev, "refused", e.code)
        if isinstance(cmd, m.TicketRequest) and e.code in _REFUSAL_LOGGED:
            events = [m.TicketRefused(at=now, service=cmd.service, priority=cmd.priority,
                                      reason=e.code, dev=cmd.dev)]
            self._apply(events)
            return events
        return []

    def _dead_letter(self, h: Held, sp, exc: Exception, now: int) -> m.Ack:
        """Undo what the failed command did, keep it for the administrator, answer it."""
        log.error("command %s from %s failed; kept as a dead letter", h.cmd.id, h.cmd.dev,
                  exc_info=exc)
        self.store.rollback_to(sp)
        self._rebuild(with_pending=True)        # its events may be half applied
        self.store.dead_letter(now, self.core.day or "", h.cmd.dev, h.cmd.id, h.cmd.seq, h.topic,
                               h.payload, "".join(traceback.format_exception(exc)))
        self.stats["dead_letters"] += 1
        self.dead_letters_today += 1
        self._bad_dirty = True
        e = R.internal_error()
        return m.ack(h.cmd.id, False, error=e.code, message_vi=e.vi, message_en=e.en)

    def _record(self, cmd: m.Command | Rejected, now: int, ack: bytes, obeyed: bool = True) -> None:
        """The command is handled: its id (never applied again) and its place in the
        device's sequence, written with its effect. The record of a refusal needs no fsync
        of its own (`EventStore.mark_handled`): a refusal that changed something (a logged
        `ticket.refused`, a dead letter) has rows that fsync anyway."""
        dev = cmd.dev
        takes_slot = not isinstance(cmd, Rejected) or cmd.takes_slot
        self.store.mark_handled(cmd.id, dev, cmd.seq if takes_slot else -1, now, ack, sync=obeyed)
        if takes_slot:
            last = self._last_seq.get(dev, 0)
            if isinstance(cmd, Rejected):       # garbage never restarts a device's sequence
                self._last_seq[dev] = max(cmd.seq, last)
            else:
                self._last_seq[dev] = max(cmd.seq, last) if cmd.seq > 0 else 0
        self.stats["handled"] += 1

    # ------------------------------------------------------------ devices that misbehave
    def _count_bad(self, dev: str, kind: str, code: str) -> None:
        """Per-device counts of invalid and refused messages today (state/summary,
        alert/device/…): staff see which device sends garbage. O(1) per message: the counts
        are saved with the next commit (one row per device, `_save_bad`) and published at
        most once a second. The log names the device too, sparingly."""
        self.stats["invalid" if kind == "invalid" else "refused_messages"] += 1
        if self.core.day != self._bad_day:
            self._new_bad_day()
        dev = dev[:40] if len(self.bad) < MAX_BAD_DEVICES or dev[:40] in self.bad else "(other)"
        c = self.bad.get(dev)
        if c is None:
            c = self.bad[dev] = {"invalid": 0, "refused": 0, "last_error": ""}
        c[kind] += 1
        c["last_error"] = code
        self._bad_unsaved.add(dev)
        self._bad_dirty = True
        n = c["invalid"] + c["refused"]
        if n <= 5 or n % 1000 == 0:
            log.warning("device %s: %s message #%d (%s)", dev, kind, n, code)

    def _new_bad_day(self) -> None:
        """A new day: counts start again at 0, and yesterday's alerts are cleared."""
        self._bad_cleared |= set(self.bad)
        self.bad, self._bad_day, self._bad_unsaved = {}, self.core.day or "", set()
        self._bad_dirty = True

    def _save_bad(self) -> None:
        for dev in self._bad_unsaved:
            c = self.bad.get(dev)
            if c is not None:
                self.store.save_bad_counts(self._bad_day, dev, c["invalid"], c["refused"], c["last_error"])
        self._bad_unsaved.clear()

    def _apply(self, events: list[m.Event]) -> None:
        for e in events:
            self.core.apply(e)
            self.store.append(self.core.day, e)

    def _print_failed(self, cmd: m.TicketPrintFailure, now: int) -> tuple[dict | None, list[m.Event]]:
        """A kiosk could not print a ticket: a fact for the log, the reports and a staff
        alert; the ticket keeps its place (the citizen has the number on screen)."""
        events = [m.TicketPrintFailed(at=now, ticket_id=cmd.ticket_id, number=cmd.number,
                                      service=cmd.service, reason=cmd.reason, dev=cmd.dev)]
        self._apply(events)
        log.warning("%s could not print ticket %d (%s) %s", cmd.dev, cmd.number, cmd.reason, cmd.detail)
        return None, events

    def _counter_of(self, dev: str) -> int:
        d = self.cfg.device(dev)
        if d is None or d.role != "counter" or d.counter is None:
            raise R.unknown_device(dev)
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

    def _check_device(self, cmd: m.Command, role: str) -> None:
        """Every role alike: a device must be listed in the site config, under the role of
        the topic it publishes on, and send only that role's commands."""
        known = self.cfg.device(cmd.dev)
        if known is None:
            raise R.unknown_device(cmd.dev)
        if known.role != role:
            raise R.wrong_role(cmd.dev, known.role, role)
        if not isinstance(cmd, (m.CommandVoid, *m.ROLE_COMMANDS.get(role, ()))):
            raise R.not_allowed(role, m.type_of(cmd))

    def _dispatch(self, cmd: m.Command | Rejected, role: str, now: int) -> tuple[dict | None, list[m.Event]]:
        if isinstance(cmd, Rejected):
            raise cmd.refusal
        self._check_device(cmd, role)
        if isinstance(cmd, m.CommandVoid):
            return {"void": True}, []
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
        if isinstance(cmd, m.TicketPrintFailure):
            return self._print_failed(cmd, now)
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
        bad_due = self._bad_dirty and time.monotonic() - self._bad_at >= BAD_SUMMARY_INTERVAL_S
        if everything and core.day != self._bad_day:
            self._new_bad_day()
        if everything or counters or services or bad_due:
            summary = core.summary_view(now)
            summary.pop("at")
            summary["bad_messages"] = self.bad
            summary["dead_letters"] = self.dead_letters_today
            self._retain(self.topics.summary, _enc.encode(summary), out)
        if everything or bad_due:
            self._publish_device_alerts(out)
            self._bad_dirty, self._bad_at = False, time.monotonic()
        if everything or self.topics.notice not in self._published:
            notice = self.store.get("notice")
            if notice is not None:
                self._retain(self.topics.notice, notice, out)
        core.dirty_counters.clear()
        core.dirty_services.clear()
        core.calls_dirty = False

    def _publish_device_alerts(self, out: Outgoing | None) -> None:
        """alert/device/<dev>, retained, for each device that sent invalid or refused
        messages today (the alerts page and the counter terminals show it,
        qms/protocol/alerts.py); those of an earlier day are cleared."""
        for dev in self._bad_cleared - set(self.bad):
            self._retain(self.topics.alert("device", dev), b"", out)
        self._bad_cleared.clear()
        for dev, c in self.bad.items():
            alert = device_alert(dev, c["invalid"], c["refused"], c["last_error"])
            self._retain(self.topics.alert("device", dev), _enc.encode(alert), out)


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
