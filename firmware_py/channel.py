"""Commands out, acks in: the box's side of "applied exactly once".

Unacked commands are published in sequence order (a small window in flight), re-sent
after `resend_ms` and at once after a reconnect, always with their first id, so the
service applies each once however often it arrives. A call (next, recall, no-show,
transfer) that stays unanswered for `call_timeout_ms` is withdrawn: it must not call a
citizen long after the press. Durable commands wait for the service as long as it takes.
"""
from . import protocol


class Channel:
    def __init__(self, link, outbox, topics, clock, resend_ms=3000, call_timeout_ms=5000, window=4):
        self.link, self.outbox, self.topics, self.clock = link, outbox, topics, clock
        self.resend_ms = resend_ms
        self.call_timeout_ms = call_timeout_ms
        self.window = window

    def send(self, type_, fields=None, call=False):
        entry = self.outbox.add(type_, fields, call)
        self.pump()
        return entry

    def reconnected(self):
        for e in self.outbox.entries:
            e.sent_at = None          # re-send everything now, in order

    def pump(self):
        """Publish what is due, oldest first; stop at the first failure (link down)."""
        now = self.clock.ticks_ms()
        for e in self.outbox.entries[:self.window]:
            if e.sent_at is not None and self.clock.ticks_diff(now, e.sent_at) < self.resend_ms:
                continue
            if not self.link.publish(self.topics.command, e.payload, qos=1):
                return
            e.sent_at = now
            e.tries += 1

    def expired(self):
        """Withdraw the calls left unanswered too long (each becomes a cmd.void that keeps
        the sequence unbroken); return their (id, type)."""
        now = self.clock.ticks_ms()
        out = []
        for e in list(self.outbox.entries):
            if e.call and self.clock.ticks_diff(now, e.made_at) >= self.call_timeout_ms:
                out.append((e.id, e.type))
                self.outbox.void(e.id)
        return out

    def on_ack(self, payload):
        """(entry, ok, result, error) for an ack of ours; None for a duplicate ack, an ack
        of a withdrawn call, or garbage."""
        ack = protocol.parse_ack(payload)
        if ack is None:
            return None
        msg_id, ok, result, error = ack
        entry = self.outbox.remove(msg_id)
        if entry is None:
            return None
        return entry, ok, result, error
