"""Commands not yet acknowledged by the service, in the order they were made.

Every command gets the next sequence number and an id built from it; the id never
changes, so a re-send after a lost ack or a reboot is recognised by the service and
applied once. The sequence number, the random epoch and the durable commands (done,
pause/resume, ratings) are kept in one small flash file, rewritten on each change.
Calls (next, recall, no-show, transfer) live in RAM only: after a reboot they would be
stale, and a citizen must not be called minutes after the press.
"""
from . import protocol

FILE = "outbox.json"


class Entry:
    def __init__(self, msg, call, made_at):
        self.msg = msg
        self.id = msg["id"]
        self.type = msg["type"]
        self.call = call
        self.made_at = made_at      # ticks_ms of the press
        self.sent_at = None         # ticks_ms of the last send, None = not sent yet
        self.tries = 0
        self.payload = protocol.encode(msg)


class Outbox:
    def __init__(self, store, device, rng, clock, max_pending=16):
        self.store = store
        self.device = device
        self.rng = rng
        self.clock = clock
        self.max_pending = max_pending
        self.entries = []
        self.problem = None          # why the saved state was not usable, for the log
        self._load()

    def _new_epoch(self):
        return "%08x" % (self.rng() & 0xFFFFFFFF)

    def _load(self):
        self.epoch, self.seq = self._new_epoch(), 0
        text = self.store.read(FILE)
        if text is None:
            return
        saved = protocol.decode(text)
        try:
            epoch, seq, pending = saved["epoch"], saved["seq"], saved["pending"]
            if (not isinstance(epoch, str) or len(epoch) != 8 or not isinstance(seq, int)
                    or seq < 0 or not isinstance(pending, list)):
                raise ValueError("bad fields")
            entries = []
            for msg in pending:
                if not isinstance(msg, dict) or not protocol.valid_id(msg.get("id")):
                    raise ValueError("bad pending command")
                entries.append(Entry(msg, False, self.clock.ticks_ms()))
        except (TypeError, KeyError, ValueError) as e:
            # a new epoch keeps new ids distinct from anything sent before the damage
            self.problem = "outbox file unreadable (%s): starting a new epoch" % e
            return
        self.epoch, self.seq, self.entries = epoch, seq, entries

    def save(self):
        durable = [e.msg for e in self.entries if not e.call]
        self.store.write(FILE, protocol.encode(
            {"v": 1, "epoch": self.epoch, "seq": self.seq, "pending": durable}).decode())

    def full(self):
        return len(self.entries) >= self.max_pending

    def add(self, type_, fields, call):
        self.seq += 1
        msg = protocol.command(type_, self.device, self.epoch, self.seq, self.clock.unix_ms(), fields)
        entry = Entry(msg, call, self.clock.ticks_ms())
        self.entries.append(entry)
        self.save()              # the seq must be on flash before the command leaves
        return entry

    def get(self, msg_id):
        for e in self.entries:
            if e.id == msg_id:
                return e
        return None

    def remove(self, msg_id):
        e = self.get(msg_id)
        if e is not None:
            self.entries.remove(e)
            self.save()
        return e

    def void(self, msg_id):
        """Withdraw a command: it becomes a `cmd.void` with the same id and seq, which the
        service records without effect (a late original is then ignored) and which keeps
        the box's sequence unbroken. Durable from now on."""
        e = self.get(msg_id)
        if e is None:
            return None
        e.msg = protocol.voided(e.msg)
        e.type, e.call, e.sent_at = "cmd.void", False, None
        e.payload = protocol.encode(e.msg)
        self.save()
        return e

    def pending(self, type_):
        for e in self.entries:
            if e.type == type_:
                return True
        return False
