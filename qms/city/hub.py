"""The city's live board in memory: every point's current waits, pushed to SSE clients.

The ingest (any process) stores a point's live state in PostgreSQL and NOTIFYs its site id.
Each web process LISTENs, reads the changed rows a few times a second (a burst of
notifications costs one query), keeps the whole board as ready-encoded JSON, and hands
each change to every connected client's queue. A page request is then a dictionary read,
whatever the number of clients; a client too slow to take its updates is dropped.

Every change has a version, `<epoch>-<n>`: the epoch is this process's (random at start),
n counts the changes. The board says which version it is (`X-Board-Version`), and every
message of the stream carries its version as the SSE `id`. A page loads the board once
(gzipped, encoded once per version), then opens the stream `?since=<version>`; a browser
that reconnects sends the last id it had (`Last-Event-ID`). Either way the stream starts
with exactly the changes after that version, from a ring of the last RING changes, or,
when the client is too far behind or holds another process's version, with the whole
board (`event: board`). A client applies changes only on top of the board they follow, so
it never shows a partial or stale board; and 2,000 pages connecting cost 2,000 small
gzipped board loads instead of 2,000 whole boards of JSON on the stream.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import logging
import secrets
import time

import msgspec
import psycopg

from qms.city.db import NOTIFY_CHANNEL

log = logging.getLogger("qms.city.hub")

STALE_AFTER_S = 120          # a point not heard from for this long shows "no recent data"
# notifications are gathered this long into one read and one message to every page: each
# message costs a write per live page, so 2,000 pages cost 4,000 writes a second at 0.5 s
FLUSH_S = 0.5
CLIENT_QUEUE = 32            # messages a client may be behind before it is dropped (~16 s of changes)
RING = 120                   # changes kept for clients that resume (a minute at 2 a second)
KEEPALIVE_S = 15.0           # a comment on every stream this often: proxies keep it open
# live pages handed a message per turn of the event loop: a page request waits for one
# such share, not for the sends to all 2,000 pages
FAN_OUT_CHUNK = 100

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
        self.epoch = secrets.token_hex(4)
        self.version = 0
        self.ring: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=RING)
        self._board_json: tuple[int, bytes] | None = None       # (version, JSON)
        self._board_gzip: tuple[int, bytes] | None = None
        self._board_event: tuple[int, bytes] | None = None
        self.clients: set[asyncio.Queue] = set()
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._conn: psycopg.AsyncConnection | None = None
        # messages to send and who to (the clients at the time of the change), in order
        self._outbox: collections.deque[tuple[bytes, list[asyncio.Queue]]] = collections.deque()
        self._out_wake = asyncio.Event()
        self.changes = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._load(None)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._flush()),
                       asyncio.create_task(self._staleness()), asyncio.create_task(self._keepalive()),
                       asyncio.create_task(self._fan_out())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for q in list(self.clients):
            self._drop(q)
        if self._conn is not None:
            await self._conn.close()

    # ------------------------------------------------------------ reading
    def tag(self, version: int | None = None) -> str:
        return f"{self.epoch}-{self.version if version is None else version}"

    def board_json(self) -> tuple[str, bytes]:
        """The board and its version, encoded once per version."""
        if self._board_json is None or self._board_json[0] != self.version:
            self._board_json = (self.version, _enc.encode(self.sorted_board()))
        return self.tag(), self._board_json[1]

    def board_gzip(self) -> tuple[str, bytes]:
        """The board compressed once per version (~10x smaller), not once per request."""
        tag, data = self.board_json()
        if self._board_gzip is None or self._board_gzip[0] != self.version:
            self._board_gzip = (self.version, gzip.compress(data, compresslevel=5))
        return tag, self._board_gzip[1]

    def board_event(self) -> bytes:
        if self._board_event is None or self._board_event[0] != self.version:
            tag, data = self.board_json()
            self._board_event = (self.version, b"id: " + tag.encode() + b"\nevent: board\ndata: " + data + b"\n\n")
        return self._board_event[1]

    def resume(self, since: str | None) -> bytes:
        """What a client holding the board at version `since` needs to be current: the
        changes after it, in order, or the whole board when they are no longer kept (or
        `since` is another process's, or none)."""
        if since:
            epoch, _, n = since.strip().partition("-")
            if epoch == self.epoch and n.isdigit() and int(n) <= self.version:
                v = int(n)
                if v == self.version:
                    return b""
                if self.ring and self.ring[0][0] <= v + 1:
                    return b"".join(m for ver, m in self.ring if ver > v)
        return self.board_event()

    def sorted_board(self) -> list[dict]:
        return sorted(self.board.values(), key=lambda e: (e["center"], e["name"], e["site"]))

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(CLIENT_QUEUE)
        self.clients.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.clients.discard(q)

    def _drop(self, q: asyncio.Queue) -> None:
        """End a client's stream: its queue is emptied and closed (None)."""
        self.clients.discard(q)
        while not q.empty():
            q.get_nowait()
        q.put_nowait(None)

    # ------------------------------------------------------------ updating
    async def _load(self, sites: set[str] | None) -> list[dict]:
        # one connection kept for these reads (twice a second: a new one each time would
        # cost PostgreSQL a backend start each time); opened again after an error
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        try:
            if sites is None:
                cur = await self._conn.execute(_ROWS)
            else:
                cur = await self._conn.execute(_ROWS + " WHERE site = ANY(%s)", (list(sites),))
            rows = await cur.fetchall()
        except BaseException:
            await self._conn.close()
            self._conn = None
            raise
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
        self.version += 1
        self.changes += len(changed)
        # encoded once, the same bytes for every client
        msg = b"id: " + self.tag().encode() + b"\ndata: " + _enc.encode(changed) + b"\n\n"
        self.ring.append((self.version, msg))
        self._send_all(msg)

    def _send_all(self, msg: bytes) -> None:
        # who gets it is fixed now: a client subscribing later has it from resume()
        self._outbox.append((msg, list(self.clients)))
        self._out_wake.set()

    async def _fan_out(self) -> None:
        """One task hands the messages out, in order, FAN_OUT_CHUNK clients per turn of the
        event loop (each client's own task then writes it)."""
        while True:
            await self._out_wake.wait()
            self._out_wake.clear()
            while self._outbox:
                msg, clients = self._outbox.popleft()
                for i in range(0, len(clients), FAN_OUT_CHUNK):
                    for q in clients[i:i + FAN_OUT_CHUNK]:
                        if q not in self.clients:
                            continue                   # gone, or dropped meanwhile
                        try:
                            q.put_nowait(msg)
                        except asyncio.QueueFull:      # too slow: drop it; its browser resumes from its last id
                            self._drop(q)
                    await asyncio.sleep(0)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            self._send_all(b": keep-alive\n\n")

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
