"""Commands out, acks in: the box's side of "applied exactly once".

Unacked commands are published in sequence order (a small window in flight), re-sent
after `resend_ms` and at once after a reconnect, always with their first id, so the
service applies each once however often it arrives (`protocol.resend_due`, the rule the
Pi's qms/mqtt/channel.py follows too). Withdrawing an unanswered call is the state
machine's decision (box.py); here it only becomes a `cmd.void` in the outbox.
"""
from . import protocol


class Channel:
    def __init__(self, link, outbox, topics, clock, resend_ms=3000, window=4):
        self.link, self.outbox, self.topics, self.clock = link, outbox, topics, clock
        self.resend_ms = resend_ms
        self.window = window

    def send(self, type_, fields=None, call=False):
        entry = self.outbox.add(type_, fields, call)
        self.pump()
        return entry

    def full(self):
        return self.outbox.full()

    def withdraw(self, msg_id):
        """The call must not take effect any more: it becomes a cmd.void with the same id
        and seq (durable, re-sent until acked), which keeps the sequence unbroken."""
        return self.outbox.void(msg_id)

    def reconnected(self):
        for e in self.outbox.entries:
            e.sent_at = None          # re-send everything now, in order

    def pump(self):
        """Publish what is due, oldest first; stop at the first failure (link down)."""
        now = self.clock.ticks_ms()
        for e in self.outbox.entries[:self.window]:
            if not protocol.resend_due(e.sent_at, now, self.resend_ms, self.clock.ticks_diff):
                continue
            if not self.link.publish(self.topics.command, e.payload, qos=1):
                return
            e.sent_at = now
            e.tries += 1

    def on_ack(self, payload):
        """(id, ok, result, error, message_vi) for an ack of ours; None for a duplicate
        ack, an ack of something no longer in the outbox, or garbage."""
        ack = protocol.parse_ack(payload)
        if ack is None or self.outbox.remove(ack[0]) is None:
            return None
        return ack
