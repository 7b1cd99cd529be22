"""The HTTP front: routing, limits, validation, and the live streams.

Standard library only (ThreadingHTTPServer, HTTP/1.1 keep-alive): nothing to install on
a Pi, and a thread per connection is cheap at a service center's scale (a few hundred
phones). Every request is rate-limited per client address; bodies are size-capped and
decoded into strict structs; every error is JSON (API) or a bilingual page (pages).
"""
from __future__ import annotations

import json
import logging
import re
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, urlsplit

import msgspec

from qms.web import errors as E
from qms.web.bookings import BookingRequest, CheckIn
from qms.web.errors import WebError

if TYPE_CHECKING:
    from qms.config.site import SiteConfig
    from qms.config.web import ApiToken
    from qms.web.ratelimit import RateLimiter
    from qms.web.replica import Replica

log = logging.getLogger("qms.web.http")


class TokenCheck(Protocol):
    def check(self, token: str) -> ApiToken | None: ...


class WebApp(Protocol):
    """What the HTTP front asks of the application (`qms.web.server.WebApp` is the one):
    declared here so the front does not import the server that starts it."""
    cfg: SiteConfig
    replica: Replica
    tokens: TokenCheck
    page_limit: RateLimiter
    api_ip_limit: RateLimiter
    api_limit: RateLimiter
    auth_failures: RateLimiter
    checkin_failures: RateLimiter

    def check_site(self, site: str) -> None: ...
    def ticket_fragment(self, tid: str) -> tuple[str, bool, dict | None]: ...
    def ticket_page(self, tid: str, lang: str) -> tuple[int, bytes]: ...
    def ticket_json(self, tid: str) -> dict: ...
    def board_json(self) -> dict: ...
    def board_fragment(self) -> str: ...
    def board_page(self, lang: str) -> bytes: ...
    def alerts_fragment(self) -> str: ...
    def alerts_page(self, lang: str) -> bytes: ...
    def render_error(self, err: WebError, lang: str) -> bytes: ...
    def health(self) -> dict: ...
    def book(self, client: str, req: BookingRequest) -> dict: ...
    def booking(self, client: str, code: str) -> dict: ...
    def cancel(self, client: str, code: str) -> dict: ...
    def checkin(self, kiosk: str, req: CheckIn) -> dict: ...

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
MAX_BODY = 4096
STREAM_KEEPALIVE_S = 15.0
_TICKET_ID = r"[A-Za-z0-9_-]{8,64}"
_CODE = r"[A-Za-z0-9-]{1,40}"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

# (method, pattern) -> handler method name; the groups are passed as arguments
ROUTES: list[tuple[str, re.Pattern, str]] = [(m, re.compile(p + r"\Z"), h) for m, p, h in [
    ("GET", r"/", "get_index"),
    ("GET", rf"/t/({_TICKET_ID})", "get_ticket_page"),
    ("GET", rf"/t/({_TICKET_ID})/events", "get_ticket_events"),
    ("GET", rf"/t/({_TICKET_ID})/fragment", "get_ticket_fragment"),
    ("GET", r"/board/([a-z0-9-]{1,40})", "get_board_page"),
    ("GET", r"/board/([a-z0-9-]{1,40})/events", "get_board_events"),
    ("GET", r"/board/([a-z0-9-]{1,40})/fragment", "get_board_fragment"),
    ("GET", r"/alerts/([a-z0-9-]{1,40})", "get_alerts_page"),
    ("GET", r"/alerts/([a-z0-9-]{1,40})/events", "get_alerts_events"),
    ("GET", r"/alerts/([a-z0-9-]{1,40})/fragment", "get_alerts_fragment"),
    ("GET", r"/static/([a-z]{1,20}\.(?:css|js))", "get_static"),
    ("GET", r"/healthz", "get_health"),
    ("GET", rf"/api/v1/tickets/({_TICKET_ID})", "api_ticket"),
    ("GET", r"/api/v1/board", "api_board"),
    ("POST", r"/api/v1/bookings", "api_book"),
    ("GET", rf"/api/v1/bookings/({_CODE})", "api_booking"),
    ("DELETE", rf"/api/v1/bookings/({_CODE})", "api_cancel"),
    ("POST", r"/api/v1/checkin", "api_checkin"),
]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qms-web"
    sys_version = ""
    server: WebServer

    # ------------------------------------------------------------ plumbing
    @property
    def app(self) -> WebApp:
        return self.server.app

    def log_message(self, fmt, *args):      # access log at debug level only: no ids in logs
        log.debug("%s " + fmt, self.client_address[0], *args)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj, headers: dict | None = None) -> None:
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store", **(headers or {})})

    def send_html(self, status: int, body: bytes) -> None:
        self._send(status, body, "text/html; charset=utf-8",
                   {"Cache-Control": "no-store", "Content-Security-Policy": CSP})

    def send_error_obj(self, err: WebError, api: bool) -> None:
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else {}
        if err.status == 405:
            headers["Allow"] = "GET, POST, DELETE"
        if api:
            self.send_json(err.status, err.body(), headers)
        else:
            body = self.app.render_error(err, self.lang())
            self._send(err.status, body, "text/html; charset=utf-8",
                       {"Cache-Control": "no-store", "Content-Security-Policy": CSP, **headers})

    def lang(self) -> str:
        q = parse_qs(urlsplit(self.path).query).get("lang", [])
        if q and q[0] in ("vi", "en"):
            return q[0]
        morsel = SimpleCookie(self.headers.get("Cookie", "")).get("lang")
        return morsel.value if morsel and morsel.value in ("vi", "en") else "vi"

    def client(self) -> str:
        return self.client_address[0]

    def limit(self, limiter, key: str) -> None:
        wait = limiter.take(key)
        if wait:
            raise E.too_many(wait)

    def read_json(self, struct: type):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise WebError(411, "length_required", "Cần có Content-Length.", "Content-Length is required.")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise WebError(411, "length_required", "Cần có Content-Length.", "Content-Length is required.")
        n = int(length)
        if n > MAX_BODY:
            raise WebError(413, "too_large", "Nội dung quá lớn.", f"Body too large (max {MAX_BODY} bytes).")
        body = self.rfile.read(n)
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise WebError(415, "unsupported_media_type", "Nội dung phải là JSON.",
                           "Content-Type must be application/json.")
        try:
            return msgspec.json.decode(body, type=struct)
        except msgspec.ValidationError as e:
            raise E.bad_request(str(e)) from None
        except msgspec.DecodeError as e:
            raise E.bad_request(f"not valid JSON ({e})") from None

    def token(self, scope: str):
        auth = self.headers.get("Authorization", "")
        tok = self.app.tokens.check(auth[7:].strip() if auth[:7].lower() == "bearer " else "")
        if tok is None:
            self.limit(self.app.auth_failures, self.client())    # slow down token guessing
            raise E.unauthorized()
        if tok.scope != scope:
            raise E.forbidden(scope)
        self.limit(self.app.api_limit, "t:" + tok.id)
        return tok

    # ------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        api = path.startswith("/api/")
        try:
            if len(self.path) > 512:
                raise WebError(414, "uri_too_long", "Địa chỉ quá dài.", "URI too long.")
            # HEAD: the GET route's headers without its body (_send leaves the body out)
            command = "GET" if self.command == "HEAD" else self.command
            for method, pattern, name in ROUTES:
                mt = pattern.match(path)
                if mt and method == command:
                    if self.command == "HEAD" and name.endswith("_events"):
                        raise WebError(405, "method_not_allowed", "Phương thức không được hỗ trợ.",
                                       "Method not allowed.")
                    self.limit(self.app.api_ip_limit if api else self.app.page_limit, self.client())
                    return getattr(self, name)(*mt.groups())
            if any(p.match(path) for _, p, _ in ROUTES):
                raise WebError(405, "method_not_allowed", "Phương thức không được hỗ trợ.", "Method not allowed.")
            raise E.not_found("trang", "Page")
        except WebError as err:
            if err.status >= 500 or err.status == 429:
                log.info("%s %s -> %d %s", self.command, path[:40], err.status, err.code)
            self.send_error_obj(err, api)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:   # noqa: BLE001 - one bad request must not take the server down
            log.exception("error handling %s %s", self.command, path[:60])
            self.send_error_obj(WebError(500, "internal", "Lỗi hệ thống. Xin thử lại sau.",
                                         "Internal error. Please try again later."), api)

    do_GET = do_POST = do_DELETE = do_HEAD = _dispatch

    # what the standard library answers by itself (a request line over 64 KiB, a malformed
    # request, an unknown method): our bilingual page, Vietnamese first, not its English one
    _STDLIB_ERRORS = {
        400: ("Yêu cầu không hợp lệ.", "Bad request."),
        414: ("Địa chỉ quá dài.", "URI too long."),
        431: ("Phần đầu của yêu cầu quá lớn.", "Request header fields too large."),
        501: ("Phương thức không được hỗ trợ.", "Method not supported."),
        505: ("Phiên bản HTTP không được hỗ trợ.", "HTTP version not supported."),
    }

    def send_error(self, code, message=None, explain=None):
        vi, en = self._STDLIB_ERRORS.get(int(code), ("Yêu cầu không hợp lệ.", "Bad request."))
        try:
            body = self.app.render_error(WebError(int(code), f"http_{int(code)}", vi, en), "vi")
        except Exception:   # noqa: BLE001 - the error page itself must never fail
            body = f"{int(code)} {vi} / {en}".encode()
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.close_connection = True
        if int(code) >= 200 and int(code) not in (204, 205, 304):
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        if self.command != "HEAD" and int(code) >= 200 and int(code) not in (204, 205, 304):
            self.wfile.write(body)

    def do_PUT(self):                         # known paths, wrong method: a clear 405
        self._dispatch()

    do_PATCH = do_PUT

    # ------------------------------------------------------------ pages
    def get_index(self):
        self._send(302, b"", "text/plain", {"Location": f"/board/{self.app.cfg.site.id}"})

    def get_ticket_page(self, tid: str):
        self.send_html(*self.app.ticket_page(tid, self.lang()))

    def get_ticket_fragment(self, tid: str):
        html, final, _ = self.app.ticket_fragment(tid)
        self.send_json(200, {"html": html, "final": final})

    def get_ticket_events(self, tid: str):
        self.stream(lambda: self.app.ticket_fragment(tid))

    def get_board_page(self, site: str):
        self.app.check_site(site)
        self.send_html(200, self.app.board_page(self.lang()))

    def get_board_fragment(self, site: str):
        self.app.check_site(site)
        self.send_json(200, {"html": self.app.board_fragment(), "final": False})

    def get_board_events(self, site: str):
        self.app.check_site(site)
        self.stream(lambda: (self.app.board_fragment(), False, None))

    def get_alerts_page(self, site: str):
        self.app.check_site(site)
        self.send_html(200, self.app.alerts_page(self.lang()))

    def get_alerts_fragment(self, site: str):
        self.app.check_site(site)
        self.send_json(200, {"html": self.app.alerts_fragment(), "final": False})

    def get_alerts_events(self, site: str):
        self.app.check_site(site)
        self.stream(lambda: (self.app.alerts_fragment(), False, None))

    def get_static(self, name: str):
        f = STATIC_DIR / name
        if not f.is_file():
            raise E.not_found("tệp", "File")
        self._send(200, f.read_bytes(), STATIC_TYPES[f.suffix], {"Cache-Control": "public, max-age=3600"})

    def get_health(self):
        self.send_json(200, self.app.health())

    def stream(self, render) -> None:
        """Server-sent events: the fragment now, then again whenever it changes."""
        if not self.server.streams.acquire(blocking=False):
            raise E.unavailable("Máy chủ đang quá tải; trang sẽ tự cập nhật chậm hơn.",
                                "Server busy; the page will update more slowly.")
        try:
            html, final, _ = render()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.close_connection = True
            replica = self.app.replica
            sent, version = None, replica.version
            self.wfile.write(b"retry: 3000\n\n")
            while True:
                if html != sent:
                    data = json.dumps({"html": html, "final": final}, ensure_ascii=False)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()
                    sent = html
                if final or replica.stopping:
                    return
                new = replica.wait_change(version, STREAM_KEEPALIVE_S)
                if new == version:
                    self.wfile.write(b": keep-alive\n\n")     # also detects a phone that left
                    self.wfile.flush()
                version = new
                html, final, _ = render()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return
        finally:
            self.server.streams.release()

    # ------------------------------------------------------------ API
    def api_ticket(self, tid: str):
        self.send_json(200, self.app.ticket_json(tid))

    def api_board(self):
        self.send_json(200, self.app.board_json())

    def api_book(self):
        tok = self.token("booking")
        req = self.read_json(BookingRequest)
        self.send_json(201, {"ok": True, "booking": self.app.book(tok.id, req)})

    def api_booking(self, code: str):
        tok = self.token("booking")
        self.send_json(200, {"ok": True, "booking": self.app.booking(tok.id, code)})

    def api_cancel(self, code: str):
        tok = self.token("booking")
        self.send_json(200, {"ok": True, "booking": self.app.cancel(tok.id, code)})

    def api_checkin(self):
        tok = self.token("checkin")
        wait = self.app.checkin_failures.peek(self.client())
        if wait:
            raise E.too_many(wait)
        try:
            req = self.read_json(CheckIn)
            self.send_json(200, self.app.checkin(tok.id, req))
        except WebError as err:
            if err.status in (400, 404):          # a wrong code: count it against guessing
                self.app.checkin_failures.take(self.client())
            raise


class WebServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, app: WebApp, addr: tuple[str, int]):
        self.app = app
        self.streams = threading.BoundedSemaphore(app.cfg.web.max_streams)
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):     # a client that vanished: not an error
        log.debug("connection error from %s", client_address[0], exc_info=True)

