"""`qms web`: the citizen's ticket page, the public board, the booking API and staff alerts.

A process of its own beside the central service, on the same machine:
- it READS the queue from the service's event log (web_replica.Replica, read-only SQLite),
  so pages need neither the broker nor the kiosks, and page load cannot slow the service;
- it WRITES only through MQTT like any device (role "web"): a booked ticket is a
  TicketRequest with source "booking", numbered by the service like a walk-in one;
- it keeps its own bookings in <state_dir>/web.sqlite and publishes retained alerts.
See docs/web.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from qms.citylink.answers import markedly_shorter
from qms.citylink.client import CityLink
from qms.config.site import SiteConfig
from qms.config.web import ApiToken, ticket_url
from qms.mqtt.device import Device
from qms.ops.sdnotify import Heartbeat, stop_on_sigterm
from qms.web.alerts import AlertWatcher
from qms.web.bookings import BookingRequest, BookingStore, CheckIn, booking_view, code_from_request
from qms.web.errors import WebError, not_found, unavailable
from qms.web.handler import WebServer
from qms.web.pages import (
    alerts_fragment,
    board_fragment,
    booking_fragment,
    error_page,
    not_found_fragment,
    page,
    ticket_fragment,
)
from qms.web.ratelimit import RateLimiter
from qms.web.replica import Replica

log = logging.getLogger("qms.web")
CHECKIN_TIMEOUT_S = 5.0
# Views use "now" rounded to this: the wait estimator memoizes its look-ahead run per
# (queue state, now), so 200 live pages woken by one call share one run instead of 200.
VIEW_QUANTUM_MS = 5000


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tokens:
    """API tokens, known only by their SHA-256. Looking up a hash leaks nothing useful by
    timing: learning a hash's prefix does not help to find a token that hashes to it."""

    def __init__(self, tokens: list[ApiToken]):
        self.by_hash = {t.sha256: t for t in tokens}

    def check(self, token: str) -> ApiToken | None:
        if not token or len(token) > 256:
            return None
        return self.by_hash.get(hashlib.sha256(token.encode()).hexdigest())


def new_token() -> tuple[str, str]:
    tok = secrets.token_urlsafe(32)
    return tok, hashlib.sha256(tok.encode()).hexdigest()


def _public(view: dict) -> dict:
    """Ticket ids are the key to a tracking page: never show them on the public board."""
    return {k: v for k, v in view.items() if k != "ticket_id"}


class WebApp:
    def __init__(self, cfg: SiteConfig, db_path: str | Path | None = None,
                 clock: Callable[[], int] = _now_ms, bookings_path: str | Path | None = None,
                 bind: str | None = None, port: int | None = None, mqtt: bool = True):
        self.cfg, self.clock = cfg, clock
        web = cfg.web
        self.replica = Replica(cfg, db_path or cfg.state_dir() / "service.sqlite", clock,
                               web.follow_interval_ms / 1000)
        self.bookings = BookingStore(bookings_path or cfg.state_dir() / "web.sqlite", cfg, clock)
        self.tokens = Tokens(web.tokens)
        self.page_limit = RateLimiter(web.pages_per_minute)
        self.api_ip_limit = RateLimiter(web.api_per_minute)
        self.api_limit = RateLimiter(web.api_per_minute)
        self.auth_failures = RateLimiter(10)
        self.checkin_failures = RateLimiter(web.checkin_failures_per_minute)
        self.alerts = AlertWatcher(cfg, self.replica, self._publish_retained)
        # what the city knows (other points' waits): asked in the background, never awaited
        self.city = CityLink(cfg, on_change=self.replica.touch)
        self.device: Device | None = None
        if mqtt:
            self.device = Device(cfg, web.device_id, "web",
                                 outbox_path=cfg.state_dir() / f"{web.device_id}.outbox.sqlite",
                                 subscriptions=self.alerts.subscriptions,
                                 on_message=lambda t, p, props: self.alerts.on_retained(t, p),
                                 on_connect=self.alerts.resend)
        self.server = WebServer(self, (bind or web.bind, web.port if port is None else port))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.heartbeat = Heartbeat()
        self.http_probe_failures = 0

    # ------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebApp:
        self.replica.start()
        if self.device:
            self.device.start()
        for name, target in (("web-http", self.server.serve_forever), ("web-alerts", self._watch)):
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)
        self.heartbeat.ready(f"web on port {self.port}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self.replica.stop()             # wakes the live streams, which then end
        self.server.shutdown()
        self.server.server_close()
        if self.device:
            self.device.stop()
        for th in self._threads:
            th.join(5)
        self.bookings.close()

    def _watch(self) -> None:
        every = self.cfg.web.alert_check_seconds
        due = time.monotonic() + every
        while not self._stop.wait(min(1.0, every)):
            if self.heartbeat.due() and self._http_answers():
                self.heartbeat.beat()
            if time.monotonic() < due:
                continue
            due = time.monotonic() + every
            try:
                self.alerts.check(self.clock())
                self.bookings.expire_due()
            except Exception:   # noqa: BLE001 - alerts must not stop on one bad round
                log.exception("alert check failed")

    def _http_answers(self) -> bool:
        """The watchdog beats only while the HTTP server answers a request of ours: a wedged
        server (its threads stuck) is then restarted by systemd. Any HTTP answer counts
        (a 429 of the rate limiter too); no answer within a few seconds does not."""
        import http.client
        host = self.server.server_address[0]
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        conn = http.client.HTTPConnection(host, self.port, timeout=min(5.0, max(self.heartbeat.interval, 0.5)))
        try:
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status < 500
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            conn.close()
        if not ok:
            self.http_probe_failures += 1
            log.warning("the HTTP server did not answer its own /healthz: no watchdog heartbeat")
        return ok

    def _publish_retained(self, topic: str, payload: bytes) -> None:
        if self.device:
            self.device.link.publish(topic, payload, qos=1, retain=True)

    # ------------------------------------------------------------ reading the queue
    def check_site(self, site: str) -> None:
        if site != self.cfg.site.id:
            raise not_found("điểm phục vụ", "Site")

    def _view_now(self) -> int:
        return self.clock() // VIEW_QUANTUM_MS * VIEW_QUANTUM_MS

    def _ticket_view(self, tid: str) -> dict | None:
        r = self.replica
        with r.lock:
            t = r.core.tickets.get(tid)
            if t is None:
                return None
            now = self._view_now()
            return {**r.core.ticket_view(t, now), "now": now, "no_show_at": t.no_show_at}

    def ticket_fragment(self, tid: str) -> tuple[str, bool, dict | None]:
        view = self._ticket_view(tid)
        if view is not None:
            html, final = ticket_fragment(self.cfg, view, self._elsewhere(view))
            return html, final, view
        b = self.bookings.by_ticket(tid)
        if b is not None:
            html, final = booking_fragment(self.cfg, booking_view(b, self.cfg))
            return html, final, None
        return not_found_fragment(), False, None

    def _elsewhere(self, view: dict) -> dict | None:
        """Another point with a markedly shorter wait for this waiting ticket, if the city
        knows one (cached: the page never waits for the city)."""
        if view["state"] != "waiting" or not self.city.enabled:
            return None
        s = self.city.suggestion(view["service"])
        if s is None or not markedly_shorter(s.est_wait_s, view.get("est_wait_s")):
            return None
        return {"name": s.name, "center": s.center, "address": s.address, "est_wait_s": s.est_wait_s,
                "waiting": s.waiting}

    def ticket_page(self, tid: str, lang: str) -> tuple[int, bytes]:
        html, final, view = self.ticket_fragment(tid)
        title = f"Số {view['number']} – {self.cfg.site.name}" if view else self.cfg.site.name
        found = view is not None or 'data-state="missing"' not in html
        return (200 if found else 404), page(self.cfg, title, html, lang, None if final else f"/t/{tid}/events", "ticket")

    def ticket_json(self, tid: str) -> dict:
        view = self._ticket_view(tid)
        if view is None:
            raise not_found("số", "Ticket")
        s = self.cfg.service(view["service"])
        return {"ok": True, "ticket": {**view, "service_name_vi": s.name_vi, "service_name_en": s.name_en}}

    def board_json(self) -> dict:
        r, now = self.replica, self._view_now()
        with r.lock:
            core = r.core
            board = {
                "site": self.cfg.site.id, "day": core.day,
                "calls": [_public(c) for c in core.calls],
                "counters": [{**v, "serving": _public(v["serving"]) if v["serving"] else None}
                             for v in (core.counter_view(n) for n in core.counters)],
                "services": [core.service_view(s, now) for s in core.lines],
                "summary": core.summary_view(now),
            }
            notice = r.notice
        board["notice"] = json.loads(notice) if notice else None
        return board

    def board_fragment(self) -> str:
        points = self.city.center_points() if self.cfg.city.board_points else None
        return board_fragment(self.cfg, self.board_json(), points)

    def board_page(self, lang: str) -> bytes:
        return page(self.cfg, f"{self.cfg.site.name} – bảng số", self.board_fragment(), lang,
                    f"/board/{self.cfg.site.id}/events", "board")

    def alerts_fragment(self) -> str:
        return alerts_fragment(self.cfg, self.alerts.active())

    def alerts_page(self, lang: str) -> bytes:
        """The staff alerts page: live like the board (it is re-rendered at least every
        keep-alive, STREAM_KEEPALIVE_S, and on every change of the queue)."""
        return page(self.cfg, f"{self.cfg.site.name} – cảnh báo", self.alerts_fragment(), lang,
                    f"/alerts/{self.cfg.site.id}/events", "alerts")

    def render_error(self, err: WebError, lang: str) -> bytes:
        return error_page(self.cfg, err.status, err.vi, err.en, lang)

    def health(self) -> dict:
        r = self.replica
        return {"ok": True, "site": self.cfg.site.id, "day": r.core.day, "last_seq": r.last_seq,
                "mqtt": bool(self.device and self.device.online), "city": self.city.state()}

    # ------------------------------------------------------------ bookings
    def _issued_today(self, service: str) -> int:
        with self.replica.lock:
            return self.replica.core.issued.get(service, 0)

    def book(self, client: str, req: BookingRequest) -> dict:
        b = self.bookings.create(client, req, self._issued_today)
        log.info("booking %s… for %s on %s by %s", b.code[:2], b.service, b.day, client)
        return booking_view(b, self.cfg)

    def booking(self, client: str, code: str) -> dict:
        b = self.bookings.get(code_from_request(code))
        if b is None or b.client != client:
            raise not_found("mã đặt lịch", "Booking")
        return booking_view(b, self.cfg)

    def cancel(self, client: str, code: str) -> dict:
        return booking_view(self.bookings.cancel(code_from_request(code), client), self.cfg)

    def checkin(self, kiosk: str, req: CheckIn) -> dict:
        """A kiosk turns a booking code into a ticket (see docs/web.md, "Check-in")."""
        code = code_from_request(req.code)
        b = self.bookings.checkable(code)
        if self.device is None or not self.device.online:
            raise unavailable("Chưa kết nối được hệ thống cấp số. Xin thử lại sau ít phút.",
                              "The ticketing service is not reachable. Please try again in a few minutes.")
        _, ack = self.device.request("ticket.request", CHECKIN_TIMEOUT_S, service=b.service,
                                     priority=b.priority, ticket_id=b.ticket_id, source="booking")
        if ack is None:
            raise unavailable("Hệ thống cấp số chưa trả lời. Xin thử lại.",
                              "The ticketing service did not answer. Please try again.")
        if not ack.ok:
            raise WebError(409, ack.error or "refused", ack.message_vi or "", ack.message_en or "")
        ticket = ack.result["ticket"]
        if b.state != "checked_in":
            self.bookings.mark_checked_in(code, ticket["number"], self.clock())
            log.info("booking checked in at %s as %d", req.device or kiosk, ticket["number"])
        s = self.cfg.service(ticket["service"])
        url = ticket_url(self.cfg.site.public_url, ticket["ticket_id"]) if self.cfg.site.public_url else None
        return {"ok": True, "ticket": {**ticket, "service_name_vi": s.name_vi, "service_name_en": s.name_en,
                                       "tracking_url": url},
                "booking": booking_view(self.bookings.get(code), self.cfg)}


# ------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="site config (TOML)")
    p.add_argument("--db", help="the service's event log (default: <state_dir>/service.sqlite)")
    p.add_argument("--bookings", help="booking store (default: <state_dir>/web.sqlite)")
    p.add_argument("--bind", help="address to listen on (default: web.bind)")
    p.add_argument("--port", type=int, help="port (default: web.port)")
    p.add_argument("--new-token", metavar="NAME",
                   help="print a new API token for NAME and the config lines to add, then exit")
    p.add_argument("--scope", choices=["booking", "checkin"], default="booking",
                   help="with --new-token: booking (integrators) or checkin (kiosks)")


def run(args) -> int:
    if args.new_token:
        import re
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", args.new_token):
            print("NAME must be lowercase letters, digits and dashes (e.g. dvc-hanoi)")
            return 2
        tok, digest = new_token()
        print(f"Token for {args.new_token} (shown once; give it to them over a safe channel):\n\n  {tok}\n")
        print("Add to the site config:\n")
        print(f'[[web.tokens]]\nid = "{args.new_token}"\nscope = "{args.scope}"\nsha256 = "{digest}"')
        return 0
    from qms.config.site import load_config
    if not args.config:
        print("qms web: --config is required")
        return 2
    cfg = load_config(args.config)
    if not cfg.web.enabled:
        log.warning("web.enabled is false in %s; running anyway because it was asked for", args.config)
    try:
        app = WebApp(cfg, args.db, bookings_path=args.bookings, bind=args.bind, port=args.port).start()
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", args.bind or cfg.web.bind, args.port or cfg.web.port, e.strerror)
        return 2
    log.info("web for %s on %s", cfg.site.id, app.url)
    stop_on_sigterm(app._stop.set)    # systemd stop: shut down cleanly
    try:
        while not app._stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
    return 0
