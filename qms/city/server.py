"""The central tier's web server: the points' uplink ingest, the public city view, the
read-only city API. Starlette on uvicorn (an ASGI server made for public traffic: many
idle SSE connections cost a coroutine each, not a thread).

    python -m qms.city serve --dsn postgresql://qms@db/city --port 8443 [--no-public | --no-ingest]

Ingest and public view can run in separate processes (or machines) on the same database:
the live board follows the ingest through PostgreSQL LISTEN/NOTIFY.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from importlib import resources
from urllib.parse import parse_qs

import msgspec
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qms.city.gcfreeze import keep_collections_short
from qms.city.hub import CLIENT_QUEUE, Hub
from qms.city.ingest import Ingest, Refused
from qms.city.livepage import LivePage
from qms.uplink.wire import batch_decoder

log = logging.getLogger("qms.city.server")

MAX_BODY = 16 * 1024 * 1024
_STREAM_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
                   (b"x-accel-buffering", b"no")]
# a point is suggested when its wait is at most half, and at least this much shorter
SUGGEST_MIN_GAIN_S = 15 * 60
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; img-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "geolocation=(), camera=(), microphone=()",
    "X-Content-Type-Options": "nosniff",
}


def _rank(e: dict, s: dict, here: dict) -> tuple:
    """Order of the points a suggestion may name (smaller first)."""
    return (s["est_wait_s"], s["waiting"] or 0, e["center"] != here["center"], e["name"], e["site"])


def _json(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(msgspec.json.encode(data), status, media_type="application/json", headers=headers)


def _refusal(e: Refused) -> dict:
    body = {"error": e.code, "message": e.message}
    if e.message_vi is not None:
        body |= {"message_vi": e.message_vi, "message_en": e.message}
    if e.stored is not None:
        body["stored"] = e.stored
    return body


def _refused(e: Refused) -> Response:
    return JSONResponse(_refusal(e), e.status)


STREAM_PATH = "/api/v1/city/stream"
_EVENTS = ("/v1/sites/", "/events")


class CityApp:
    """The Starlette app, with its two hot paths taken before it: the live stream (every
    change is one `send` per live page, 2,000 of them, which Starlette's middleware would
    wrap twice each) and the points' batches (hundreds a second)."""

    def __init__(self, app: Starlette, stream, events):
        self.app, self.stream, self.events, self.state = app, stream, events, app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if self.stream is not None and path == STREAM_PATH:
                if scope["method"] not in ("GET", "HEAD"):
                    await Response(status_code=405, headers={"Allow": "GET"})(scope, receive, send)
                    return
                await self.stream(scope, receive, send)
                return
            if (self.events is not None and scope["method"] == "POST" and path.startswith(_EVENTS[0])
                    and path.endswith(_EVENTS[1])):
                await self.events(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(dsn: str, ingest: bool = True, public: bool = True, pool_size: int = 8) -> CityApp:
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        pool = AsyncConnectionPool(dsn, min_size=1, max_size=pool_size, open=False,
                                   kwargs={"autocommit": True})
        await pool.open()
        state["ingest"] = Ingest(pool)
        hub = state["hub"] = Hub(dsn) if public else None
        if hub:
            await hub.start()
        gc_task = asyncio.create_task(keep_collections_short())     # gcfreeze.py: the page's p99
        try:
            yield
        finally:
            gc_task.cancel()
            if hub:
                await hub.stop()
            await pool.close()

    # ------------------------------------------------------------ uplink ingest
    async def _site_request(request: Request) -> tuple[Ingest, str]:
        ing: Ingest = state["ingest"]
        site = request.path_params["site"]
        await ing.authenticate(request.headers.get("authorization"), site)
        return ing, site

    async def position(request: Request) -> Response:
        try:
            ing, site = await _site_request(request)
            return _json(await ing.position(site))
        except Refused as e:
            return _refused(e)

    async def put_config(request: Request) -> Response:
        try:
            ing, site = await _site_request(request)
            body = await request.body()
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise Refused(400, "bad_config", "the config is not UTF-8") from None
            return _json({"stored": await ing.put_config(site, text)})
        except Refused as e:
            return _refused(e)

    async def post_events(scope, receive, send) -> None:
        """POST /v1/sites/<site>/events, what every point sends up to twice a second: plain
        ASGI, as Starlette's request, response and middleware cost about a third of the
        CPU of such a request (bench/README.md, "city")."""
        ing: Ingest = state["ingest"]
        site = scope["path"][len(_EVENTS[0]):-len(_EVENTS[1])]
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            await ing.authenticate(auth.decode("latin-1") if auth is not None else None, site)
            chunks, more = [], True
            while more:
                m = await receive()
                if m["type"] == "http.disconnect":
                    return
                chunks.append(m.get("body", b""))
                more = m.get("more_body", False)
            body = b"".join(chunks)
            if len(body) > MAX_BODY:
                raise Refused(413, "batch_too_large", f"at most {MAX_BODY} bytes per batch")
            try:
                batch = batch_decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise Refused(400, "bad_batch", f"not a batch: {e}") from None
            status, out = 200, msgspec.json.encode({"stored": await ing.store(site, batch)})
        except Refused as e:
            status, out = e.status, msgspec.json.encode(_refusal(e))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    # ------------------------------------------------------------ public view
    def _static(name: str, media: str):
        data = resources.files("qms.city").joinpath("static", name).read_bytes()

        async def serve(request: Request) -> Response:
            return Response(data, media_type=media, headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"})
        return serve

    async def city_json(request: Request) -> Response:
        hub: Hub = state["hub"]
        service = request.query_params.get("service")
        if not service:
            # the version lets the page open the stream from exactly this board (hub.py)
            if "gzip" in request.headers.get("accept-encoding", ""):
                tag, body = hub.board_gzip()
                return Response(body, media_type="application/json", headers={
                    "Cache-Control": "no-store", "Vary": "Accept-Encoding", "X-Board-Version": tag,
                    "Content-Encoding": "gzip"})
            tag, body = hub.board_json()
            return Response(body, media_type="application/json", headers={
                "Cache-Control": "no-store", "Vary": "Accept-Encoding", "X-Board-Version": tag})
        return _json([e for e in hub.sorted_board() if any(s["id"] == service for s in e["services"])],
                     headers={"X-Board-Version": hub.tag()})

    async def city_stream(scope, receive, send) -> None:
        """The live board by SSE, from the version the client holds (hub.py, `resume`).

        A plain ASGI function rather than a StreamingResponse: with 2,000 live pages every
        change is one `send` per page, and Starlette's response adds a task group and a
        task per client on top of it; the hub writes to the page directly (livepage.py)."""
        hub: Hub = state["hub"]
        headers = dict(scope["headers"])
        since = headers.get(b"last-event-id", b"").decode("latin-1") or \
            parse_qs(scope["query_string"].decode("latin-1")).get("since", [""])[0]
        page = LivePage(send, CLIENT_QUEUE)

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            hub.unsubscribe(page)
            page.end()

        await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
        hub.subscribe(page)
        page.offer(b"retry: 3000\n\n" + hub.resume(since))    # in the same step as subscribe
        gone = asyncio.ensure_future(disconnected())
        try:
            await page.ended
            await page.idle()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            hub.unsubscribe(page)
            gone.cancel()

    async def suggest(request: Request) -> Response:
        """Another point serving the same procedure with a markedly shorter wait, if any."""
        hub: Hub = state["hub"]
        site, service = request.query_params.get("site", ""), request.query_params.get("service", "")
        here = hub.board.get(site)
        if here is None or not service:
            return _json({"error": "bad_request", "message": "give ?site=...&service=..."}, 400)
        mine = next((s for s in here["services"] if s["id"] == service), None)
        wait = mine["est_wait_s"] if mine and mine["est_wait_s"] is not None else None
        best = None
        for e in hub.board.values():
            if e["site"] == site or e["stale"]:
                continue
            for s in e["services"]:
                # the shortest wait; among equal ones (every counter free) the fewest waiting,
                # then a point of the citizen's own center, then by name: the same answer always
                if s["id"] == service and s["open"] and s["est_wait_s"] is not None and (
                        best is None or _rank(e, s, here) < _rank(*best, here)):
                    best = (e, s)
        if best is None or wait is None or not (
                best[1]["est_wait_s"] * 2 <= wait and wait - best[1]["est_wait_s"] >= SUGGEST_MIN_GAIN_S):
            return _json({"suggestion": None, "est_wait_s": wait})
        e, s = best
        return _json({"est_wait_s": wait, "suggestion": {
            "site": e["site"], "name": e["name"], "center": e["center"], "address": e["address"],
            "service": service, "est_wait_s": s["est_wait_s"], "waiting": s["waiting"]}})

    # ------------------------------------------------------------ read-only city API
    async def report(request: Request) -> Response:
        from qms.city.report import ReportError, city_report
        qp = request.query_params
        today = dt.date.today().isoformat()
        try:
            rep = await asyncio.to_thread(city_report, dsn, qp.get("from", today), qp.get("to", qp.get("from", today)),
                                          site=qp.get("site"), center=qp.get("center"))
        except ReportError as e:
            return _json({"error": "bad_request", "message": str(e)}, 400)
        return _json(msgspec.to_builtins(rep))

    async def sites_api(request: Request) -> Response:
        hub: Hub = state["hub"]
        return _json([{k: e[k] for k in ("site", "center", "name", "stale", "open")} for e in hub.sorted_board()])

    routes = []
    if ingest:
        routes += [Route("/v1/sites/{site}/position", position, methods=["GET"]),
                   Route("/v1/sites/{site}/config", put_config, methods=["PUT"])]
    if public:
        routes += [Route("/", _static("city.html", "text/html; charset=utf-8")),
                   Route("/city.js", _static("city.js", "text/javascript; charset=utf-8")),
                   Route("/city.css", _static("city.css", "text/css; charset=utf-8")),
                   Route("/api/v1/city", city_json),
                   Route("/api/v1/suggest", suggest), Route("/api/v1/sites", sites_api),
                   Route("/api/v1/report", report)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.city = state
    return CityApp(app, city_stream if public else None, post_events if ingest else None)
