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

A message of the stream is one JSON object (`merge` below is its reference reader, city.js
its reader in the browser):

    {"t": <ms>, "w": [<entry>, ...], "n": [[i, dt, state, k, waiting, est_wait_s, open, k, ...], ...]}

`w`: whole entries (a new point, or its names or procedures changed). `n`: only the numbers
of the point whose entry has `"i": i` (numbered by this process, so only meaningful on top of
a board of the same epoch, which is all a client ever applies them to): `updated_at` =
t + dt (dt null: none), state 0 = unchanged, else 1 + stale + 2 × open; then for each
procedure that changed, its index k in the point's `services` and its waiting, est_wait_s
and open (0/1). Every page gets every change twice a second: this is ~4 times fewer bytes
than the changed fields by name (bench/README.md, "city page"), and the bytes are most of
what the view spends on its 2,000 pages.
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
from psycopg.types.json import set_json_loads

from qms.city.db import NOTIFY_CHANNEL
from qms.city.livepage import LivePage

log = logging.getLogger("qms.city.hub")

STALE_AFTER_S = 120          # a point not heard from for this long shows "no recent data"
# notifications are gathered this long into one read and one message to every page: each
# message costs a write per live page, so 2,000 pages cost 4,000 writes a second at 0.5 s
FLUSH_S = 0.5
CLIENT_QUEUE = 32            # messages a page may be behind before it is dropped (~16 s of changes)
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


def _change(old: dict | None, new: dict, base_ms: int) -> list | None:
    """The compact change a client holding `old` needs (module doc), or None when only a
    whole entry will do (a new point, or a name or the list of procedures changed)."""
    if old is None or any(old[k] != new[k] for k in ("center", "name", "address")) or [
            (s["id"], s["name_vi"]) for s in old["services"]] != [(s["id"], s["name_vi"]) for s in new["services"]]:
        return None
    at = new["updated_at"]
    state = 0 if (old["stale"], old["open"]) == (new["stale"], new["open"]) else 1 + new["stale"] + 2 * new["open"]
    row = [new["i"], at - base_ms if isinstance(at, int) else None, state]
    for k, (s, o) in enumerate(zip(new["services"], old["services"])):
        if s != o:
            row += (k, s["waiting"], s["est_wait_s"], int(bool(s["open"])))
    return row


def merge(board: dict[str, dict], numbered: dict[int, dict], msg: dict | list) -> None:
    """Apply a message of the stream (or a whole board, a list) to a client's board (site ->
    entry; `numbered`: entry["i"] -> entry, of the same board). What city.js does."""
    for e in msg if isinstance(msg, list) else msg.get("w", ()):
        board[e["site"]] = numbered[e["i"]] = e
    if isinstance(msg, list):
        return
    for row in msg.get("n", ()):
        p = numbered[row[0]]
        p["updated_at"] = None if row[1] is None else msg["t"] + row[1]
        if row[2]:
            p["stale"], p["open"] = bool((row[2] - 1) & 1), bool((row[2] - 1) & 2)
        for j in range(3, len(row), 4):
            s = p["services"][row[j]]
            s["waiting"], s["est_wait_s"], s["open"] = row[j + 1], row[j + 2], bool(row[j + 3])


class Hub:
    def __init__(self, dsn: str):
        self.dsn = dsn
        self.board: dict[str, dict] = {}
        self.numbers: dict[str, int] = {}          # site -> its entry's "i" (module doc)
        self.epoch = secrets.token_hex(4)
        self.version = 0
        self.ring: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=RING)
        # the board as served: (version, JSON, gzipped JSON), prepared after each change
        self._ready: tuple[int, bytes, bytes] | None = None
        self._ready_wake = asyncio.Event()
        self._board_event: tuple[int, bytes] | None = None
        self.clients: set[LivePage] = set()
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._conn: psycopg.AsyncConnection | None = None
        # messages to send and who to (the clients at the time of the change), in order
        self._outbox: collections.deque[tuple[bytes, list[LivePage]]] = collections.deque()
        self._out_wake = asyncio.Event()
        self.changes = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._load(None)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._flush()),
                       asyncio.create_task(self._staleness()), asyncio.create_task(self._keepalive()),
                       asyncio.create_task(self._fan_out()), asyncio.create_task(self._prepare())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for page in list(self.clients):
            self._drop(page)
        if self._conn is not None:
            await self._conn.close()

    # ------------------------------------------------------------ reading
    def tag(self, version: int | None = None) -> str:
        return f"{self.epoch}-{self.version if version is None else version}"

    def board_json(self) -> tuple[str, bytes]:
        """The board and its version: the latest prepared (a change or so behind the
        stream at most; the stream resumes from its version, so the page ends up current)."""
        v, data, _ = self._ready or self._prepare_now()
        return self.tag(v), data

    def board_gzip(self) -> tuple[str, bytes]:
        """The board gzipped (~10x smaller): once per version, not once per request."""
        v, _, gz = self._ready or self._prepare_now()
        return self.tag(v), gz

    def _prepare_now(self) -> tuple[int, bytes, bytes]:
        data = _enc.encode(self.sorted_board())
        self._ready = (self.version, data, gzip.compress(data, compresslevel=5))
        return self._ready

    async def _prepare(self) -> None:
        """After each change, the board to serve: encoded here, compressed on a thread
        (zlib lets go of the GIL), so that no page request waits for either."""
        while True:
            await self._ready_wake.wait()
            self._ready_wake.clear()
            v = self.version
            if self._ready is not None and self._ready[0] == v:
                continue
            data = _enc.encode(self.sorted_board())
            gz = await asyncio.to_thread(gzip.compress, data, 5)
            if self._ready is None or self._ready[0] < v:
                self._ready = (v, data, gz)

    def board_event(self) -> bytes:
        """The whole board at the current version, as the first message of a stream."""
        if self._board_event is None or self._board_event[0] != self.version:
            data = self._ready[1] if self._ready and self._ready[0] == self.version else \
                _enc.encode(self.sorted_board())
            self._board_event = (self.version, b"id: " + self.tag().encode() + b"\nevent: board\ndata: " + data + b"\n\n")
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

    def subscribe(self, page: LivePage) -> None:
        """From now on `page` gets every change (take `resume` in the same step: nothing
        missed, nothing twice)."""
        self.clients.add(page)

    def unsubscribe(self, page: LivePage) -> None:
        self.clients.discard(page)

    def _drop(self, page: LivePage) -> None:
        """End a page's stream (too slow, or the hub stops)."""
        self.clients.discard(page)
        page.end()

    # ------------------------------------------------------------ updating
    async def _load(self, sites: set[str] | None) -> dict | None:
        # one connection kept for these reads (twice a second: a new one each time would
        # cost PostgreSQL a backend start each time); opened again after an error
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            # the live states are JSON: msgspec reads them ~5 times faster than json.loads
            set_json_loads(msgspec.json.decode, self._conn)
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
        entries = [public_entry(site, center, name, live, float(seen) if seen is not None else None)
                   for site, center, name, live, seen in rows]
        msg = self.apply(entries, int(time.time() * 1000))
        if msg is not None:
            self._publish(msg, len(msg.get("w", ())) + len(msg.get("n", ())))
        return msg

    def apply(self, entries: list[dict], base_ms: int) -> dict | None:
        """Put these entries on the board; returns the message that brings a client from
        the board before to the board after (module doc), None when nothing changed."""
        whole, rows = [], []
        for e in entries:
            e["i"] = self.numbers.setdefault(e["site"], len(self.numbers))
            old = self.board.get(e["site"])
            if old != e:
                self.board[e["site"]] = e
                row = _change(old, e, base_ms)
                if row is None:
                    whole.append(e)
                else:
                    rows.append(row)
        if not (whole or rows):
            return None
        msg: dict = {"t": base_ms}
        if whole:
            msg["w"] = whole
        if rows:
            msg["n"] = rows
        return msg

    def _publish(self, change: dict, count: int) -> None:
        self.version += 1
        self.changes += count
        # encoded once, the same bytes for every client
        msg = b"id: " + self.tag().encode() + b"\ndata: " + _enc.encode(change) + b"\n\n"
        self.ring.append((self.version, msg))
        self._send_all(msg)
        self._ready_wake.set()

    def _send_all(self, msg: bytes) -> None:
        # who gets it is fixed now: a client subscribing later has it from resume()
        self._outbox.append((msg, list(self.clients)))
        self._out_wake.set()

    async def _fan_out(self) -> None:
        """One task hands the messages out, in order, FAN_OUT_CHUNK pages per turn of the
        event loop (each page writes it at once, livepage.py)."""
        while True:
            await self._out_wake.wait()
            self._out_wake.clear()
            while self._outbox:
                msg, pages = self._outbox.popleft()
                for i in range(0, len(pages), FAN_OUT_CHUNK):
                    for page in pages[i:i + FAN_OUT_CHUNK]:
                        # gone, or dropped meanwhile; or too slow: dropped, its browser resumes
                        if page in self.clients and not page.offer(msg):
                            self._drop(page)
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
