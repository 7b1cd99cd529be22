"""A live page of the city view is written to at once, and in order when its client is slow.

The ASGI `send` here stands for uvicorn's: it completes at once, or, when the client's socket
buffer is full, waits until it drains (uvicorn's `flow.drain()`); `gate` is that wait. The
whole path through real uvicorn and a real browser is in tests/test_city_stream.py; this is
what those cannot make happen on demand: a client that stops reading."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import weakref

from qms.city.gcfreeze import keep_collections_short
from qms.city.livepage import LivePage


class Socket:
    """What the client has received, and whether its buffer is full (`gate` not done)."""

    def __init__(self):
        self.received: list[bytes] = []
        self.gate: asyncio.Future | None = None
        self.fail = False

    async def send(self, message: dict) -> None:
        if self.fail:
            raise ConnectionResetError("client gone")
        if self.gate is not None:
            await self.gate
        self.received.append(message["body"])


def test_messages_are_written_at_once_and_in_order():
    async def run():
        sock = Socket()
        page = LivePage(sock.send, limit=4)
        for i in range(10):
            assert page.offer(b"m%d" % i)
            assert sock.received[-1] == b"m%d" % i        # written in the offer itself: no task, no turn
        await page.idle()
    asyncio.run(run())


def test_a_slow_client_gets_its_messages_in_order_until_it_is_too_far_behind():
    async def run():
        sock = Socket()
        page = LivePage(sock.send, limit=3)
        sock.gate = asyncio.get_running_loop().create_future()      # the client stops reading
        assert page.offer(b"a")                                     # waits for the socket
        assert [page.offer(m) for m in (b"b", b"c", b"d")] == [True, True, True]
        assert page.offer(b"e") is False                            # a 4th behind: too slow
        assert sock.received == []
        sock.gate.set_result(None)                                  # it reads again
        sock.gate = None
        await page.idle()
        assert sock.received == [b"a", b"b", b"c", b"d"]
        assert page.offer(b"f") and sock.received[-1] == b"f"
    asyncio.run(run())


def test_an_ended_page_finishes_the_message_being_written_and_drops_the_rest():
    async def run():
        sock = Socket()
        page = LivePage(sock.send, limit=8)
        sock.gate = asyncio.get_running_loop().create_future()
        page.offer(b"a")
        page.offer(b"b")
        page.end()
        assert page.ended.done()
        idle = asyncio.ensure_future(page.idle())
        await asyncio.sleep(0)
        assert not idle.done()                  # "a" is still being written
        sock.gate.set_result(None)
        await idle
        assert sock.received == [b"a"]
        assert page.offer(b"c") and sock.received == [b"a"]     # nothing more once ended
    asyncio.run(run())


def test_a_send_that_fails_ends_the_page_without_raising():
    async def run():
        sock = Socket()
        page = LivePage(sock.send, limit=8)
        sock.fail = True
        assert page.offer(b"a")                 # the hub's fan-out goes on to the other pages
        assert page.ended.done()
        await page.idle()
    asyncio.run(run())


def test_the_view_freezes_what_it_holds_and_sweeps_it_all_now_and_then():
    """gcfreeze.py: what the process holds leaves the collector's scans (frozen); a cycle
    that dies while frozen outlives ordinary collections until the sweep collects it."""
    class Node:
        pass

    async def run():
        task = asyncio.ensure_future(keep_collections_short(freeze_every=0.05, sweep_every=0.5))
        try:
            a, b = Node(), Node()
            a.other, b.other = b, a                         # a reference cycle
            gone = weakref.ref(a)
            await asyncio.sleep(0.12)                       # a freeze has come since
            assert gc.get_freeze_count() > 0
            del a, b
            gc.collect()
            assert gone() is not None                       # frozen: not scanned
            t0 = time.monotonic()
            while gone() is not None and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.05)
            assert gone() is None                           # the sweep collected it
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert gc.get_freeze_count() == 0                   # stopped: as before
    asyncio.run(run())
