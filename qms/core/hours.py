"""The issuing hours rule: whether a ticket for a service may be issued at a given moment.

A pure function of the site config and the time, so the queue core and a kiosk deciding
on its own (while the service cannot answer) refuse with the same words.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from qms.config.site import minutes_of
from qms.core import refusals as R

if TYPE_CHECKING:
    from qms.config.site import SiteConfig


def check_open(cfg: SiteConfig, service_id: str, now: int) -> None:
    """Raise Refused if tickets for this service cannot be issued at `now` (Unix ms)."""
    s = cfg.service(service_id)
    t = dt.datetime.fromtimestamp(now / 1000, cfg.tz)
    if t.isoweekday() not in cfg.hours.weekdays:
        raise R.closed_day()
    open_m = minutes_of(s.open or cfg.hours.open)
    close_m = minutes_of(s.close or cfg.hours.close)
    start = max(0, open_m - cfg.hours.early_minutes)
    stop = close_m - cfg.hours.cutoff_minutes
    m_now = t.hour * 60 + t.minute
    if m_now < start:
        raise R.not_open(f"{start // 60:02d}:{start % 60:02d}")
    if m_now >= stop:
        raise R.past_cutoff(f"{stop // 60:02d}:{stop % 60:02d}")
