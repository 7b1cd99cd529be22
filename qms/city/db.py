"""The central tier's PostgreSQL schema, and the administration of sites.

One table holds every site's events, keyed by (site, seq): the point's own sequence, so the
center's copy is ordered as the point wrote it whatever the sites' clocks say. `stored_seq`
per site is the acknowledgement the uplinks resume from: every seq 1..stored_seq is present.
"""
from __future__ import annotations

import hashlib
import secrets
import unicodedata

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
-- why the site's uplink is refused now (its config names another center), or NULL
ALTER TABLE city_sites ADD COLUMN IF NOT EXISTS refused text;

-- One batch of one site, in one statement (one round trip, one transaction): lock the
-- site's row (a retry racing its original waits here), refuse a gap, insert the events
-- above stored_seq, move stored_seq, keep the live state, NOTIFY the city view. Returns
-- the new stored_seq, and `gap` = true (nothing written) when the batch starts past
-- stored_seq + 1. The arrays are one event each, in seq order, consecutive (checked by
-- the ingest before). NULL live: unchanged.
CREATE OR REPLACE FUNCTION city_store(p_site text, p_seq bigint[], p_day date[], p_at bigint[],
                                      p_type text[], p_data bytea[], p_live jsonb,
                                      OUT stored bigint, OUT gap boolean, OUT added integer)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT stored_seq INTO stored FROM city_sites WHERE site = p_site FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no site %', p_site USING ERRCODE = 'no_data_found';
    END IF;
    added := 0;
    gap := cardinality(p_seq) > 0 AND p_seq[1] > stored + 1;
    IF gap THEN
        RETURN;
    END IF;
    IF cardinality(p_seq) > 0 AND p_seq[cardinality(p_seq)] > stored THEN
        INSERT INTO city_events (site, seq, day, at, type, data)
        SELECT p_site, s, d, a, t, x
        FROM unnest(p_seq, p_day, p_at, p_type, p_data) AS u(s, d, a, t, x)
        WHERE s > stored
        ON CONFLICT (site, seq) DO NOTHING;
        GET DIAGNOSTICS added = ROW_COUNT;
        stored := p_seq[cardinality(p_seq)];
    END IF;
    UPDATE city_sites SET stored_seq = stored, last_seen = now(), live = coalesce(p_live, live)
    WHERE site = p_site;
    IF added > 0 OR p_live IS NOT NULL THEN
        PERFORM pg_notify('city_live', p_site);
    END IF;
END
$$;
"""

NOTIFY_CHANNEL = "city_live"


class SiteError(ValueError):
    """A site cannot be added or changed; the message says why."""


def token_hash(token: str) -> bytes:
    # tokens are 32 random bytes: a plain hash is enough (no dictionary to guess from)
    return hashlib.sha256(token.encode()).digest()


def init_schema(dsn: str) -> None:
    # several processes may start at once (ingest and public view): one at a time, or two
    # CREATE OR REPLACE FUNCTION collide ("tuple concurrently updated")
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('qms.city.schema'))")
        conn.execute(SCHEMA)
        from qms.city.daily import apply_schema  # per-day report aggregates (docs/city.md)
        apply_schema(conn)


def _center(center: str) -> str:
    """A center's name as kept: NFC, as the points' configs are read (qms/config/site.py)."""
    center = unicodedata.normalize("NFC", center.strip())
    if not center:
        raise SiteError("the center's name is empty")
    return center


def add_site(dsn: str, site: str, center: str, token: str | None = None) -> str:
    """Register a point; returns its uplink token (shown once: only its hash is kept)."""
    if not site or len(site) > 64 or not all(c.isalnum() or c in "-_." for c in site):
        raise SiteError(f"site id {site!r}: use letters, digits, - _ . (at most 64)")
    center = _center(center)
    token = token or secrets.token_urlsafe(32)
    with psycopg.connect(dsn) as conn:
        try:
            conn.execute("INSERT INTO city_sites (site, center, token_sha256) VALUES (%s, %s, %s)",
                         (site, center, token_hash(token)))
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


def same_center(a: str, b: str) -> bool:
    """The point's [site] center and the one it was registered under name the same center
    (Vietnamese typed on another machine may come decomposed: compared as NFC)."""
    return unicodedata.normalize("NFC", a.strip()) == unicodedata.normalize("NFC", b.strip())


def set_center(dsn: str, site: str, center: str) -> None:
    """Register a point under another center (its uplink, refused because its config names
    that center, is accepted at its next try)."""
    center = _center(center)
    with psycopg.connect(dsn) as conn:
        n = conn.execute("UPDATE city_sites SET center = %s, refused = NULL WHERE site = %s",
                         (center, site)).rowcount
        if n != 1:
            raise SiteError(f"no site {site!r}")
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, site))     # the city view moves it


def sites(dsn: str) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute("SELECT site, center, name, stored_seq, last_seen, refused FROM city_sites "
                           "ORDER BY center, site")
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
