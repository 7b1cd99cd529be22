"""Reports on the central store: one point, one center, or the whole city.

The figures are those of qms/reports (the same fold as a point's own `qms report`), made
from the per-(site, day) aggregates of qms/city/daily.py: a report over a month of the
whole city reads ~700 × 30 small rows, not every event. In one snapshot it takes the rows
of the site-days that are clean and folds, with the same code, the events of those still
marked dirty (today's, or a point's late events), so nothing is missed or counted twice.
Counts are summed, counter keys become "site:number" when there are several points (as
build_report does), and the waits and service times, kept once each (ms), are sorted per
group in numpy (docs/city.md says why): the figures are exactly those of the raw fold.
Each point's config is the one its uplink sent, so time zones, service names and counters
are the point's own.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
from pathlib import Path

import numpy as np
import psycopg

from qms.city.daily import FORMAT, DayAgg, dirty_days, fold_rows, from_row, read_days
from qms.config.site import ConfigError, SiteConfig, parse_config
from qms.reports.stats import N_COUNTS, Dist, Figures, Point, Report, assemble, make_figures

MAX_DAYS = 367


class ReportError(ValueError):
    """The report cannot be made; the message says why."""


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


@functools.lru_cache(maxsize=4096)
def _config(site: str, text: str) -> SiteConfig:
    """A point's stored config, parsed once per text (700 parses are ~4 s; a report only
    reads the config)."""
    try:
        return parse_config(text, f"config of {site}")
    except ConfigError as e:
        raise ReportError(f"the stored config of {site} cannot be read: {e}") from None


def city_report(dsn: str, since: str, until: str, site: str | None = None, center: str | None = None) -> Report:
    """The report of `site`, of every point of `center`, or (neither) of the whole city."""
    since, until = _days(since, until)
    with psycopg.connect(dsn) as conn:
        # one snapshot: a day is either clean (its row) or dirty (its events), never both
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
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
        points = [Point(_config(s, text), Path(f"city:{s}")) for s, _c, text in found]
        aggs = _day_aggregates(conn, {p.cfg.site.id: p.cfg for p in points}, since, until)
    rep = merge_report(points, aggs, since, until)
    if center:
        rep.center = center
    elif not site:
        rep.center = "Toàn thành phố"
    return rep


def _day_aggregates(conn: psycopg.Connection, cfgs: dict, since: str, until: str) -> list[DayAgg]:
    """Every site-day of the range: its stored row if clean and folded in the site's zone,
    else the fold of its events now."""
    sites = list(cfgs)
    dirty = dirty_days(conn, sites, since, until)
    redo = set(dirty)
    aggs = []
    for s, d, tz, fmt, groups, counts, waits, wg, times, tg, skipped in conn.execute(
            "SELECT site, day, tz, format, groups, counts, waits, wait_groups, times, time_groups, skipped "
            "FROM city_daily WHERE site = ANY(%s) AND day BETWEEN %s AND %s", (sites, since, until), binary=True):
        if (s, d) in dirty:
            continue
        if tz != cfgs[s].site.timezone or fmt != FORMAT:
            redo.add((s, d))
            continue
        aggs.append(from_row(s, d, groups, counts, waits, wg, times, tg, skipped))
    if redo:
        aggs += [fold_rows(cfgs[s], s, d, rows, skipped, n, upto)
                 for s, d, _gen, upto, n, rows, skipped in read_days(conn, sorted(redo)) if n]
    order = {s: i for i, s in enumerate(sites)}
    aggs.sort(key=lambda a: (order[a.site], a.day))     # the order a fold of the range meets them
    return aggs


# ---------------------------------------------------------------- the merge
def merge_report(points: list[Point], aggs: list[DayAgg], since: str, until: str) -> Report:
    """The report of `points` over since..until from their site-days' aggregates."""
    main = points[0].cfg
    target = main.report.target_wait_minutes
    multi = len(points) > 1
    index: dict[tuple[str, str], int] = {}
    gof: list[int] = []                 # each day's groups' numbers, then -1 ("no counter")
    for a in aggs:
        site = a.site
        for section, key in a.groups:
            if multi and section == "counter":
                key = f"{site}:{key}"
            g = index.get((section, key))
            if g is None:
                g = index[(section, key)] = len(index)
            gof.append(g)
        gof.append(-1)
    lk = np.array(gof, np.int64)
    sizes = np.array([len(a.groups) + 1 for a in aggs], np.int64)
    off = np.cumsum(sizes) - sizes
    point_g = np.array([index[("point", a.site)] for a in aggs], np.int64)
    counts, w, wg, nw, t, tg, nt = _columns(aggs)
    n_groups = len(index)
    total = np.zeros((n_groups, N_COUNTS), np.int64)
    wait_d: list[Dist | None] = [None] * n_groups
    time_d: list[Dist | None] = [None] * n_groups
    if aggs:
        gi = lk[lk >= 0]
        for j in range(N_COUNTS):          # exact: float64 holds any count below 2**53
            total[:, j] = np.bincount(gi, weights=counts[:, j], minlength=n_groups)
        sections = _sections(index, lk)
        target_ms = target * 60_000
        # two threads: numpy's sorts and gathers release the GIL, and the two are independent
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            done = [pool.submit(_dists, wait_d, w, wg, nw, off, np.repeat(point_g, nw), sections, target_ms),
                    pool.submit(_dists, time_d, t, tg, nt, off, np.repeat(point_g, nt), sections, target_ms)]
            for f in done:
                f.result()

    def row(section: str, key: str, vi: str, en: str) -> Figures:
        g = index.get((section, key))
        if g is None:
            return make_figures(section, key, vi, en, [0] * N_COUNTS, None, None)
        return make_figures(section, key, vi, en, total[g], wait_d[g], time_d[g])

    return assemble(points, since, until, target, None, index.keys(), row, sum(a.skipped for a in aggs))


def _columns(aggs: list[DayAgg]):
    """All days' counts, and their times with their groups and how many each day has, as arrays:
    joined as bytes and read once (~21,000 days a month) when every day has int32 times and
    fewer than 255 groups, as they do; day by day otherwise."""
    if all(a.group_dtype() is np.uint8 and len(a.waits) == 4 * (len(a.wait_groups) // 4)
           and len(a.times) == 4 * (len(a.time_groups) // 4) for a in aggs):
        counts = np.frombuffer(b"".join([a.counts for a in aggs]), np.int32).reshape(-1, N_COUNTS)
        w = np.frombuffer(b"".join([a.waits for a in aggs]), np.int32)
        wg = np.frombuffer(b"".join([a.wait_groups for a in aggs]), np.uint8).reshape(-1, 4)
        t = np.frombuffer(b"".join([a.times for a in aggs]), np.int32)
        tg = np.frombuffer(b"".join([a.time_groups for a in aggs]), np.uint8).reshape(-1, 4)
        nw = np.array([len(a.waits) // 4 for a in aggs], np.int64)
        nt = np.array([len(a.times) // 4 for a in aggs], np.int64)
    else:
        parts = [a.arrays() for a in aggs]
        counts = np.concatenate([p[0] for p in parts])
        w = np.concatenate([p[1].astype(np.int64) for p in parts])
        wg = np.concatenate([p[2].astype(np.int64) for p in parts])
        t = np.concatenate([p[3].astype(np.int64) for p in parts])
        tg = np.concatenate([p[4].astype(np.int64) for p in parts])
        nw = np.array([len(p[1]) for p in parts], np.int64)
        nt = np.array([len(p[3]) for p in parts], np.int64)
    return counts, w, wg, nw, t, tg, nt


def _sections(index: dict, lookup: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per section: each day-group's number among that section's groups (-1: another
    section's, or none), back from that number to the group, and each group's number."""
    out = {}
    for section in ("total", "point", "service", "counter", "hour", "day"):
        dense = np.full(len(index) + 1, -1, np.int32)      # [-1] (lookup's "none") stays -1
        mine = [g for (s, _k), g in index.items() if s == section]
        dense[mine] = np.arange(len(mine), dtype=np.int32)
        out[section] = (dense[lookup], np.asarray(mine, np.int64), dense)
    return out


def _dists(out: list, values: np.ndarray, at: np.ndarray, n_per_day: np.ndarray, offsets: np.ndarray,
           point: np.ndarray, sections: dict, target_ms: int) -> None:
    """Each group's Dist from the times (ms) and the groups each one is in: per section, one
    sort of (group, time) keys puts every group's times in order; group bounds, ranks and
    the count within the target are then binary searches in the sorted keys, so only a
    section's own groups are read back. The keys are int32 when the section's groups and
    the spread of the times fit in 31 bits (a sort several times faster), int64 otherwise."""
    if not len(values):
        return
    vmin = int(values.min())
    vbits = max(1, (int(values.max()) - vmin).bit_length())
    shifted = (values.astype(np.int64) - vmin)
    day_off = np.repeat(offsets.astype(np.int32), n_per_day)
    limit = min(max(target_ms - vmin, -1), (1 << vbits) - 1)
    for section, col in (("service", 0), ("hour", 1), ("day", 2), ("counter", 3), ("point", None), ("total", None)):
        dense_of, back, dense = sections[section]
        if section == "total":
            codes = np.zeros(len(values), np.int32)
        elif section == "point":
            codes = dense[point]
        else:
            codes = dense_of[at[:, col].astype(np.int32) + day_off]
        v = shifted
        if section == "counter" and codes.min() < 0:       # times served without a counter
            keep = codes >= 0
            codes, v = codes[keep], shifted[keep]
        if not len(v):
            continue
        n_codes = len(back)
        kind = np.int32 if (n_codes << vbits) < 2**31 else np.int64
        keys = (codes.astype(kind) << vbits) | v.astype(kind)
        keys.sort()
        base = np.arange(n_codes + 1, dtype=np.int64) << vbits
        bounds = np.searchsorted(keys, base.astype(kind))
        st, ns = bounds[:-1], np.diff(bounds)
        within = (np.searchsorted(keys, (base[:-1] | limit).astype(kind), side="right") - st) if limit >= 0 \
            else np.zeros_like(st)
        cs = np.nonzero(ns)[0]
        st, ns, within = st[cs], ns[cs], within[cs]
        top = _at(keys, st + ns - 1, vbits, vmin)
        p90 = _at(keys, st + np.maximum(0, np.ceil(0.9 * ns).astype(np.int64) - 1), vbits, vmin)
        lo, hi = _at(keys, st + (ns - 1) // 2, vbits, vmin), _at(keys, st + ns // 2, vbits, vmin)
        for c, k, a, b, p, x, wi in zip(cs.tolist(), ns.tolist(), lo, hi, p90, top, within.tolist()):
            # statistics.median's own arithmetic: the middle value, or the mean of the two
            out[back[c]] = Dist(k, a if k % 2 else (a + b) / 2, p, x, wi)


def _at(keys: np.ndarray, ranks: np.ndarray, vbits: int, vmin: int) -> list[int]:
    """The times (ms) at these ranks of sorted (group, time) keys."""
    return ((keys[ranks].astype(np.int64) & ((1 << vbits) - 1)) + vmin).tolist()
