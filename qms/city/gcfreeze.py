"""Short garbage-collector pauses in a process holding thousands of live connections.

With 2,000 live pages the public view holds a few hundred thousand objects that live as
long as their connections, and every change of the board promotes a few thousand more;
CPython's full collections then came every ~30 s and took ~200 ms each (bench VM, median
of 7: 198 ms, max 275 ms), every page request waiting behind them: they were the city
page's p99 (bench/README.md, "city page"). So the process freezes what it holds once a
minute (`gc.freeze`: moved out of the collector's scans; still freed by reference counting
as usual), and full collections only scan what is newer: a few milliseconds.

What freezing gives up is collecting reference cycles among frozen objects that die later.
A closed live page leaves none (measured: 1,000 pages held, frozen, closed: 0 cyclic
objects); to be sure nothing accumulates over months, everything is unfrozen and collected
once every SWEEP_EVERY_S (one long pause every few hours instead of every half minute).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("qms.city.gcfreeze")

FREEZE_EVERY_S = 60.0
SWEEP_EVERY_S = 6 * 3600.0


async def keep_collections_short(freeze_every: float = FREEZE_EVERY_S, sweep_every: float = SWEEP_EVERY_S) -> None:
    last_sweep = time.monotonic()
    gc.freeze()                              # what start-up made (modules, the app, the board)
    try:
        while True:
            await asyncio.sleep(freeze_every)
            if time.monotonic() - last_sweep >= sweep_every:
                gc.unfreeze()
                found = gc.collect()
                last_sweep = time.monotonic()
                log.info("garbage collector: full sweep, %d unreachable objects", found)
            gc.freeze()
    finally:
        gc.unfreeze()                         # stopped (the server ends, or a test): as before
