"""`qms uplink`: ship a point's event log to the center, in order, exactly once.

The point's own service keeps working with no link at all; this process only reads its
log. On (re)connect it asks the center "where are you?" (the last seq the center has
stored for this site, kept in PostgreSQL, not here), then sends batches of consecutive
events from the next seq on. Each reply carries the highest seq stored, after commit:
that is the acknowledgement, and the next batch starts after it. Nothing is kept in
memory that a restart would need, so kill -9 of either end loses nothing: the point
resends from the center's position and the center ignores what it already has.
No broker queue is involved (a Mosquitto bridge drops messages past its queue limit).

When it is not catching up, a point sends at most two requests a second (SEND_MIN_S),
carrying the events written meanwhile and its live state together: at 10x the peak hour
a point logs about one event a second, and one request per event plus one per live
update cost the center (and the point) twice the requests for the same news. An idle
log is looked at through SQLite's data_version (no query unless something was written).

HTTP is the standard library's http.client on one keep-alive connection: per request it
costs about a quarter of httpx's CPU (bench/README.md, "city"), which matters to a
center taking hundreds of requests a second; the protocol needs nothing more (no
redirects, no cookies, one host).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import logging
import random
import sqlite3
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import msgspec

from qms.config.site import SiteConfig
from qms.uplink.live import LiveState
from qms.uplink.source import LogMissing, LogReader
from qms.uplink.wire import NEEDS_A_PERSON, Batch, batch_encoder, refusal_decoder, stored_decoder

log = logging.getLogger("qms.uplink")

BATCH = 2000                 # events per request: a day's catch-up in a few dozen requests
POLL_S = 0.2                 # how often the log is checked for new events when idle
LIVE_EVERY_S = 30.0          # live state (and "still here") at least this often
SEND_MIN_S = 0.5             # at most one request this often, unless a full batch waits
LIVE_MIN_S = SEND_MIN_S      # live state at most this often: with the events of each request
BACKOFF_MAX_S = 30.0
REFUSED_BACKOFF_S = 60.0     # wrong credentials, a center mismatch: a person must act; do not hammer the center


def _now_ms() -> int:
    return int(time.time() * 1000)


class UplinkRefused(Exception):
    pass


class CenterError(Exception):
    """The center answered with an unexpected status (5xx...): try again later."""


class TooLarge(Exception):
    """413: the center, or a proxy before it (nginx's client_max_body_size is 1 MB by
    default), takes no request this large: send fewer events per request."""


class CenterHttp:
    """One keep-alive HTTP/1.1 connection to the center, opened again when it breaks."""

    def __init__(self, url: str, headers: dict[str, str], verify: bool | str = True, timeout: float = 30.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"the center's URL {url!r} is not http(s)://host[:port]")
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.headers = headers
        self.timeout = timeout
        self.context: ssl.SSLContext | None = None
        if self.https:
            self.context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = None) -> tuple[int, bytes]:
        headers = self.headers if content_type is None else {**self.headers, "Content-Type": content_type}
        while True:
            fresh = self.conn is None
            if fresh:
                self.conn = (http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                         context=self.context) if self.https
                             else http.client.HTTPConnection(self.host, self.port, timeout=self.timeout))
            try:
                self.conn.request(method, self.prefix + path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
            except (ConnectionResetError, BrokenPipeError, http.client.BadStatusLine):
                self.close()
                if fresh:
                    raise
                # the center closed the kept-alive connection while it was idle: once more on
                # a new one (every request of the protocol may be sent twice)
                continue
            except BaseException:
                self.close()
                raise
            if r.will_close:
                self.close()
            return r.status, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Uplink:
    def __init__(self, cfg: SiteConfig, db: str | Path, center_url: str, token: str,
                 config_text: str | None = None, batch: int = BATCH, live: bool | LiveState = True,
                 clock: Callable[[], int] = _now_ms, verify: bool | str = True, timeout: float = 30.0,
                 refused_wait: float = REFUSED_BACKOFF_S, token_file: str | Path | None = None):
        self.cfg = cfg
        self.site = cfg.site.id
        self.reader = LogReader(db)
        self.base = center_url.rstrip("/") + f"/v1/sites/{self.site}"
        self.path = f"/v1/sites/{self.site}"
        self.http = CenterHttp(center_url, {"Authorization": f"Bearer {token}", "User-Agent": "qms-uplink"},
                               verify=verify, timeout=timeout)
        self.config_text = config_text
        self.batch = batch
        # live state for the city view: computed from the log (or given: anything with
        # LiveState's start/feed/view), or none
        self.live = LiveState(cfg) if live is True else (live or None)
        self._live_dirty = False
        self._live_started = False
        self.clock = clock
        self.stored: int | None = None          # the center's position; None: ask again
        self._config_sent = False
        self._live_at = 0.0
        self._sent_at = -SEND_MIN_S             # monotonic time of the last request of events/live
        self._more = True                       # the last batch was full: more are waiting
        self._backoff = 0.5
        self.wait_until = 0.0                   # monotonic: no request before this
        self.refused_wait = refused_wait        # after a refusal a person must resolve
        # read again after a refusal: a token rotated at the city and installed here
        # (`qms install --role uplink --token-file`) is used without a restart
        self.token_file = Path(token_file) if token_file is not None else None
        self.stats = {"batches": 0, "events": 0, "errors": 0, "gaps": 0, "refused": 0}
        self.last_error = ""

    # ------------------------------------------------------------ one step
    def step(self) -> bool:
        """Do one exchange if one is due; True if events were sent (more may be waiting)."""
        if time.monotonic() < self.wait_until:
            return False
        if self.stored is not None and not self._more and time.monotonic() - self._sent_at < SEND_MIN_S:
            return False                         # what comes meanwhile goes in the next request
        try:
            if self.stored is None:
                self._connect()
                self._more = True
            quiet = not self._more and not self.reader.changed()
            if quiet and not self._live_pending():
                return False                     # nothing written, no live state due
            rows = [] if quiet else self.reader.after(self.stored, self.batch)
            if self.live is not None and not self._live_started:
                self._start_live()
            if self.live is not None:
                self.live.feed(rows)
            live = self._live_due(bool(rows))
            if not rows and live is None:
                return False
            gap = self._send(Batch(events=rows, live=live), rows)
            self._backoff = 0.5
            self._more = gap or len(rows) >= self.batch
            return self._more
        except TooLarge as e:
            if self.batch > 1:
                self.batch = max(1, self.batch // 2)
                log.warning("uplink of %s: %s; %d events per request from now on", self.site, e, self.batch)
            else:
                self._fail(str(e), self._backoff)
                self._backoff = min(BACKOFF_MAX_S, self._backoff * 2)
        except LogMissing as e:
            self._fail(str(e), 5.0)
        except UplinkRefused as e:
            self.stats["refused"] += 1
            self.stored = None                   # once resolved: the config first, then the position
            if self._new_token():
                return False                     # try the new one at once
            self._fail(str(e), self.refused_wait)
        except (CenterError, http.client.HTTPException, msgspec.DecodeError, msgspec.ValidationError, OSError,
                sqlite3.Error) as e:
            self.stored = None                   # reconnect: ask the center where it is
            self._fail(f"{type(e).__name__}: {e}", self._backoff)
            self._backoff = min(BACKOFF_MAX_S, self._backoff * 2)
        except Exception as e:   # noqa: BLE001 - a bug must not stop the uplink for good
            log.exception("uplink of %s: unexpected error", self.site)
            self.stored = None
            self._fail(f"{type(e).__name__}: {e}", BACKOFF_MAX_S)
        return False

    def _new_token(self) -> bool:
        """The token file holds another token than the one in use: take it."""
        try:
            token = self.token_file.read_text(encoding="utf-8").strip() if self.token_file else ""
        except OSError:
            return False
        auth = f"Bearer {token}"
        if not token or auth == self.http.headers["Authorization"]:
            return False
        self.http.headers = {**self.http.headers, "Authorization": auth}
        log.info("uplink of %s: a new token in %s", self.site, self.token_file)
        return True

    def _fail(self, why: str, wait: float) -> None:
        self.stats["errors"] += 1
        if why != self.last_error:
            log.warning("uplink of %s: %s; trying again in %.1f s", self.site, why, wait)
        self.last_error = why
        self.wait_until = time.monotonic() + wait * random.uniform(0.8, 1.2)

    def _check(self, r: tuple[int, bytes]) -> int:
        status, body = r
        if status in (401, 403):
            raise UplinkRefused(f"the center refused this site's credentials "
                                f"({status}: {body[:200].decode(errors='replace')})")
        if 400 <= status < 500 and status != 409:
            try:
                why = refusal_decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                why = None
            if why is not None and why.error in NEEDS_A_PERSON:
                if why.message_vi:
                    raise UplinkRefused(f"the center refused this point ({why.error}): "
                                        f"{why.message_en or why.message} | {why.message_vi}")
                raise UplinkRefused(f"the center refused this point ({why.error}): {why.message}")
        if status == 413:
            raise TooLarge("the center, or a proxy before it, refused a request as too large (413)")
        if status == 409:
            self.stats["gaps"] += 1
            return stored_decoder.decode(body).stored
        if status != 200:
            raise CenterError(f"{status}: {body[:300].decode(errors='replace')}")
        return stored_decoder.decode(body).stored

    def _connect(self) -> None:
        if self.config_text is not None and not self._config_sent:
            self._check(self.http.request("PUT", self.path + "/config", self.config_text.encode(),
                                          "text/plain; charset=utf-8"))
            self._config_sent = True
        r = self.http.request("GET", self.path + "/position")
        self._check(r)
        pos = stored_decoder.decode(r[1])
        mine = self.reader.data_of(pos.stored) if pos.stored else None
        if pos.stored and (mine is None or hashlib.sha256(mine).hexdigest() != pos.last_sha256):
            # this log is not the one the center has (an old backup restored, or a new log):
            # sending would mix two histories under one site id
            raise UplinkRefused(f"the center's event {pos.stored} is not this log's "
                                f"({'missing here' if mine is None else 'different'}): was the log replaced? "
                                "A person must decide (docs/city.md, 'A replaced log')")
        self.stored = pos.stored
        if self.last_error:
            log.info("uplink of %s: connected; the center has events up to %d", self.site, self.stored)
            self.last_error = ""

    def _start_live(self) -> None:
        # today's events as they are now; later ones are applied as the batches read them
        now, last = self.clock(), self.reader.last_seq()
        today = dt.datetime.fromtimestamp(now / 1000, self.cfg.tz).date()
        week = self.reader.days_events((today - dt.timedelta(days=7)).isoformat(),
                                       (today - dt.timedelta(days=1)).isoformat())
        self.live.start(now, self.reader.day_events(today.isoformat(), last), last, week)
        self._live_started = True

    def _live_pending(self) -> bool:
        """A live state is due with no new event: one that changed but could not go with
        its events (sent sooner than LIVE_MIN_S after the last one), or the periodic one."""
        if self.live is None:
            return False
        since = time.monotonic() - self._live_at
        return since >= LIVE_EVERY_S or (self._live_dirty and since >= LIVE_MIN_S)

    def _live_due(self, changed: bool) -> dict | None:
        """The live state, when it changed and LIVE_MIN_S passed since the last one went
        (a change made meanwhile goes with the next poll), or every LIVE_EVERY_S."""
        if self.live is None:
            return None
        self._live_dirty |= changed
        t = time.monotonic()
        since = t - self._live_at
        if since < LIVE_EVERY_S and not (self._live_dirty and since >= LIVE_MIN_S):
            return None
        self._live_at, self._live_dirty = t, False
        return self.live.view(self.clock())

    def _send(self, batch: Batch, rows: list) -> bool:
        """Send one batch; True if the center asked for an earlier start (a gap)."""
        r = self.http.request("POST", self.path + "/events", batch_encoder.encode(batch), "application/json")
        self._sent_at = time.monotonic()
        stored = self._check(r)
        if r[0] == 200:
            self.stats["batches"] += 1
            self.stats["events"] += sum(1 for e in rows if e[0] > self.stored)
        self.stored = stored
        return r[0] == 409

    # ------------------------------------------------------------ loop
    def next_wait(self) -> float:
        """Seconds until the next step is worth doing (after one that sent nothing)."""
        due = self.wait_until
        if self.stored is not None and not self._more:
            due = max(due, self._sent_at + SEND_MIN_S)
        return max(POLL_S, min(1.0, due - time.monotonic()))

    def run(self, stop: threading.Event) -> None:
        log.info("uplink of %s to %s", self.site, self.base)
        while not stop.is_set():
            if not self.step():
                stop.wait(self.next_wait())

    def close(self) -> None:
        self.http.close()
        self.reader.close()
