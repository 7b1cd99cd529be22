"""`qms report`: the figures of a day or a date range, for one point or the whole center.

    qms report -c site.toml                         today, this point, table on the terminal
    qms report -c site.toml --day 2026-11-24 --csv day.csv --png day.png
    qms report -c site.toml --from 2026-11-01 --to 2026-11-30 --center --pdf month.pdf
    qms report -c site.toml --point sub1.toml --point sub2.toml:/data/sub2.sqlite --lang en

The whole center = this point plus the sub-points listed under [report] points in its
config (--center), or given with --point CONFIG[:DB].
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from qms.config.site import ConfigError, SiteConfig, load_config
from qms.reports.log import LogError
from qms.reports.stats import Point, build_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="site config of the (main) point")
    p.add_argument("--db", help="its event log (default: <state_dir>/service.sqlite)")
    when = p.add_argument_group("days (default: today)")
    when.add_argument("--day", help="one day, YYYY-MM-DD")
    when.add_argument("--from", dest="since", help="first day, YYYY-MM-DD")
    when.add_argument("--to", dest="until", help="last day, YYYY-MM-DD (default: --from)")
    p.add_argument("--center", action="store_true",
                   help="the whole center: add the sub-points of [report] points")
    p.add_argument("--point", action="append", default=[], metavar="CONFIG[:DB]",
                   help="add another point (repeatable)")
    p.add_argument("--lang", choices=["vi", "en"], help="language (default: [report] lang, vi)")
    p.add_argument("--target-wait", type=int, metavar="MINUTES",
                   help="target wait (default: [report] target_wait_minutes)")
    p.add_argument("--csv", metavar="FILE", help="write the figures as CSV")
    p.add_argument("--png", metavar="FILE", help="write the one-page chart report as PNG")
    p.add_argument("--pdf", metavar="FILE", help="write the one-page chart report as PDF")
    p.add_argument("--quiet", "-q", action="store_true", help="no table on the terminal")


def _point(spec: str, base: Path | None = None, db: str = "") -> Point:
    path = Path(spec)
    if base is not None and not path.is_absolute():
        path = base / path
    cfg = load_config(path)
    return Point(cfg, _db_path(cfg, db, path.parent))


def _db_path(cfg: SiteConfig, db: str | None, base: Path) -> Path:
    if db:
        p = Path(db)
        return p if p.is_absolute() else base / p
    return cfg.state_dir() / "service.sqlite"


def _split_point(spec: str) -> tuple[str, str]:
    # CONFIG[:DB]; a Windows drive letter is not a concern on the Pi
    config, _, db = spec.partition(":")
    return config, db


def _days(args, cfg: SiteConfig) -> tuple[str, str]:
    if args.day and (args.since or args.until):
        raise ValueError("give either --day or --from/--to")
    since = args.day or args.since or dt.datetime.now(cfg.tz).date().isoformat()
    until = args.day or args.until or since
    d0, d1 = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    if d1 < d0:
        raise ValueError(f"--to {until} is before --from {since}")
    if (d1 - d0).days > 366:
        raise ValueError("a report covers at most 367 days")
    return d0.isoformat(), d1.isoformat()


def run(args) -> int:
    try:
        main_cfg = load_config(args.config)
        points = [Point(main_cfg, Path(args.db) if args.db else main_cfg.state_dir() / "service.sqlite")]
        if args.center:
            base = Path(args.config).resolve().parent
            points += [_point(p.config, base, p.db) for p in main_cfg.report.points]
        for spec in args.point:
            config, db = _split_point(spec)
            points.append(_point(config, None, db))
        since, until = _days(args, main_cfg)
        if args.target_wait is not None and not 1 <= args.target_wait <= 480:
            raise ValueError("--target-wait must be 1..480 minutes")
        report = build_report(points, since, until, args.target_wait)
    except (ConfigError, LogError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    lang = args.lang or main_cfg.report.lang
    try:
        if args.csv:
            from qms.reports.render import write_csv
            write_csv(report, args.csv, lang)
        for path in (args.png, args.pdf):
            if path:
                from qms.reports.chart import save_chart
                save_chart(report, path, lang)
    except OSError as e:
        print(f"error: cannot write {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        if e.name != "matplotlib":
            raise
        print("error: charts (--png, --pdf) need matplotlib, which this machine lacks: install the "
              "`reports` extra (pip install 'qms-edge[reports]', or apt-get install python3-matplotlib)",
              file=sys.stderr)
        return 2
    if not args.quiet:
        from qms.reports.render import render_table
        sys.stdout.write(render_table(report, lang))
        _dead_letters(points, since, until, lang)
    return 0


def _dead_letters(points: list[Point], since: str, until: str, lang: str) -> None:
    """A line for the administrator when the service set commands aside (docs/protocol.md)."""
    from qms.reports.log import count_dead_letters
    n = sum(count_dead_letters(p.db, since, until) for p in points)
    if n:
        sys.stdout.write(f"\nLệnh bị gác lại do lỗi của dịch vụ: {n} (bảng dead_letters của sổ sự kiện)\n"
                         if lang == "vi" else
                         f"\nCommands set aside after a service error: {n} (table dead_letters of the event log)\n")
