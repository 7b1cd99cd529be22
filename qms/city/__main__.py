"""`qms city` (or `python -m qms.city`): the central tier.

    qms city init          --dsn postgresql://qms@db/city
    qms city add-site      --dsn ... --site phuong-an-khanh-2 --center "Phường An Khánh"
    qms city serve         --dsn ... --host 0.0.0.0 --port 8080 [--no-public | --no-ingest]
    qms city report        --dsn ... [--site S | --center C] --from 2026-11-01 --to 2026-11-30
    qms city set-center    --dsn ... --site phuong-an-khanh-2 --center "Phường An Khánh"
    qms city sites         --dsn ...
    qms city aggregate     --dsn ...      (fold the days' report aggregates now; serve does it too)

The commands live here (the `qms` CLI's `city` subcommand is this module's add_arguments
and run); the DSN may also come from $QMS_CITY_DSN and its password from a file
(--password-file or $QMS_CITY_PASSWORD_FILE), as /etc/qms/city.env sets them. Without
either, the commands read those two from /etc/qms/city.env itself (as the unit does), so an
administrator runs `sudo -u qms /opt/qms/venv/bin/qms city sites` and nothing more.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# what `qms install --role city` wrote; $QMS_CITY_ENV names another file
CITY_ENV = Path("/etc/qms/city.env")


def _database_arguments(p: argparse.ArgumentParser, default=None) -> None:
    p.add_argument("--dsn", default=os.environ.get("QMS_CITY_DSN") if default is None else default,
                   help="PostgreSQL connection string (default: $QMS_CITY_DSN)")
    p.add_argument("--password-file", default=(os.environ.get("QMS_CITY_PASSWORD_FILE") or None)
                   if default is None else default,
                   help="file holding the database password (default: $QMS_CITY_PASSWORD_FILE; "
                   "none with peer authentication)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _database_arguments(p)
    # --dsn also after the command (`qms city init --dsn ...`); there it wins
    after = argparse.ArgumentParser(add_help=False)
    _database_arguments(after, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="city_command", metavar="COMMAND", required=True)
    sub.add_parser("init", help="create the schema", parents=[after])
    a = sub.add_parser("add-site", help="register a point; prints its uplink token", parents=[after])
    a.add_argument("--site", required=True)
    a.add_argument("--center", required=True, help="the ward center it belongs to (the points' site.center)")
    r = sub.add_parser("rotate-token", help="a new uplink token for a point", parents=[after])
    r.add_argument("--site", required=True)
    c = sub.add_parser("set-center", help="register a point under another center (as its [site] center says)",
                       parents=[after])
    c.add_argument("--site", required=True)
    c.add_argument("--center", required=True)
    sub.add_parser("sites", help="list the points and how far their logs are stored", parents=[after])
    s = sub.add_parser("serve", help="run the ingest and the public city view", parents=[after])
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8090)
    s.add_argument("--no-public", action="store_true", help="ingest only")
    s.add_argument("--no-ingest", action="store_true", help="public view and API only")
    s.add_argument("--ssl-certfile")
    s.add_argument("--ssl-keyfile")
    rep = sub.add_parser("report", help="the report of one point, one center or the whole city",
                         parents=[after])
    rep.add_argument("--site")
    rep.add_argument("--center")
    rep.add_argument("--from", dest="since", required=True)
    rep.add_argument("--to", dest="until")
    rep.add_argument("--lang", choices=["vi", "en"], default="vi")
    rep.add_argument("--csv")
    # per-day report aggregates (qms/city/daily.py): serve keeps them; this catches up
    sub.add_parser("aggregate", help="fold every changed site-day into its report aggregate now", parents=[after])


def build_parser(prog: str = "python -m qms.city") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="the central tier (PostgreSQL)")
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("QMS_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def safe_dsn(dsn: str) -> str:
    """The DSN as it may be printed: without its password."""
    from psycopg.conninfo import conninfo_to_dict
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:   # noqa: BLE001 - an unreadable DSN: say only that
        return "(the DSN given)"
    if "password" in parts:
        parts["password"] = "***"
    return " ".join(f"{k}={v}" for k, v in parts.items())


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, quotes)."""
    pairs = (line.strip().partition("=") for line in path.read_text(encoding="utf-8").splitlines())
    return {k.strip(): _unquote(v.strip()) for k, eq, v in pairs if eq and k and k[0] not in "#;"}


def _unquote(value: str) -> str:
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    return value[1:-1] if quoted else value


def _installed_database(args) -> str | None:
    """No --dsn and no $QMS_CITY_DSN: the installed unit's settings, if there are some.
    Returns an error message, or None."""
    path = Path(os.environ.get("QMS_CITY_ENV") or CITY_ENV)
    try:
        env = read_env_file(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return (f"no --dsn and no QMS_CITY_DSN, and {path} cannot be read ({e.strerror}): "
                "run it as the unit's user, sudo -u qms")
    args.dsn = env.get("QMS_CITY_DSN") or None
    if args.password_file is None:
        args.password_file = env.get("QMS_CITY_PASSWORD_FILE") or None
    return None


def run(args) -> int:
    if not args.dsn:
        problem = _installed_database(args)
        if problem:
            return _fail(problem)
    if not args.dsn:
        return _fail("no database: give --dsn postgresql://USER@HOST/DB or set QMS_CITY_DSN "
                     f"(installed: {CITY_ENV})")
    try:
        import psycopg

        from qms.city import db
    except ModuleNotFoundError as e:
        return _fail(f"the city tier needs the `city` extra ({e.name} missing): "
                     "pip install 'qms-edge[city]', or `qms install --role city`")
    dsn = args.dsn
    if args.password_file:
        try:
            password = open(args.password_file, encoding="utf-8").read().strip()
        except OSError as e:
            return _fail(f"cannot read the password file {args.password_file}: {e.strerror}")
        try:
            dsn = psycopg.conninfo.make_conninfo(dsn, password=password)
        except psycopg.ProgrammingError as e:
            return _fail(f"the DSN cannot be read: {e}")
    command = args.city_command
    try:
        if command == "init":
            db.init_schema(dsn)
            print(f"the city schema is ready in {safe_dsn(dsn)}")
        elif command == "add-site":
            print(db.add_site(dsn, args.site, args.center))
        elif command == "rotate-token":
            print(db.rotate_token(dsn, args.site))
        elif command == "set-center":
            db.set_center(dsn, args.site, args.center)
            print(f"{args.site} is registered under {args.center.strip()!r}; its uplink is accepted at its "
                  "next try (within a minute)")
            for line in center_mismatches(dsn, args.site):
                print(f"warning: {line}", file=sys.stderr)
        elif command == "sites":
            listed = db.sites(dsn)
            for s in listed:
                print(f"{s['center']}\t{s['site']}\t{s['stored_seq']}\t{s['last_seen'] or '-'}")
            for s in listed:
                if s["refused"]:
                    print(f"warning: {s['site']}: its uplink is refused: {s['refused']}", file=sys.stderr)
            for line in center_mismatches(dsn):
                print(f"warning: {line}", file=sys.stderr)
        elif command == "serve":
            return serve(args, dsn)
        elif command == "report":
            from qms.city.report import ReportError, city_report
            from qms.reports.render import render_table, write_csv
            try:
                rep = city_report(dsn, args.since, args.until or args.since, site=args.site, center=args.center)
            except ReportError as e:
                return _fail(str(e))
            if args.csv:
                write_csv(rep, args.csv, args.lang)
            sys.stdout.write(render_table(rep, args.lang))
        elif command == "aggregate":
            from qms.city.daily import aggregate
            s = aggregate(dsn)
            print(f"{s['folded']} site-days folded in {s['seconds']} s")
    except db.SiteError as e:
        return _fail(str(e))
    except psycopg.errors.UndefinedTable:
        return _fail(f"the database {safe_dsn(dsn)} has no city schema: run `qms city init` first")
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = ""
        if "Peer authentication failed" in first or ("role" in first and "does not exist" in first):
            # peer authentication: the database role is the OS user running the command
            hint = "; with peer authentication run it as the unit's user: sudo -u qms /opt/qms/venv/bin/qms city ..."
        return _fail(f"cannot reach the database {safe_dsn(dsn)}: {first}{hint}")
    except psycopg.ProgrammingError as e:       # e.g. an option libpq does not know
        return _fail(f"the DSN cannot be used: {e}")
    return 0


def center_mismatches(dsn: str, only: str | None = None) -> list[str]:
    """Points registered under another center than their last accepted config's [site]
    center (the registration changed since: the uplink refuses a new config that
    disagrees, docs/city.md). The center's report and board go by the registered one."""
    import tomllib

    import psycopg

    from qms.city.db import same_center
    out = []
    with psycopg.connect(dsn) as conn:
        for site, center, config in conn.execute(
                "SELECT site, center, config FROM city_sites WHERE config IS NOT NULL "
                "AND (%(site)s::text IS NULL OR site = %(site)s) ORDER BY site", {"site": only}):
            try:
                own = tomllib.loads(config)["site"]["center"]
            except (tomllib.TOMLDecodeError, KeyError, TypeError):
                continue
            if not same_center(own, center):
                out.append(f"{site} is registered with center {center!r} but its config says {own!r}: "
                           "fix one of them (the center's report and board go by the registered one)")
    return out


def serve(args, dsn: str) -> int:
    """uvicorn, with systemd's READY=1 once it listens and WATCHDOG=1 from its event loop
    (a loop that stops turning stops the beats, and systemd restarts the process)."""
    import asyncio

    import uvicorn

    from qms.city import db
    from qms.city.server import create_app
    from qms.ops.sdnotify import Heartbeat, stop_on_sigterm
    db.init_schema(dsn)
    app = create_app(dsn, ingest=not args.no_ingest, public=not args.no_public)
    aggregator = None
    if not args.no_ingest:          # beside the ingest, a process keeps the report aggregates
        from qms.city.daily import start_process
        aggregator = start_process(dsn)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                            # live city pages never end their stream: on stop, give the requests
                            # in flight a few seconds, then end the streams (browsers reconnect)
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    # uvicorn stops on SIGTERM, then raises the signal again for the handler it found: ours,
    # so the process ends with status 0 (systemd's clean stop), not killed by the signal
    stop_on_sigterm(lambda: setattr(server, "should_exit", True))
    beat = Heartbeat()

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            beat.ready(f"city on {args.host}:{args.port}")
        while not task.done():
            await asyncio.wait({task}, timeout=beat.interval or 5.0)
            beat.beat()
        await task

    # the event loop uvicorn.run would pick (uvloop when installed)
    if hasattr(config, "get_loop_factory"):             # uvicorn >= 0.36
        loop_factory = config.get_loop_factory()
    else:
        config.setup_event_loop()
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    except SystemExit as e:            # uvicorn: could not listen, or the app failed to start
        return int(e.code or 1)
    finally:
        if aggregator is not None:
            aggregator.terminate()
            aggregator.join(10)
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
