"""The queue core's domain events: the facts it decides, in the order they happened.

They are also protocol v1's event messages: `qms.protocol.messages` re-exports them under
the same names and publishes them as they are (docs/protocol.md, "Events"), so the wire
format is defined here once. The core imports nothing of the protocol.
"""
from __future__ import annotations

from typing import Annotated, Protocol

import msgspec

Ms = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class Event(msgspec.Struct, tag_field="type", kw_only=True):
    at: Ms                 # when it happened (service clock, Unix ms)
    seq: int = 0           # position in the service's log, set when stored


class TicketIssued(Event, tag="ticket.issued", kw_only=True):
    ticket_id: str
    number: int
    service: str
    priority: str | None = None
    issued_at: Ms          # for offline tickets, the kiosk's time of printing
    source: str = "kiosk"  # kiosk | offline | booking
    dev: str = ""
    people_ahead: int = 0
    est_wait_s: int = 0


class TicketRenumbered(Event, tag="ticket.renumbered", kw_only=True):
    """The ticket is called by `number` from now on. Either an online request timed out at
    the kiosk, which printed its own number (paper wins: `number` is the paper's), or an
    offline ticket's paper number was not the kiosk's or was taken (`old_number` is the
    paper's; the ticket keeps the free `number` its `ticket.issued` already carries)."""
    ticket_id: str
    number: int
    old_number: int


class TicketRefused(Event, tag="ticket.refused", kw_only=True):
    service: str
    priority: str | None = None
    reason: str
    dev: str = ""


class TicketPrintFailed(Event, tag="ticket.print_failed", kw_only=True):
    """A kiosk could not print an issued ticket; the ticket stays in the queue."""
    ticket_id: str
    number: int
    service: str
    reason: str
    dev: str = ""


class TicketCalled(Event, tag="ticket.called", kw_only=True):
    ticket_id: str
    number: int
    service: str
    counter: int
    priority: str | None = None
    printed_number: int | None = None   # the citizen's paper says this, not `number` (renumbered)


class TicketRecalled(Event, tag="ticket.recalled", kw_only=True):
    ticket_id: str
    number: int
    service: str
    counter: int
    count: int
    printed_number: int | None = None


class TicketNoShow(Event, tag="ticket.no_show", kw_only=True):
    ticket_id: str
    number: int
    counter: int


class TicketDone(Event, tag="ticket.done", kw_only=True):
    ticket_id: str
    number: int
    counter: int


class TicketTransferred(Event, tag="ticket.transferred", kw_only=True):
    ticket_id: str
    number: int
    from_counter: int
    to_service: str
    to_counter: int | None = None


class CounterPaused(Event, tag="counter.paused", kw_only=True):
    counter: int
    reason: str = ""


class CounterResumed(Event, tag="counter.resumed", kw_only=True):
    counter: int


class RatingSubmitted(Event, tag="rating.submitted", kw_only=True):
    ticket_id: str
    counter: int
    service: str
    level: int


AnyEvent = (
    TicketIssued | TicketRenumbered | TicketRefused | TicketCalled | TicketRecalled |
    TicketNoShow | TicketDone | TicketTransferred | CounterPaused | CounterResumed | RatingSubmitted |
    TicketPrintFailed
)


class OfflineTicket(Protocol):
    """What the core needs of a ticket a kiosk printed without the service (the protocol's
    `ticket.offline` command has these fields)."""
    ticket_id: str
    service: str
    priority: str | None
    number: int
    issued_at: int
    dev: str
