"""`python -m qms.city`: the central tier.

    python -m qms.city init      --dsn postgresql://qms@db/city
    python -m qms.city add-site  --dsn ... --site phuong-an-khanh-2 --center "Phường An Khánh"
    python -m qms.city serve     --dsn ... --host 0.0.0.0 --port 8080 [--no-public | --no-ingest]
    python -m qms.city report    --dsn ... [--site S | --center C] --from 2026-11-01 --to 2026-11-30
    python -m qms.city sites     --dsn ...
    python -m qms.city aggregate --dsn ...      (fold the days' report aggregates now; serve does it too)
"""
from __future__ import annotations

import argparse
import logging
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qms.city", description="the central tier (PostgreSQL)")
    p.add_argument("--dsn", default=os.environ.get("QMS_CITY_DSN"),
                   help="PostgreSQL connection string (default: $QMS_CITY_DSN)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the schema")
    a = sub.add_parser("add-site", help="register a point; prints its uplink token")
    a.add_argument("--site", required=True)
    a.add_argument("--center", required=True, help="the ward center it belongs to")
    r = sub.add_parser("rotate-token", help="a new uplink token for a point")
    r.add_argument("--site", required=True)
    sub.add_parser("sites", help="list the points and how far their logs are stored")
    s = sub.add_parser("serve", help="run the ingest and the public city view")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8090)
    s.add_argument("--no-public", action="store_true", help="ingest only")
    s.add_argument("--no-ingest", action="store_true", help="public view and API only")
    s.add_argument("--ssl-certfile")
    s.add_argument("--ssl-keyfile")
    rep = sub.add_parser("report", help="the report of one point, one center or the whole city")
    rep.add_argument("--site")
    rep.add_argument("--center")
    rep.add_argument("--from", dest="since", required=True)
    rep.add_argument("--to", dest="until")
    rep.add_argument("--lang", choices=["vi", "en"], default="vi")
    rep.add_argument("--csv")
    # per-day report aggregates (qms/city/daily.py): serve keeps them; this catches up
    sub.add_parser("aggregate", help="fold every changed site-day into its report aggregate now")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("QMS_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.dsn:
        print("error: give --dsn or set QMS_CITY_DSN", file=sys.stderr)
        return 2
    from qms.city import db
    try:
        if args.command == "init":
            db.init_schema(args.dsn)
        elif args.command == "add-site":
            print(db.add_site(args.dsn, args.site, args.center))
        elif args.command == "rotate-token":
            print(db.rotate_token(args.dsn, args.site))
        elif args.command == "sites":
            for s in db.sites(args.dsn):
                print(f"{s['center']}\t{s['site']}\t{s['stored_seq']}\t{s['last_seen'] or '-'}")
        elif args.command == "serve":
            import uvicorn
            db.init_schema(args.dsn)
            from qms.city.server import create_app
            app = create_app(args.dsn, ingest=not args.no_ingest, public=not args.no_public)
            if not args.no_ingest:          # the ingest's process keeps the report aggregates
                import threading

                from qms.city.daily import run_in_background
                run_in_background(args.dsn, threading.Event())
            uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                        ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
        elif args.command == "report":
            from qms.city.report import ReportError, city_report
            from qms.reports.render import render_table, write_csv
            try:
                rep = city_report(args.dsn, args.since, args.until or args.since, site=args.site, center=args.center)
            except ReportError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            if args.csv:
                write_csv(rep, args.csv, args.lang)
            sys.stdout.write(render_table(rep, args.lang))
        elif args.command == "aggregate":
            from qms.city.daily import aggregate
            s = aggregate(args.dsn)
            print(f"{s['folded']} site-days folded in {s['seconds']} s")
    except db.SiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
