"""The city's live board in memory: every point's current waits, pushed to SSE clients.

The ingest (any process) stores a point's live state in PostgreSQL and NOTIFYs its site id.
Each web process LISTENs, reads the changed rows a few times a second (a burst of
notifications costs one query), keeps the whole board as ready-encoded JSON, and hands
each change to every connected client's queue. A page request is then a dictionary read,
whatever the number of clients; a client too slow to take its updates is dropped (its
browser reconnects and starts from the whole board again).
"""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import time

import msgspec
import psycopg

from qms.city.db import NOTIFY_CHANNEL

log = logging.getLogger("qms.city.hub")

STALE_AFTER_S = 120          # a point not heard from for this long shows "no recent data"
FLUSH_S = 0.25               # notifications are gathered this long into one read and one message
CLIENT_QUEUE = 64

_enc = msgspec.json.Encoder()
_ROWS = "SELECT site, center, name, live, extract(epoch FROM last_seen) FROM city_sites"


def public_entry(site: str, center: str, name: str | None, live: dict | None, seen: float | None) -> dict:
    """What the public may see of a point: no device, no ticket, no person."""
    live = live or {}
    stale = seen is None or time.time() - seen > STALE_AFTER_S
    services = [{k: s.get(k) for k in ("id", "name_vi", "name_en", "waiting", "est_wait_s", "open")}
                for s in live.get("services", [])]
    return {"site": site, "center": center, "name": name or live.get("name") or site,
            "address": live.get("address", ""), "stale": stale,
            "open": (not stale) and any(s["open"] for s in services),
            "services": services, "updated_at": live.get("at")}


def _delta(old: dict | None, new: dict) -> dict:
    """What a client holding `old` needs: only the numbers that changed, when no name did
    (a few dozen bytes instead of the whole point, for every client, on every change)."""
    if old is None or any(old[k] != new[k] for k in ("center", "name", "address")) or [
            (s["id"], s["name_vi"]) for s in old["services"]] != [(s["id"], s["name_vi"]) for s in new["services"]]:
        return new
    d: dict = {"site": new["site"], "updated_at": new["updated_at"]}
    for k in ("stale", "open"):
        if old[k] != new[k]:
            d[k] = new[k]
    changed = {s["id"]: [s["waiting"], s["est_wait_s"], s["open"]]
               for s, o in zip(new["services"], old["services"]) if s != o}
    if changed:
        d["s"] = changed
    return d


class Hub:
    def __init__(self, dsn: str):
        self.dsn = dsn
        self.board: dict[str, dict] = {}
        self._board_json: bytes | None = None
        self._board_gzip: bytes | None = None
        self.clients: set[asyncio.Queue] = set()
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.changes = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._load(None)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._flush()),
                       asyncio.create_task(self._staleness())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # ------------------------------------------------------------ reading
    def board_json(self) -> bytes:
        if self._board_json is None:
            self._board_json = _enc.encode(self.sorted_board())
            self._board_gzip = None
        return self._board_json

    def board_gzip(self) -> bytes:
        """The board compressed once per change (~10x smaller), not once per request."""
        data = self.board_json()
        if self._board_gzip is None:
            self._board_gzip = gzip.compress(data, compresslevel=5)
        return self._board_gzip

    def sorted_board(self) -> list[dict]:
        return sorted(self.board.values(), key=lambda e: (e["center"], e["name"], e["site"]))

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(CLIENT_QUEUE)
        self.clients.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.clients.discard(q)

    # ------------------------------------------------------------ updating
    async def _load(self, sites: set[str] | None) -> list[dict]:
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            if sites is None:
                cur = await conn.execute(_ROWS)
            else:
                cur = await conn.execute(_ROWS + " WHERE site = ANY(%s)", (list(sites),))
            rows = await cur.fetchall()
        changed = []
        for site, center, name, live, seen in rows:
            e = public_entry(site, center, name, live, float(seen) if seen is not None else None)
            old = self.board.get(site)
            if old != e:
                self.board[site] = e
                changed.append(_delta(old, e))
        if changed:
            self._publish(changed)
        return changed

    def _publish(self, changed: list[dict]) -> None:
        self._board_json = None
        self.changes += len(changed)
        msg = b"data: " + _enc.encode(changed) + b"\n\n"
        for q in list(self.clients):
            try:
                q.put_nowait(msg)
            except asyncio.QueueFull:          # too slow: drop it, its browser reconnects
                self.clients.discard(q)
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    await self._load(None)        # whatever changed while not listening
                    async for n in conn.notifies():
                        self._pending.add(n.payload)
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:   # noqa: BLE001 - the database restarts: listen again
                log.warning("city board: lost the database (%s); listening again", e)
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_S)
            self._wake.clear()
            sites, self._pending = self._pending, set()
            try:
                await self._load(sites)
            except Exception as e:   # noqa: BLE001
                log.warning("city board: cannot read %d sites (%s)", len(sites), e)
                self._pending |= sites
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _staleness(self) -> None:
        """A point that stopped reporting turns stale without any notification."""
        while True:
            await asyncio.sleep(10)
            fresh = {e["site"] for e in self.board.values() if not e["stale"]}
            if fresh:
                with contextlib.suppress(Exception):
                    await self._load(fresh)
