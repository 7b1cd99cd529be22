"""Waiting in tests: poll with a deadline, never a fixed sleep.

`wait_until` is the one polling helper. `barrier` is how a test says "nothing else
arrived": it sends a marker down the same path as what must not have happened (the same
topic, the same device, the same inbox) and waits for the marker to come out; whatever was
sent before it has then been handled, so the assertion that follows is a fact. A sleep
before such an assertion only makes it likely, and passes when it should fail on a slow
machine.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(pred: Callable[[], T], timeout: float = 10.0, *, what: str = "the condition",
               step: Callable[[], object] | None = None, every: float = 0.02) -> T:
    """Poll `pred` until it returns something true, and return that. `step` runs before
    each poll (a main loop that must turn for the condition to come true; then `every` can
    be 0). Fails the test, naming `what`, if the deadline passes first."""
    deadline = time.monotonic() + timeout
    while True:
        if step is not None:
            step()
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        if every:
            time.sleep(every)


def barrier(send_marker: Callable[[], object], marker_arrived: Callable[[], object], timeout: float = 10.0,
            *, what: str = "the marker", step: Callable[[], object] | None = None) -> None:
    """Send a marker down the path under test and wait until it came out the other end."""
    send_marker()
    wait_until(marker_arrived, timeout, what=what, step=step)
