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

import msgspec
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from qms.city.hub import Hub
from qms.city.ingest import Ingest, Refused
from qms.uplink.wire import batch_decoder

log = logging.getLogger("qms.city.server")

MAX_BODY = 16 * 1024 * 1024
KEEPALIVE_S = 15.0
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


def _json(data, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status, media_type="application/json")


def _refused(e: Refused) -> Response:
    body = {"error": e.code, "message": e.message}
    if e.stored is not None:
        body["stored"] = e.stored
    return JSONResponse(body, e.status)


def create_app(dsn: str, ingest: bool = True, public: bool = True, pool_size: int = 8) -> Starlette:
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
        try:
            yield
        finally:
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

    async def post_events(request: Request) -> Response:
        try:
            ing, site = await _site_request(request)
            body = await request.body()
            if len(body) > MAX_BODY:
                raise Refused(413, "batch_too_large", f"at most {MAX_BODY} bytes per batch")
            try:
                batch = batch_decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise Refused(400, "bad_batch", f"not a batch: {e}") from None
            return _json({"stored": await ing.store(site, batch)})
        except Refused as e:
            return _refused(e)

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
            headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
            if "gzip" in request.headers.get("accept-encoding", ""):
                return Response(hub.board_gzip(), media_type="application/json",
                                headers={**headers, "Content-Encoding": "gzip"})
            return Response(hub.board_json(), media_type="application/json", headers=headers)
        return _json([e for e in hub.sorted_board() if any(s["id"] == service for s in e["services"])])

    async def city_stream(request: Request) -> Response:
        hub: Hub = state["hub"]
        q = hub.subscribe()

        async def events():
            try:
                yield b"retry: 3000\n\nevent: board\ndata: " + hub.board_json() + b"\n\n"
                while True:
                    try:
                        msg = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if msg is None:        # dropped as too slow
                        return
                    yield msg
            finally:
                hub.unsubscribe(q)
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

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
                   Route("/v1/sites/{site}/config", put_config, methods=["PUT"]),
                   Route("/v1/sites/{site}/events", post_events, methods=["POST"])]
    if public:
        routes += [Route("/", _static("city.html", "text/html; charset=utf-8")),
                   Route("/city.js", _static("city.js", "text/javascript; charset=utf-8")),
                   Route("/city.css", _static("city.css", "text/css; charset=utf-8")),
                   Route("/api/v1/city", city_json), Route("/api/v1/city/stream", city_stream),
                   Route("/api/v1/suggest", suggest), Route("/api/v1/sites", sites_api),
                   Route("/api/v1/report", report)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.city = state
    return app
