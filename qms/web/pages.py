"""HTML of the citizen's ticket page, the public board and the staff alerts page.

Pages are rendered here only (no second renderer in JavaScript): live updates push the
same fragment HTML over server-sent events, and the script swaps it in. Every text is
written in both languages (`<span lang="vi">` / `<span lang="en">`); CSS shows the one
chosen, so the toggle works without a round trip and without JavaScript via ?lang=en.
Nothing here names the citizen: a ticket page shows a number, a service and a counter.
"""
from __future__ import annotations

import datetime as dt
import html
import unicodedata

import qrcode
import qrcode.image.svg

from qms.config.site import SiteConfig
from qms.core.wait_text import away_phrase, new_ticket_phrase, wait_phrase
from qms.core.words import keep_words_html

_e = html.escape


def t(vi: str, en: str) -> str:
    """Both languages of one text; CSS shows the chosen one. Vietnamese words never break
    across lines (qms/core/words.py)."""
    return f'<span lang="vi">{keep_words_html(_e(vi))}</span><span lang="en">{_e(en)}</span>'


wait_text = wait_phrase          # the words every face uses (qms/core/wait_text.py)


def counter_name(cfg: SiteConfig, n: int) -> tuple[str, str]:
    try:
        c = cfg.counter(n)
    except KeyError:
        return f"Quầy {n}", f"Counter {n}"
    return (f"Quầy {n}" + (f" – {c.name_vi}" if c.name_vi else ""),
            f"Counter {n}" + (f" – {c.name_en}" if c.name_en else ""))


def _service(cfg: SiteConfig, sid: str) -> tuple[str, str]:
    try:
        s = cfg.service(sid)
    except KeyError:
        return sid, sid
    return s.name_vi, s.name_en


def _serving_counters(cfg: SiteConfig, service: str) -> tuple[str, str]:
    ns = [c.number for c in cfg.counters if service in c.services]
    if not ns:
        return "Chưa có quầy phục vụ", "No counter serves it"
    listed = ", ".join(map(str, ns))
    return (f"Quầy {listed}", f"Counter {listed}") if len(ns) == 1 else (f"Các quầy {listed}", f"Counters {listed}")


def _row(label: str, value: str, cls: str = "") -> str:
    return f'<div class="row {cls}"><div class="label">{label}</div><div class="value">{value}</div></div>'


def _hhmm(cfg: SiteConfig, ms: int) -> str:
    """A time of day in the site's time zone."""
    return dt.datetime.fromtimestamp(ms / 1000, cfg.tz).strftime("%H:%M")


def _qr_svg(text: str) -> str:
    img = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    return img.to_string().decode()


# ---------------------------------------------------------------- ticket page
def elsewhere_fragment(cfg: SiteConfig, e: dict) -> str:
    """Another point serving the same procedure with a markedly shorter wait (the city's
    suggestion): its name, its center when not this one, its address. No map, no distance:
    the page never asks where the citizen is."""
    name = e["name"]
    vi_name = name if name.lower().startswith("điểm") else f"Điểm {name}"
    wait_vi, wait_en = new_ticket_phrase({"est_wait_s": e["est_wait_s"], "waiting": e.get("waiting") or 0}, cfg.tz)
    wait_vi, wait_en = wait_vi[0].lower() + wait_vi[1:], wait_en[0].lower() + wait_en[1:]     # after a colon
    where = [x for x in ((e.get("center") if e.get("center") != cfg.site.center else ""), e.get("address")) if x]
    return (f'<aside class="elsewhere" id="elsewhere"><p class="what">'
            f'{t(f"Chờ ít hơn tại {vi_name}: {wait_vi}", f"Shorter wait at {name}: {wait_en}")}</p>'
            + "".join(f'<p class="where">{keep_words_html(_e(x))}</p>' for x in where)
            + f'<p class="note">{t("Số của bạn chỉ dùng được tại đây; đến điểm đó, bạn lấy số mới.", "Your number is valid here only; there, take a new one.")}</p>'
            '</aside>')


def ticket_fragment(cfg: SiteConfig, view: dict, elsewhere: dict | None = None) -> tuple[str, bool]:
    """The live part of /t/<id>. Returns (html, final): final when nothing more will change.
    `elsewhere`: the city's suggestion for a waiting ticket (qms/citylink/client.py), or None."""
    number = f'<div class="number" id="number">{view["number"]}</div>'
    svc = _service(cfg, view["service"])
    head = (f'<div class="caption">{t("Số của bạn", "Your number")}</div>{number}'
            f'<div class="service">{t(*svc)}</div>')
    if view.get("printed_number"):      # renumbered offline ticket: the paper shows another number
        p, n = view["printed_number"], view["number"]
        head += (f'<p class="renumbered" id="renumbered">{t(f"Vé in số {p} đã được đổi thành số {n}. Bạn sẽ được gọi theo số {n}.", f"Printed ticket {p} was changed to number {n}. You will be called as {n}.")}</p>')
    state = view["state"]
    issued = _hhmm(cfg, view["issued_at"]) if view.get("issued_at") else ""
    head += (f'<p class="meta">{t(f"Lấy số lúc {issued}", f"Taken at {issued}")}'
             + (f' · {t(*_serving_counters(cfg, view["service"]))}' if state == "waiting" else "")
             + (f' · <span class="updated">{t("Cập nhật " + _hhmm(cfg, view["now"]), "Updated " + _hhmm(cfg, view["now"]))}</span>'
                if view.get("now") else "") + '</p>' if issued else "")
    if state == "waiting":
        wait = wait_text(view["est_wait_s"])
        body = (_row(t("Số người đang chờ trước bạn", "People ahead of you"),
                     f'<b id="ahead">{view["people_ahead"]}</b>', "big") +
                _row(t("Thời gian chờ dự kiến", "Estimated wait"), f'<b id="wait">{t(*wait)}</b>') +
                (f'<p class="away" id="away">{t(*why)}</p>' if (why := away_phrase(view.get("away"), cfg.tz)) else "") +
                (elsewhere_fragment(cfg, elsewhere) if elsewhere else "") +
                f'<p class="hint">{t("Trang này tự cập nhật. Bạn có thể đi đâu đó gần đây và quay lại khi sắp đến lượt.", "This page updates by itself. You may step out and come back when your turn is near.")}</p>')
        return f'<section class="ticket waiting" data-state="waiting">{head}{body}</section>', False
    if state == "called":
        cvi, cen = counter_name(cfg, view["counter"])
        body = (f'<div class="call">{t("Mời bạn đến", "Please go to")}</div>'
                f'<div class="counter" id="counter">{t(cvi, cen)}</div>')
        return f'<section class="ticket called" data-state="called">{head}{body}</section>', False
    if state == "no_show":
        w = cfg.queue.no_show_window_minutes
        if view.get("no_show_at"):             # a clock time, not a duration to work out
            until = _hhmm(cfg, view["no_show_at"] + w * 60_000)
            msg = t(f"Số của bạn đã được gọi nhưng bạn vắng mặt. Hãy đến quầy {view['counter']} trước {until} để được gọi lại.",
                    f"Your number was called but you were not there. Go to counter {view['counter']} before {until} to be called back.")
        else:
            msg = t(f"Số của bạn đã được gọi nhưng bạn vắng mặt. Hãy đến quầy {view['counter']} trong vòng {w} phút để được gọi lại.",
                    f"Your number was called but you were not there. Go to counter {view['counter']} within {w} minutes to be called back.")
        return f'<section class="ticket no-show" data-state="no_show">{head}<p class="notice">{msg}</p></section>', False
    if state == "done":
        msg = t("Đã phục vụ xong. Cảm ơn bạn!", "Served. Thank you!")
        return f'<section class="ticket done" data-state="done">{head}<p class="notice">{msg}</p></section>', True
    msg = t("Số này không còn hiệu lực (chỉ có giá trị trong ngày).", "This number is no longer valid (valid on the day only).")
    return f'<section class="ticket expired" data-state="{_e(state)}">{head}<p class="notice">{msg}</p></section>', True


def booking_fragment(cfg: SiteConfig, b: dict) -> tuple[str, bool]:
    """A booked number before check-in (or after it expired or was cancelled)."""
    svc = _service(cfg, b["service"])
    day = dt.date.fromisoformat(b["date"]).strftime("%d/%m/%Y")
    head = (f'<div class="caption">{t("Đặt lịch", "Booking")}</div>'
            f'<div class="service">{t(*svc)}</div>'
            + _row(t("Khung giờ", "Time window"), f'<b>{b["from"]}–{b["to"]}</b> {day}'))
    if b["state"] == "booked":
        body = (_row(t("Mã đặt lịch", "Booking code"), f'<b class="code" id="code">{b["code"]}</b>') +
                f'<div class="qr">{_qr_svg(b["qr_text"])}</div>' +
                f'<p class="hint">{t("Đến trung tâm trong khung giờ này, nhập mã hoặc quét mã QR tại máy lấy số để nhận số thứ tự.", "Come to the center within this window and type the code or scan the QR code at the ticket kiosk to get your number.")}</p>')
        return f'<section class="ticket booked" data-state="booked">{head}{body}</section>', False
    if b["state"] == "checked_in":          # the ticket is being issued right now
        msg = t("Đã xác nhận. Đang cấp số…", "Checked in. Your number is being issued…")
        return f'<section class="ticket booked" data-state="checked_in">{head}<p class="notice">{msg}</p></section>', False
    if b["state"] == "cancelled":
        msg = t("Lịch hẹn này đã bị huỷ.", "This booking was cancelled.")
    else:
        msg = t("Lịch hẹn đã hết hạn vì chưa xác nhận trong khung giờ. Xin mời lấy số mới.",
                "This booking expired: it was not checked in within its window. Please take a new number.")
    return f'<section class="ticket expired" data-state="{b["state"]}">{head}<p class="notice">{msg}</p></section>', True


def not_found_fragment() -> str:
    return (f'<section class="ticket missing" data-state="missing"><p class="notice">'
            f'{t("Không tìm thấy số này. Nếu bạn vừa lấy số, xin thử lại sau ít phút. Số chỉ có giá trị trong ngày.", "Number not found. If you have just taken it, try again in a few minutes. Numbers are valid on the day only.")}'
            f'</p><p class="back"><a href="/">{t("Về bảng số đang gọi", "Back to the board")}</a></p></section>')


# ---------------------------------------------------------------- board
def center_points_fragment(cfg: SiteConfig, points) -> str:
    """The other points of this center and their waits per procedure, as the city knows them
    (qms/citylink/answers.py CityPoint); '' when there are none or the city is not reachable."""
    if not points:
        return ""
    items = []
    for p in points:
        where = f'<p class="where">{keep_words_html(_e(p.address))}</p>' if p.address else ""
        if p.stale:
            body = f'<p class="state">{t("Chưa có số liệu mới", "No recent data")}</p>'
        elif not p.open:
            body = f'<p class="state">{t("Đã đóng cửa", "Closed")}</p>'
        else:
            rows = []
            for sv in p.services:
                vi, en = sv.name_vi or _service(cfg, sv.id)[0], sv.name_en or sv.name_vi or _service(cfg, sv.id)[1]
                wait = (t(*new_ticket_phrase({"est_wait_s": sv.est_wait_s or 0, "waiting": sv.waiting or 0}, cfg.tz))
                        if sv.open else t("Đã đóng", "Closed"))
                rows.append(f'<tr data-service="{_e(sv.id)}"><td>{t(vi, en)}</td><td class="n">{sv.waiting or 0}</td>'
                            f'<td class="wait">{wait}</td></tr>')
            body = f'<table><tbody>{"".join(rows)}</tbody></table>'
        items.append(f'<li class="point" data-site="{_e(p.site)}"><h3>{keep_words_html(_e(p.name))}</h3>{where}{body}</li>')
    return (f'<section class="points" id="points"><h2>{t("Các điểm khác của trung tâm", "Other points of this center")}</h2>'
            f'<ul>{"".join(items)}</ul></section>')


def board_fragment(cfg: SiteConfig, board: dict, points=None) -> str:
    calls = board["calls"]
    latest = ""
    if calls:
        c = calls[0]
        latest = (f'<div class="latest"><span class="number">{c["number"]}</span>'
                  f'<span class="arrow">→</span><span class="counter">{t(*counter_name(cfg, c["counter"]))}</span></div>')
    recent = "".join(f'<li><b>{c["number"]}</b> → {t(*counter_name(cfg, c["counter"]))}</li>' for c in calls[1:8])
    counters = []
    for cv in board["counters"]:
        if cv["status"] == "paused":
            what = t("Tạm nghỉ", "Paused")
        elif cv["serving"]:
            what = f'<b>{cv["serving"]["number"]}</b>'
        elif cv["status"] == "open":
            what = t("Đang chờ", "Free")
        else:
            what = t("Chưa mở", "Closed")
        counters.append(f'<li class="c-{cv["status"]}"><span class="cn">{t(*counter_name(cfg, cv["counter"]))}</span>'
                        f'<span class="cs">{what}</span></li>')
    services = []
    for sv in board["services"]:
        wait = t(*new_ticket_phrase(sv, cfg.tz))        # what the kiosk menu says for a new ticket
        services.append(f'<tr><td>{t(*_service(cfg, sv["service"]))}</td><td class="n">{sv["waiting"]}</td>'
                        f'<td>{wait}</td></tr>')
    notice = board.get("notice") or {}
    note = (f'<p class="board-notice">{t(notice.get("text_vi", ""), notice.get("text_en") or notice.get("text_vi", ""))}</p>'
            if notice.get("text_vi") else "")
    return (f'{note}<section class="calls"><h2>{t("Đang gọi", "Now calling")}</h2>{latest or t("Chưa gọi số nào", "No calls yet")}'
            f'<ul class="recent">{recent}</ul></section>'
            f'<section class="counters"><h2>{t("Các quầy", "Counters")}</h2><ul>{"".join(counters)}</ul></section>'
            f'<section class="services"><h2>{t("Đang chờ theo lĩnh vực", "Waiting by service")}</h2>'
            f'<table><thead><tr><th>{t("Lĩnh vực", "Service")}</th><th>{t("Số người chờ", "Waiting")}</th>'
            f'<th>{t("Chờ dự kiến", "Est. wait")}</th></tr></thead><tbody>{"".join(services)}</tbody></table></section>'
            + center_points_fragment(cfg, points))


# ---------------------------------------------------------------- staff alerts
_ALERT_KIND = {"wait": ("Chờ lâu", "Long wait"), "pause": ("Quầy nghỉ lâu", "Long pause"),
               "print": ("Máy in", "Printer"), "device": ("Thiết bị gửi lỗi", "Faulty device")}


def alerts_fragment(cfg: SiteConfig, alerts: list[dict]) -> str:
    """The live part of /alerts/<site>: every active staff alert, each with its own words
    (the alert's message_vi/message_en, written by whoever raised it)."""
    if not alerts:
        return (f'<section class="alerts"><h2>{t("Cảnh báo", "Alerts")}</h2>'
                f'<p class="alerts-none">{t("Không có cảnh báo nào.", "No alerts.")}</p></section>')
    items = []
    for a in alerts:
        kind = str(a.get("kind", ""))
        label = _ALERT_KIND.get(kind, (kind, kind))
        since = a.get("since")
        when = (f'<span class="alert-since">{t("từ " + _hhmm(cfg, since), "since " + _hhmm(cfg, since))}</span>'
                if isinstance(since, int) and since > 0 else "")
        vi = str(a.get("message_vi", ""))
        items.append(f'<li class="alert alert-{_e(kind)}" data-kind="{_e(kind)}" data-key="{_e(str(a.get("key", "")))}">'
                     f'<div class="alert-kind">{t(*label)}{when}</div>'
                     f'<p class="alert-text">{t(vi, str(a.get("message_en") or vi))}</p></li>')
    return (f'<section class="alerts"><h2>{t(f"Cảnh báo ({len(alerts)})", f"Alerts ({len(alerts)})")}</h2>'
            f'<ul class="alert-list">{"".join(items)}</ul></section>')


# ---------------------------------------------------------------- the page shell
def page(cfg: SiteConfig, title: str, fragment: str, lang: str, stream: str | None,
         kind: str) -> bytes:
    other = t("English", "Tiếng Việt")
    site = cfg.site
    addr = f'<div class="address">{_e(site.address)}</div>' if site.address else ""
    live = f' data-stream="{_e(stream)}"' if stream else ""
    doc = (f'<!doctype html><html lang="{lang}" data-lang="{lang}"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">'
           f'<meta name="referrer" content="no-referrer"><title>{_e(title)}</title>'
           f'<link rel="stylesheet" href="/static/web.css">'
           + ('<noscript><meta http-equiv="refresh" content="30"></noscript>' if stream else "") + '</head>'
           f'<body class="page-{kind}"><header><div class="center">{keep_words_html(_e(site.center))}</div>'
           f'<div class="site">{keep_words_html(_e(site.name))}</div>'
           + (f'<div class="clock" id="clock" data-tz="{_e(site.timezone)}">'
              f'{dt.datetime.now(cfg.tz).strftime("%H:%M")}</div>' if kind == "board" else "")
           + f'<a class="lang" id="lang" href="?lang={"en" if lang == "vi" else "vi"}">{other}</a></header>'
           f'<main id="live"{live} aria-live="polite">{fragment}</main>'
           f'<footer>{addr}<div class="status" id="status"></div></footer>'
           f'<script src="/static/live.js" defer></script></body></html>')
    return unicodedata.normalize("NFC", doc).encode()


def error_page(cfg: SiteConfig, status: int, vi: str, en: str, lang: str = "vi") -> bytes:
    back = f'<p class="back"><a href="/">{t("Về bảng số đang gọi", "Back to the board")}</a></p>'
    return page(cfg, f"{status} – {cfg.site.name}",
                f'<section class="ticket missing"><p class="notice">{t(vi, en)}</p>{back}</section>',
                lang, None, "error")
