"""The queue's state as the core keeps it: tickets, counters and the waiting lines.

Separate from `queue.py` so the wait estimator can read the state (`QueueView`) without
importing the core that owns it.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from qms.config.site import SiteConfig


@dataclass(slots=True)
class Ticket:
    ticket_id: str
    number: int
    service: str
    priority: str | None
    issued_at: int
    source: str = "kiosk"
    dev: str = ""
    people_ahead: int = 0
    est_wait_s: int = 0
    state: str = "waiting"              # waiting | called | no_show | done | expired
    counter: int | None = None          # counter serving it now (or last)
    target_counter: int | None = None   # set by a transfer to one counter
    first_called_at: int | None = None
    called_at: int | None = None
    no_show_at: int | None = None
    recalls: int = 0
    rated: bool = False
    printed_number: int | None = None   # the number on the citizen's paper, if not `number`

    def sort_key(self) -> tuple[int, int]:
        return (self.issued_at, self.number)


@dataclass(slots=True)
class CounterState:
    number: int
    services: list[str]
    active: bool = False          # has acted today
    paused: bool = False
    reason: str = ""
    paused_at: int | None = None
    resumed_at: int | None = None
    current: str | None = None    # ticket id being served
    priority_streak: int = 0
    last_done: str | None = None  # the ticket just served, for its rating
    # for the wait estimate's breaks: a counter that calls inside its break window is
    # working through it; one that finished a citizen and calls nobody may be eating
    last_call_at: int | None = None
    free_since: int | None = None


class WaitLine:
    """Waiting tickets of one service (or of one counter, after a transfer to it), oldest first."""

    __slots__ = ("priority", "normal")

    def __init__(self) -> None:
        self.priority: list[tuple[tuple[int, int], Ticket]] = []
        self.normal: list[tuple[tuple[int, int], Ticket]] = []

    def _list(self, t: Ticket) -> list:
        return self.priority if t.priority else self.normal

    def add(self, t: Ticket) -> None:
        lst = self._list(t)
        bisect.insort(lst, (t.sort_key(), t), key=lambda e: e[0])

    def remove(self, t: Ticket) -> None:
        lst = self._list(t)
        i = bisect.bisect_left(lst, t.sort_key(), key=lambda e: e[0])
        while i < len(lst):
            if lst[i][1] is t:
                del lst[i]
                return
            i += 1
        raise ValueError(t.ticket_id)

    def head(self, priority: bool) -> Ticket | None:
        lst = self.priority if priority else self.normal
        return lst[0][1] if lst else None

    def __len__(self) -> int:
        return len(self.priority) + len(self.normal)


class QueueView(Protocol):
    """What the estimator reads of the core (`QueueCore` is one)."""
    cfg: SiteConfig
    day: str | None
    tickets: dict[str, Ticket]
    counters: dict[int, CounterState]
    lines: dict[str, WaitLine]
    targeted: dict[int, WaitLine]
