"""The central tier's PostgreSQL schema, and the administration of sites.

One table holds every site's events, keyed by (site, seq): the point's own sequence, so the
center's copy is ordered as the point wrote it whatever the sites' clocks say. `stored_seq`
per site is the acknowledgement the uplinks resume from: every seq 1..stored_seq is present.
"""
from __future__ import annotations

import hashlib
import secrets

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS city_sites (
    site        text PRIMARY KEY,
    center      text NOT NULL,            -- the ward center this point belongs to
    token_sha256 bytea NOT NULL UNIQUE,   -- the site's uplink secret (hashed)
    config      text,                     -- the site's TOML, as its uplink last sent it
    name        text,
    stored_seq  bigint NOT NULL DEFAULT 0,
    last_seen   timestamptz,
    live        jsonb,                    -- current waits per service (qms.uplink.live)
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS city_events (
    site        text NOT NULL REFERENCES city_sites(site),
    seq         bigint NOT NULL,
    day         date NOT NULL,
    at          bigint NOT NULL,          -- the point's clock (Unix ms): shown, never used to order
    type        text NOT NULL,
    data        bytea NOT NULL,           -- the event's JSON, byte for byte as the point logged it
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, seq)
);
CREATE INDEX IF NOT EXISTS city_events_site_day ON city_events (site, day);
"""

NOTIFY_CHANNEL = "city_live"


class SiteError(ValueError):
    """A site cannot be added or changed; the message says why."""


def token_hash(token: str) -> bytes:
    # tokens are 32 random bytes: a plain hash is enough (no dictionary to guess from)
    return hashlib.sha256(token.encode()).digest()


def init_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        from qms.city.daily import apply_schema  # per-day report aggregates (docs/city.md)
        apply_schema(conn)


def add_site(dsn: str, site: str, center: str, token: str | None = None) -> str:
    """Register a point; returns its uplink token (shown once: only its hash is kept)."""
    if not site or len(site) > 64 or not all(c.isalnum() or c in "-_." for c in site):
        raise SiteError(f"site id {site!r}: use letters, digits, - _ . (at most 64)")
    if not center.strip():
        raise SiteError("the center's name is empty")
    token = token or secrets.token_urlsafe(32)
    with psycopg.connect(dsn) as conn:
        try:
            conn.execute("INSERT INTO city_sites (site, center, token_sha256) VALUES (%s, %s, %s)",
                         (site, center.strip(), token_hash(token)))
        except psycopg.errors.UniqueViolation:
            raise SiteError(f"site {site!r} is already registered (use rotate-token for a new secret)") from None
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, site))     # the city view lists it
    return token


def rotate_token(dsn: str, site: str) -> str:
    token = secrets.token_urlsafe(32)
    with psycopg.connect(dsn) as conn:
        n = conn.execute("UPDATE city_sites SET token_sha256 = %s WHERE site = %s",
                         (token_hash(token), site)).rowcount
    if n != 1:
        raise SiteError(f"no site {site!r}")
    return token


def sites(dsn: str) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute("SELECT site, center, name, stored_seq, last_seen FROM city_sites ORDER BY center, site")
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
