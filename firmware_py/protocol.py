"""Protocol v1 as the counter box speaks it (mirrors qms/protocol/topics.py and qms/protocol/messages.py).

MicroPython-safe: no typing, no dataclasses, only `json`. The CPython tests check
these messages against the service's own msgspec decoders, so the two cannot drift.
"""
import json

VERSION = 1
ROOT = "qms/v1"

# staff actions -> command type (pause/resume share a key: the box picks by state)
COMMANDS = {
    "next": "counter.next",
    "recall": "counter.recall",
    "no_show": "counter.no_show",
    "transfer": "counter.transfer",
    "done": "counter.done",
    "pause": "counter.pause",
    "resume": "counter.resume",
    "rate": "rating.submit",
}
# commands that call or move a citizen: refused offline, withdrawn when unanswered
CALLS = ("counter.next", "counter.recall", "counter.no_show", "counter.transfer")

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


class Topics:
    def __init__(self, site, device):
        self.base = ROOT + "/" + site
        self.device = device
        self.command = self.base + "/cmd/counter/" + device
        self.ack = self.base + "/ack/" + device
        self.status = self.base + "/status/" + device

    def counter_state(self, counter):
        return self.base + "/state/counter/" + str(counter)


def valid_id(text):
    """The service's MsgId pattern: ^[A-Za-z0-9_-]{8,64}$."""
    if not isinstance(text, str) or not 8 <= len(text) <= 64:
        return False
    for ch in text:
        if ch not in _ID_CHARS:
            return False
    return True


def message_id(device, epoch, seq):
    """Unique across devices (device id), across flash wipes (random epoch chosen when the
    box's state file is created) and within a run (seq). At most 40+1+8+1+14 = 64 chars."""
    return "%s-%s-%x" % (device[:40], epoch, seq)


def envelope(type_, msg_id, device, seq, ts, fields=None):
    """A command as both outboxes store and send it (the box's and the Pi's SQLite one)."""
    msg = {"v": VERSION, "id": msg_id, "dev": device, "seq": seq, "ts": ts, "type": type_}
    if fields:
        for k in fields:
            msg[k] = fields[k]
    return msg


def command(type_, device, epoch, seq, ts, fields=None):
    return envelope(type_, message_id(device, epoch, seq), device, seq, ts, fields)


def voided(msg):
    """A withdrawn command: a `cmd.void` with the same id and seq, which the service
    records without effect (a late original is then ignored as a duplicate) and which
    keeps the device's sequence unbroken."""
    return {"v": msg["v"], "id": msg["id"], "dev": msg["dev"], "seq": msg["seq"], "ts": msg["ts"],
            "type": "cmd.void"}


def resend_due(last_sent, now, resend_after, diff):
    """True when an unacked command is due for (re)publishing: never sent, or sent
    `resend_after` ago (ms on the box, seconds on the Pi; `diff(a, b)` is a - b)."""
    return last_sent is None or diff(now, last_sent) >= resend_after


def encode(obj):
    """UTF-8 bytes: umqtt.simple counts len(msg), which for text would be characters."""
    return json.dumps(obj).encode()


def decode(payload):
    """JSON object from a payload, or None for anything else (never raises)."""
    try:
        if isinstance(payload, (bytes, bytearray)):
            payload = payload.decode()
        obj = json.loads(payload)
    except (ValueError, UnicodeError, TypeError):
        return None
    return obj if isinstance(obj, dict) else None


def parse_ack(payload):
    """(id, ok, result, error, message_vi) of an ack, or None when it is not one."""
    obj = decode(payload)
    if obj is None or not isinstance(obj.get("id"), str) or not isinstance(obj.get("ok"), bool):
        return None
    result = obj.get("result")
    return (obj["id"], obj["ok"], result if isinstance(result, dict) else {}, obj.get("error"),
            obj.get("message_vi"))


def printed_number(serving):
    """The number on the citizen's paper when the ticket is called by another one (a
    renumbered offline ticket, docs/protocol.md), else None; a bad value counts as none."""
    p = serving.get("printed_number")
    if isinstance(p, int) and not isinstance(p, bool) and p > 0 and p != serving.get("number"):
        return p
    return None


def parse_counter_state(payload, counter):
    """(status, serving) from retained state/counter/<n>; serving is a dict with at least
    an int `number` and a str `ticket_id`, and `printed_number` (int or None, see
    printed_number()), or None. None overall when malformed."""
    obj = decode(payload)
    if obj is None or obj.get("counter") != counter:
        return None
    status = obj.get("status")
    if status not in ("open", "paused", "closed"):
        return None
    serving = obj.get("serving")
    if serving is not None:
        if (not isinstance(serving, dict) or not isinstance(serving.get("number"), int)
                or not isinstance(serving.get("ticket_id"), str)):
            return None
        serving["printed_number"] = printed_number(serving)
    return status, serving


def status_payload(device, ts, online, counter):
    return encode({"v": VERSION, "dev": device, "ts": ts, "online": online, "role": "counter",
                   "counter": counter, "fw": "qms-firmware-py"})
