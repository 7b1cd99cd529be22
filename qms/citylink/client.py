"""`CityLink`: the city's public read-only API (/api/v1/suggest, /api/v1/city), cached and
read on a background thread; for the point's pages (qms/web) and its hall display
(qms/display). See docs/city.md.

A caller never waits for the city: a look-up returns what is cached (or nothing) and, once
that is older than [city] cache_seconds, asks again on a background thread with a short
timeout. The city unreachable, slow or answering something unreadable = nothing, as without
a city, one warning in the log per outage. Nothing about the citizen is sent: the site's id
and the procedure, no ticket, no location. Standard library only (urllib): nothing to install.
"""
from __future__ import annotations

import gzip
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import msgspec

from qms.citylink.answers import CityPoint, Suggestion, board_decoder, suggest_decoder
from qms.config.site import SiteConfig

log = logging.getLogger("qms.citylink")

MAX_BODY = 8 * 1024 * 1024


class CityLink:
    def __init__(self, cfg: SiteConfig, on_change: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic, agent: str = "qms-web"):
        """`on_change` is called on the reader's thread when an answer changes; `agent`
        names the asking program to the city (its User-Agent)."""
        self.cfg = cfg
        self.base = cfg.city.public_url.rstrip("/")
        self.ttl = cfg.city.cache_seconds
        self.timeout = cfg.city.timeout_seconds
        self.on_change = on_change
        self.clock = clock
        self.agent = agent
        self._cache: dict[str, tuple[float, Any]] = {}     # key -> (fetched at, value)
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self.reachable: bool | None = None                 # None: not asked yet
        self.fetches = 0

    @property
    def enabled(self) -> bool:
        return bool(self.base)

    # ------------------------------------------------------------ what pages ask
    def suggestion(self, service: str) -> Suggestion | None:
        """The city's suggestion for a new ticket of `service` here, as last fetched."""
        query = urlencode({"site": self.cfg.site.id, "service": service})
        return self._get(f"suggest:{service}", f"/api/v1/suggest?{query}", self._parse_suggestion)

    def center_points(self) -> list[CityPoint] | None:
        """The other points of this center (site.center), as last fetched."""
        return self._get("center", "/api/v1/city", self._parse_points)

    def state(self) -> str:
        return "off" if not self.enabled else {None: "unknown", True: "ok", False: "unreachable"}[self.reachable]

    # ------------------------------------------------------------ cache
    def _get(self, key: str, path: str, parse: Callable[[bytes], Any]) -> Any:
        if not self.enabled:
            return None
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if (hit is None or now - hit[0] >= self.ttl) and key not in self._busy:
                self._busy.add(key)
                threading.Thread(target=self._refresh, args=(key, path, parse), name=f"{self.agent}-city",
                                 daemon=True).start()
        if hit is None or self._too_old(hit, now):
            return None          # too old to show (no page asked for a while)
        return hit[1]

    def _too_old(self, hit: tuple[float, Any], now: float) -> bool:
        return now - hit[0] >= 2 * self.ttl + self.timeout

    def _refresh(self, key: str, path: str, parse: Callable[[bytes], Any]) -> None:
        try:
            value = parse(self._fetch(path))
            ok = True
        except urllib.error.HTTPError as e:     # it answers, but not this (a point it does not know yet)
            log.debug("the city answered %s to %s", e.code, path)
            value, ok = None, True
        except (OSError, urllib.error.URLError, ValueError, msgspec.DecodeError, msgspec.ValidationError) as e:
            value, ok = None, False
            if self.reachable is not False:
                log.warning("the city at %s cannot be read (%s): the pages and the hall display show nothing from it", self.base, e)
        except Exception:   # noqa: BLE001 - whatever happens, pages and display go on without the city
            log.exception("reading the city at %s failed", self.base)
            value, ok = None, False
        if ok and self.reachable is False:
            log.info("the city at %s answers again", self.base)
        self.reachable = ok
        with self._lock:
            now = self.clock()
            old = self._cache.get(key)
            self._cache[key] = (now, value)
            self._busy.discard(key)
        # wake the live pages when what they show changes; also when the same answer comes
        # back after pages were shown nothing because the previous one was too old
        if old is None or old[1] != value or (value is not None and self._too_old(old, now)):
            self.on_change()

    def _fetch(self, path: str) -> bytes:
        self.fetches += 1
        req = urllib.request.Request(self.base + path, headers={
            "Accept": "application/json", "Accept-Encoding": "gzip", "User-Agent": self.agent})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:      # noqa: S310 - the configured city
            body = r.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise ValueError(f"answer over {MAX_BODY} bytes")
            if r.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
        return body

    # ------------------------------------------------------------ answers
    @staticmethod
    def _parse_suggestion(body: bytes) -> Suggestion | None:
        return suggest_decoder.decode(body).suggestion

    def _parse_points(self, body: bytes) -> list[CityPoint]:
        me, center = self.cfg.site.id, self.cfg.site.center
        return [p for p in board_decoder.decode(body) if p.center == center and p.site != me]
