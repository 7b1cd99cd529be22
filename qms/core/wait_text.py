"""The words for a wait, shared by every face (kiosk menu and screen, phone page, board, hall
display), so that they never disagree: all of them read the same `est_wait_s` and `away`
of the service's or the ticket's view (QueueCore.service_view / ticket_view) and say them
with these functions. Vietnamese first, English second; times in the site's time zone.
"""
from __future__ import annotations

import datetime as dt

NO_WAIT_S = 60          # below this the menu says "no waiting"


def minutes(seconds: int) -> int:
    return max(1, round(seconds / 60))


def wait_phrase(seconds: int) -> tuple[str, str]:
    """'khoảng 12 phút' / 'about 12 min'; an hour or more in hours and minutes."""
    m = round(seconds / 60)
    if m < 1:
        return "dưới 1 phút", "under 1 minute"
    if m < 60:
        return f"khoảng {m} phút", f"about {m} min"
    h, r = divmod(m, 60)
    return (f"khoảng {h} giờ {r} phút" if r else f"khoảng {h} giờ",
            f"about {h} h {r} min" if r else f"about {h} h")


def hhmm(ms: int, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M")


def away_phrase(away: dict | None, tz: dt.tzinfo) -> tuple[str, str] | None:
    """Why nobody can call now, e.g. 'Các quầy đang nghỉ trưa đến 13:00'; None when some
    counter serving the service is there."""
    if not away:
        return None
    until = hhmm(int(away["until"]), tz)
    counters = away.get("counters") or []
    if len(counters) == 1:
        who_vi, who_en = f"Quầy {counters[0]}", f"Counter {counters[0]}"
        are_en = "is"
    else:
        who_vi, who_en, are_en = "Các quầy", "The counters", "are"
    reason = away.get("reason")
    if reason == "break":
        return (f"{who_vi} đang nghỉ trưa đến {until}", f"{who_en} {are_en} on lunch break until {until}")
    if reason == "closed":
        return (f"{who_vi} bắt đầu làm việc lúc {until}", f"{who_en} open at {until}")
    note = (away.get("note") or "").strip()
    vi = f"{who_vi} đang tạm nghỉ" + (f" ({note})" if note else "") + f", dự kiến đến {until}"
    return vi, f"{who_en} {are_en} paused, expected back at {until}"


def new_ticket_phrase(view: dict, tz: dt.tzinfo) -> tuple[str, str]:
    """What a new ticket of this service would wait (a service's view): 'Không phải chờ'
    only when the estimate says so; with the reason when every counter is away."""
    est = int(view.get("est_wait_s") or 0)
    why = away_phrase(view.get("away"), tz)
    if est < NO_WAIT_S and why is None and not int(view.get("waiting", 0)):
        return "Không phải chờ", "No waiting"
    vi, en = wait_phrase(est)
    if why is not None:
        return f"{why[0]} · chờ {vi}", f"{why[1]} · wait {en}"
    return vi, en


def menu_phrase(view: dict, tz: dt.tzinfo) -> tuple[str, str]:
    """The kiosk menu's line for a service (one short line under its name): how many wait,
    and what a new ticket would; when every counter is away, until when, briefly."""
    n = int(view.get("waiting", 0))
    away = view.get("away")
    if away:
        until = hhmm(int(away["until"]), tz)
        vi, en = wait_phrase(int(view.get("est_wait_s") or 0))
        kind_vi, kind_en = {"break": ("Nghỉ trưa đến", "Lunch break until"),
                            "closed": ("Mở lúc", "Opens at")}.get(away.get("reason"), ("Tạm nghỉ đến", "Paused until"))
        return f"{kind_vi} {until} · {vi}", f"{kind_en} {until} · {en}"
    vi, en = new_ticket_phrase(view, tz)
    if n == 0:
        return vi, en
    return f"Đang chờ: {n} người · {vi}", f"Waiting: {n} · {en}"


def short_phrase(view: dict, tz: dt.tzinfo) -> str:
    """The hall display's column (Vietnamese, few characters): '12 phút', '1 giờ 5 phút',
    'nghỉ đến 13:00' when every counter is away, '–' when no wait."""
    away = view.get("away")
    if away:
        kind = {"break": "nghỉ đến", "closed": "mở lúc"}.get(away.get("reason"), "tạm nghỉ đến")
        return f"{kind} {hhmm(int(away['until']), tz)}"
    est = int(view.get("est_wait_s") or 0)
    if est < NO_WAIT_S:
        return "–" if not int(view.get("waiting", 0)) else "< 1 phút"
    return wait_phrase(est)[0].removeprefix("khoảng ")
