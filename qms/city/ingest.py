"""The center's side of the uplink: authenticate a point, store its events exactly once.

A batch is stored by one statement, the database function city_store() (qms/city/db.py):
one round trip, one transaction that also moves the site's `stored_seq`, with the site's
row locked (FOR UPDATE): two requests of one site (a retry racing its original) are
applied one after the other. Only events above `stored_seq` are inserted, and
`ON CONFLICT DO NOTHING` keeps the (site, seq) key idempotent even so; the reply is sent
after the commit, so an acknowledged event is durable. A reply lost on the way costs a
re-send that changes nothing.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time

import msgspec
from psycopg_pool import AsyncConnectionPool

from qms.city.db import same_center, token_hash
from qms.config.site import ConfigError, parse_config
from qms.uplink.wire import Batch

log = logging.getLogger("qms.city.ingest")

MAX_BATCH = 5000
TOKEN_CACHE_S = 30.0        # a rotated or removed token stops working within this time

_STORE = ("SELECT stored, gap, added FROM city_store(%s, %s::bigint[], %s::date[], %s::bigint[], %s::text[], "
          "%s::bytea[], %s::jsonb)")


class Refused(Exception):
    """The request is refused: HTTP status, a code and a message for the point's log."""

    def __init__(self, status: int, code: str, message: str, stored: int | None = None,
                 message_vi: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.stored = status, code, message, stored
        self.message_vi = message_vi        # for a refusal a person at the point must act on


class Ingest:
    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool
        self._tokens: dict[bytes, tuple[str, float]] = {}     # token hash -> (site, expires)
        self.stats = {"batches": 0, "events": 0, "gaps": 0, "refused": 0}

    async def authenticate(self, authorization: str | None, site: str) -> None:
        """The token must be this site's: another site's token, or none, is refused."""
        if not authorization or not authorization.startswith("Bearer "):
            self.stats["refused"] += 1
            raise Refused(401, "no_credentials", "an uplink needs its site's token (Authorization: Bearer ...)")
        h = token_hash(authorization[7:].strip())
        now = time.monotonic()
        hit = self._tokens.get(h)
        if hit is None or hit[1] < now:
            async with self.pool.connection() as conn:
                row = await (await conn.execute("SELECT site FROM city_sites WHERE token_sha256 = %s", (h,))).fetchone()
            if row is None:
                self._tokens.pop(h, None)
                self.stats["refused"] += 1
                log.warning("refused an uplink for %r: unknown token", site)
                raise Refused(401, "unknown_credentials", "unknown token")
            hit = self._tokens[h] = (row[0], now + TOKEN_CACHE_S)
        if hit[0] != site:
            self.stats["refused"] += 1
            log.warning("refused an uplink for %r made with the token of %r", site, hit[0])
            raise Refused(403, "wrong_site", f"this token is not the token of site {site!r}")

    async def position(self, site: str) -> dict:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT s.stored_seq, e.data FROM city_sites s LEFT JOIN city_events e "
                "ON e.site = s.site AND e.seq = s.stored_seq WHERE s.site = %s", (site,))).fetchone()
        return {"stored": row[0], "last_sha256": hashlib.sha256(row[1]).hexdigest() if row[1] is not None else None}

    async def put_config(self, site: str, text: str) -> int:
        try:
            cfg = parse_config(text, f"config of {site}")
        except ConfigError as e:
            raise Refused(400, "bad_config", str(e)) from None
        if cfg.site.id != site:
            raise Refused(400, "bad_config", f"the config is the config of site {cfg.site.id!r}, not {site!r}")
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT center FROM city_sites WHERE site = %s", (site,))).fetchone()
            if row is None:                     # removed since its token was checked
                raise Refused(401, "unknown_credentials", "unknown site")
            registered = row[0]
            if same_center(cfg.site.center, registered):
                row = await (await conn.execute(
                    "UPDATE city_sites SET config = %s, name = %s, last_seen = now(), refused = NULL "
                    "WHERE site = %s RETURNING stored_seq", (text, cfg.site.name, site))).fetchone()
                return row[0]
            # the point's reports and board would go under another center than its own
            # config says: refuse until a person makes them agree. Nothing is lost: the point
            # keeps its log and sends it once its config is accepted.
            e = center_mismatch(site, cfg.site.center, registered)
            await conn.execute("UPDATE city_sites SET refused = %s WHERE site = %s", (e.message, site))
        self.stats["refused"] += 1
        log.warning("site %s: %s", site, e.message)
        raise e

    async def store(self, site: str, batch: Batch) -> int:
        """Store a batch; returns the new `stored_seq` (raises Refused on a gap).

        One statement, city_store() (qms/city/db.py): lock, gap check, insert, position,
        live state and NOTIFY in one round trip and one transaction."""
        events = batch.events
        if len(events) > MAX_BATCH:
            raise Refused(413, "batch_too_large", f"at most {MAX_BATCH} events per batch")
        _check_batch(events)
        live = msgspec.json.encode(batch.live).decode() if batch.live is not None else None
        async with self.pool.connection() as conn:
            stored, gap, added = await (await conn.execute(_STORE, (
                site, [e[0] for e in events], [e[1] for e in events], [e[2] for e in events],
                [e[3] for e in events], [bytes(e[4]) for e in events], live))).fetchone()
        if gap:
            self.stats["gaps"] += 1
            log.warning("site %s: batch starts at %d but %d..%d are missing; asked again",
                        site, events[0][0], stored + 1, events[0][0] - 1)
            raise Refused(409, "gap", f"events {stored + 1}..{events[0][0] - 1} are missing; send from {stored + 1}",
                          stored)
        self.stats["batches"] += 1
        self.stats["events"] += added
        return stored


def _check_batch(events: list) -> None:
    for i, (seq, day, _at, kind, _data) in enumerate(events):
        if seq < 1 or (i and seq != events[i - 1][0] + 1):
            raise Refused(400, "bad_batch", f"event #{i}: seq {seq} does not follow the one before; "
                                            "a batch is a run of consecutive seqs")
        if not kind:
            raise Refused(400, "bad_batch", f"event seq {seq}: no type")
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            raise Refused(400, "bad_batch", f"event seq {seq}: day {day!r} is not YYYY-MM-DD") from None


def center_mismatch(site: str, own: str, registered: str) -> Refused:
    return Refused(
        422, "center_mismatch",
        f"this point's config says [site] center = {own!r}, but the city registered site {site!r} "
        f"under {registered!r}: nothing is stored until they agree. Fix [site] center in the "
        f"point's site.toml (then restart qms-uplink), or the registration at the city "
        f"(qms city set-center --site {site} --center \"...\"). The point keeps its log and sends it then.",
        message_vi=f"Cấu hình của điểm ghi trung tâm “{own}”, nhưng thành phố đã đăng ký điểm {site} "
                   f"thuộc trung tâm “{registered}”: chưa nhận dữ liệu cho đến khi hai tên trùng khớp. "
                   "Sửa [site] center trong site.toml của điểm (rồi khởi động lại qms-uplink), hoặc "
                   "sửa đăng ký tại thành phố (qms city set-center). Điểm vẫn giữ nguyên nhật ký "
                   "và sẽ gửi lại sau khi sửa.")
