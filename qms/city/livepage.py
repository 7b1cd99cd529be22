"""One live page of the city view: its SSE stream, written to without a task of its own.

With 2,000 live pages every change is 2,000 writes. Through a queue and a task per page,
each write also woke a task (a future, a callback, a coroutine step): about half the public
view's CPU for the stream, all of it in one burst per change, which page requests then wait
behind (bench/README.md, "city page"). Here the hub hands a message to the page and the
page writes it at once: the ASGI `send` of a stream's chunk completes without waiting
unless the client's socket buffer is full, so it is stepped right there, as a task would
step it. Only when it has to wait (a slow client) does the page wait for it, with the next
messages kept in order behind it, at most `limit`; past that the page is too slow and the
hub ends it (its browser reconnects and resumes from its last id, hub.py).
"""
from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("qms.city.livepage")


class LivePage:
    def __init__(self, send: Callable[[dict], Awaitable[None]], limit: int):
        self._send = send
        self.limit = limit
        self._backlog: collections.deque[bytes] = collections.deque()
        self._busy = False
        loop = asyncio.get_running_loop()
        self.ended = loop.create_future()          # done: the stream is to end
        self._idle = loop.create_future()          # done when nothing is being written
        self._idle.set_result(None)

    def offer(self, msg: bytes) -> bool:
        """Write `msg` now, or after the messages before it; False: too far behind."""
        if self.ended.done():
            return True
        if self._busy:
            if len(self._backlog) >= self.limit:
                return False
            self._backlog.append(msg)
            return True
        self._write(msg)
        return True

    def end(self) -> None:
        self._backlog.clear()
        if not self.ended.done():
            self.ended.set_result(None)

    async def idle(self) -> None:
        """Until the message being written (if any) is written."""
        await self._idle

    def _write(self, msg: bytes) -> None:
        self._busy = True
        if self._idle.done():
            self._idle = asyncio.get_running_loop().create_future()
        self._step(self._send({"type": "http.response.body", "body": msg, "more_body": True}))

    def _step(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run the send until it completes or waits (then on again when what it waits for
        is done): what asyncio's Task does, for the one coroutine, without a task."""
        try:
            waited = coro.send(None)
        except StopIteration:
            self._done_writing()
            return
        except Exception as e:  # noqa: BLE001 - a broken connection: this page ends, not the hub
            log.debug("live page: send failed (%s)", e)
            self._done_writing()
            self.end()
            return
        if isinstance(waited, asyncio.Future):
            waited._asyncio_future_blocking = False      # taken, as Task.__step does
            waited.add_done_callback(lambda _f: self._step(coro))
        else:                                             # a bare yield (sleep(0)): on the next turn
            asyncio.get_running_loop().call_soon(self._step, coro)

    def _done_writing(self) -> None:
        if self._backlog and not self.ended.done():
            self._write(self._backlog.popleft())
            return
        self._busy = False
        if not self._idle.done():
            self._idle.set_result(None)
