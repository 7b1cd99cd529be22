"""Wire messages of protocol v1 (see docs/protocol.md), validated with msgspec.

Commands flow from devices to the service, facts (events) and acks flow back.
Every command carries the envelope: schema version `v`, a unique `id`, the sending
device `dev`, its per-device sequence number `seq` and a timestamp `ts` (Unix ms).
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

# the facts are the queue core's domain events, published as they are: one definition
from qms.core.events import (  # noqa: F401 - re-exported, same names as before
    AnyEvent,
    CounterPaused,
    CounterResumed,
    Event,
    Ms,
    RatingSubmitted,
    TicketCalled,
    TicketDone,
    TicketIssued,
    TicketNoShow,
    TicketPrintFailed,
    TicketRecalled,
    TicketRefused,
    TicketRenumbered,
    TicketTransferred,
)

PROTOCOL_VERSION = 1

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
MsgId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
TicketId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
CounterNo = Annotated[int, msgspec.Meta(ge=1, le=99)]
Number = Annotated[int, msgspec.Meta(ge=1000, le=9999)]
Reason = Annotated[str, msgspec.Meta(max_length=120)]


# ---------------------------------------------------------------- commands
class Command(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: Literal[1]
    id: MsgId
    dev: Id
    seq: Seq
    ts: Ms


class TicketRequest(Command, tag="ticket.request", kw_only=True):
    service: Id
    priority: Id | None = None
    ticket_id: TicketId | None = None      # chosen by the kiosk so an offline copy keeps it
    source: Literal["kiosk", "booking"] = "kiosk"


class TicketOffline(Command, tag="ticket.offline", kw_only=True):
    """A ticket a kiosk printed without the service: its number is from the kiosk's block."""
    ticket_id: TicketId
    service: Id
    priority: Id | None = None
    number: Number
    issued_at: Ms


class TicketPrintFailure(Command, tag="ticket.print_failed", kw_only=True):
    """A kiosk issued this ticket but could not print it (the citizen has it on screen)."""
    ticket_id: TicketId
    number: Number
    service: Id
    reason: Literal["paper_out", "cover_open", "offline", "unknown"] = "unknown"
    detail: Reason = ""


class CounterNext(Command, tag="counter.next", kw_only=True):
    pass


class CounterRecall(Command, tag="counter.recall", kw_only=True):
    pass


class CounterNoShow(Command, tag="counter.no_show", kw_only=True):
    pass


class CounterDone(Command, tag="counter.done", kw_only=True):
    pass


class CounterTransfer(Command, tag="counter.transfer", kw_only=True):
    to_service: Id | None = None
    to_counter: CounterNo | None = None


class CounterPause(Command, tag="counter.pause", kw_only=True):
    reason: Reason = ""


class CounterResume(Command, tag="counter.resume", kw_only=True):
    pass


class CounterCall(Command, tag="counter.call", kw_only=True):
    """Call a given ticket back (a no-show that returned within the window)."""
    number: Number


class RatingSubmit(Command, tag="rating.submit", kw_only=True):
    ticket_id: TicketId
    level: Annotated[int, msgspec.Meta(ge=1, le=5)]


class NoticeSet(Command, tag="notice.set", kw_only=True):
    text_vi: Annotated[str, msgspec.Meta(max_length=500)] = ""
    text_en: Annotated[str, msgspec.Meta(max_length=500)] = ""


class CommandVoid(Command, tag="cmd.void", kw_only=True):
    """Stands in for a command the device withdrew before it was acknowledged (a call left
    unanswered too long). Same id and seq as the withdrawn one: the service records the id
    without any effect, so the original is ignored if it still arrives, and the device's
    sequence stays unbroken."""


AnyCommand = (
    CommandVoid | TicketRequest | TicketOffline | TicketPrintFailure | CounterNext | CounterRecall |
    CounterNoShow | CounterDone | CounterTransfer | CounterPause | CounterResume | CounterCall |
    RatingSubmit | NoticeSet
)
COUNTER_COMMANDS = (CounterNext, CounterRecall, CounterNoShow, CounterDone, CounterTransfer,
                    CounterPause, CounterResume, CounterCall)

# which device roles may send which commands (the ACL enforces the topic, this the type)
ROLE_COMMANDS: dict[str, tuple[type, ...]] = {
    "kiosk": (TicketRequest, TicketOffline, TicketPrintFailure),
    "robot": (TicketRequest, TicketOffline, TicketPrintFailure),
    "web": (TicketRequest,),
    "counter": COUNTER_COMMANDS + (RatingSubmit,),
    "admin": (NoticeSet,),
}


# ---------------------------------------------------------------- acks
class Ack(msgspec.Struct, kw_only=True, omit_defaults=True):
    v: int                 # no default: always on the wire (omit_defaults would drop it)
    id: str
    ok: bool
    result: Any = None
    error: str | None = None
    message_vi: str | None = None
    message_en: str | None = None


class _AckIn(Ack, kw_only=True):
    """An ack as received: one stored by an older service may lack `v`."""
    v: int = PROTOCOL_VERSION


def ack(id: str, ok: bool, **fields) -> Ack:
    return Ack(v=PROTOCOL_VERSION, id=id, ok=ok, **fields)


class Envelope(msgspec.Struct):
    """Just enough of a command that failed validation to answer it: read leniently
    (unknown fields ignored, every field optional), so a device that named itself and its
    command gets an error ack instead of silence."""
    id: Any = None
    dev: Any = None
    seq: Any = None
    type: Any = None


# limits checked before a command is parsed (docs/protocol.md, "Limits")
MAX_COMMAND_BYTES = 16 * 1024    # the largest valid command (notice.set) is under 7 KB
MAX_COMMAND_DEPTH = 4            # commands are flat objects (depth 1)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def nesting_depth(payload: bytes, limit: int = MAX_COMMAND_DEPTH) -> int:
    """How deep arrays/objects nest in a JSON text, counted outside strings; counting stops
    past `limit`. A flat command costs two byte counts; anything else a regex pass (strings
    dropped) and a walk over the brackets alone."""
    brackets = payload.count(b"{") + payload.count(b"[")
    if brackets <= limit:
        return brackets                 # an upper bound, within the limit
    depth = deepest = 0
    for m in _BRACKET.finditer(_JSON_STRING.sub(b"", payload)):
        if m.group() in (b"{", b"["):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


_cmd_decoder = msgspec.json.Decoder(AnyCommand)
_envelope_decoder = msgspec.json.Decoder(Envelope)
_ack_decoder = msgspec.json.Decoder(_AckIn)
encode = msgspec.json.Encoder().encode


def decode_command(payload: bytes) -> Command:
    """Raise msgspec.ValidationError / DecodeError on anything not a valid command."""
    return _cmd_decoder.decode(payload)


def decode_envelope(payload: bytes) -> Envelope | None:
    """The envelope of a command that failed `decode_command`, or None if even that fails."""
    try:
        env = _envelope_decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return env if isinstance(env, Envelope) else None


def decode_ack(payload: bytes) -> Ack:
    return _ack_decoder.decode(payload)


def type_of(msg: msgspec.Struct) -> str:
    return msg.__struct_config__.tag
