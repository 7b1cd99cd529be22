"""Config section `[counter_terminal]`: buttons, lights, number display, rating, link policy.

One section serves every counter terminal of a site: pins are wired the same way on each
Pi, and the display's bus address defaults to the terminal's own counter number.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Pin = Annotated[int, msgspec.Meta(ge=0, le=40)]
Ms = Annotated[int, msgspec.Meta(ge=0, le=10_000)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ButtonPins(_Strict):
    """BCM pin numbers of the staff keys and the citizen's rating keys (wired to ground)."""
    next: Pin | None = 5
    recall: Pin | None = 6
    no_show: Pin | None = 13
    transfer: Pin | None = 19
    pause: Pin | None = 26
    done: Pin | None = 21
    # rating keys, best first: "Rất hài lòng", "Hài lòng", "Bình thường", "Không hài lòng"
    rating: list[Pin] = msgspec.field(default_factory=lambda: [12, 16, 20, 7])


class LightPins(_Strict):
    busy: Pin | None = 17       # serving someone
    paused: Pin | None = 27     # counter paused
    link: Pin | None = 22       # lit while the service is unreachable


class NumberDisplayConfig(_Strict):
    kind: Literal["simulated", "serial"] = "simulated"
    # serial board: protocol "qms-ascii" (STX/ETX frames, docs/counter.md) or "alpha"
    # (Alpha Sign Communications Protocol, spoken by many LED message boards)
    protocol: Literal["qms-ascii", "alpha"] = "qms-ascii"
    port: str = "/dev/ttyUSB0"
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    address: Annotated[int, msgspec.Meta(ge=0, le=99)] | None = None   # default: the counter number
    digits: Annotated[int, msgspec.Meta(ge=2, le=8)] = 4
    # simulated board: where to write a PNG of each new frame ("" = keep frames in memory only)
    png: str = ""


class CounterTerminalConfig(_Strict):
    rating_seconds: Annotated[float, msgspec.Meta(ge=3, le=600)] = 30.0
    # a call command (next/recall/no-show/transfer) not acknowledged in this time is
    # withdrawn and reported as failed: a citizen must not be called minutes later
    call_timeout_s: Annotated[float, msgspec.Meta(ge=0.5, le=30)] = 5.0
    debounce_ms: Ms = 40
    long_press_ms: Annotated[int, msgspec.Meta(ge=300, le=10_000)] = 1000
    # the same action again within this time is ignored (double taps, key auto-repeat)
    repeat_guard_ms: Ms = 1500
    recall_blink_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 5.0
    # no-show marks a citizen absent: ask for a long press so a brushed key does not
    no_show_needs_long_press: bool = True
    buttons: ButtonPins = msgspec.field(default_factory=ButtonPins)
    lights: LightPins = msgspec.field(default_factory=LightPins)
    number_display: NumberDisplayConfig = msgspec.field(default_factory=NumberDisplayConfig)
