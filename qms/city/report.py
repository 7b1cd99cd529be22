"""Reports on the central store: one point, one center, or the whole city.

The figures are computed by qms/reports (the same code as a point's own `qms report`);
only the rows come from PostgreSQL instead of a point's SQLite file, decoded the same way
(one msgspec call per point into the flat `Row`). Each point's config is the one its
uplink sent, so time zones, service names and counters are the point's own.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import psycopg

from qms.config.site import ConfigError, parse_config
from qms.reports.log import Row
from qms.reports.stats import Point, Report, build_report

_rows = msgspec.json.Decoder(list[Row])
_one = msgspec.json.Decoder(Row)
MAX_DAYS = 367


class ReportError(ValueError):
    """The report cannot be made; the message says why."""


def _decode(data: list[bytes]) -> tuple[list[Row], int]:
    if not data:
        return [], 0
    try:
        return _rows.decode(b"[" + b",".join(data) + b"]"), 0
    except (msgspec.DecodeError, msgspec.ValidationError):
        out = []
        for d in data:
            try:
                out.append(_one.decode(d))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        return out, len(data) - len(out)


def _days(since: str, until: str) -> tuple[str, str]:
    try:
        d0, d1 = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    except ValueError:
        raise ReportError(f"dates are YYYY-MM-DD (got {since!r}, {until!r})") from None
    if d1 < d0:
        raise ReportError(f"the last day {until} is before the first {since}")
    if (d1 - d0).days >= MAX_DAYS:
        raise ReportError(f"a report covers at most {MAX_DAYS} days")
    return d0.isoformat(), d1.isoformat()


def city_report(dsn: str, since: str, until: str, site: str | None = None, center: str | None = None) -> Report:
    """The report of `site`, of every point of `center`, or (neither) of the whole city."""
    since, until = _days(since, until)
    with psycopg.connect(dsn) as conn:
        q, args = "SELECT site, center, config FROM city_sites WHERE config IS NOT NULL", []
        if site:
            q += " AND site = %s"
            args.append(site)
        if center:
            q += " AND center = %s"
            args.append(center)
        found = conn.execute(q + " ORDER BY center, site", args).fetchall()
        if not found:
            raise ReportError("no such point" if site else "no such center" if center else "no point has reported yet")
        points = []
        for s, _c, text in found:
            try:
                cfg = parse_config(text, f"config of {s}")
            except ConfigError as e:
                raise ReportError(f"the stored config of {s} cannot be read: {e}") from None
            data = [bytes(d) for (d,) in conn.execute(
                "SELECT data FROM city_events WHERE site = %s AND day BETWEEN %s AND %s ORDER BY day, seq",
                (s, since, until))]
            rows = _decode(data)
            points.append(Point(cfg, Path(f"city:{s}"), rows=lambda _a, _b, r=rows: r))
    rep = build_report(points, since, until)
    if center:
        rep.center = center
    elif not site:
        rep.center = "Toàn thành phố"
    return rep
