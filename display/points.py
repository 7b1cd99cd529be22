"""The hall display's band "Các điểm tiếp nhận khác": the other points of this center, as the
city last said (qms.citylink, read by the app in the background), one entry per point: its
name and its shortest wait for a new ticket ("chờ từ 12 phút"), or that it is closed or has
sent nothing lately. What does not fit on one line is shown page by page. Nothing here is
announced. docs/display.md, "Other points of the center".
"""
from __future__ import annotations

import pygame

from qms.core.wait_text import NO_WAIT_S, short_phrase
from qms.display.board import nfc

TITLE = "Các điểm tiếp nhận khác:"
GAP_EM = 1.5                  # space between two points, in line heights


def point_state(p) -> tuple[str, str]:
    """What the band says of one point (qms.citylink CityPoint): (text, kind), kind one of
    "wait", "closed", "stale". The wait is the shortest of its open procedures, worded as
    the display's own column says it (qms.core.wait_text.short_phrase)."""
    if p.stale:
        return "chưa có số liệu mới", "stale"
    services = [s for s in p.services if s.open]
    if not p.open or not services:
        return "đã đóng cửa", "closed"
    best = min(services, key=lambda s: (s.est_wait_s or 0, s.waiting or 0))
    est, waiting = int(best.est_wait_s or 0), int(best.waiting or 0)
    if est < NO_WAIT_S and not waiting:
        if all(not s.waiting for s in services):
            return "không phải chờ", "wait"
        return "có lĩnh vực không phải chờ", "wait"
    if est < NO_WAIT_S:
        return "chờ dưới 1 phút", "wait"
    return "chờ từ " + short_phrase({"est_wait_s": est, "waiting": waiting}, None), "wait"


def _shorten(name: str, fits) -> str:
    """The name whole, else without its detail (in brackets, after a dash or a comma), else
    cut to whole words + "…"."""
    short = name
    for sep in (" (", " – ", " - ", ", "):
        short = short.split(sep)[0]
        if fits(short):
            return name if fits(name) else short
    words = short.split()
    while len(words) > 1:
        words.pop()
        cut = " ".join(words).rstrip(",;:–-/") + "…"
        if fits(cut):
            return cut
    return words[0] if words else name


def plan(points: list, font_width, width: int, gap: int) -> list[list[tuple[str, str, str]]]:
    """Pages of entries (name + ": ", state, kind) that fit `width` pixels side by side;
    `font_width(text, bold)` measures. A point too long alone loses the end of its name,
    never its state."""
    pages: list[list[tuple[str, str, str]]] = []
    used = 0
    for p in points:
        state, kind = point_state(p)
        room = width - font_width(state, False)
        name = _shorten(nfc(p.name), lambda n, room=room: font_width(n + ": ", True) <= room) + ": "
        w = font_width(name, True) + font_width(state, False)
        if pages and used + gap + w <= width:
            pages[-1].append((name, state, kind))
            used += gap + w
        else:
            pages.append([(name, state, kind)])
            used = w
    return pages


def draw(r, rect: pygame.Rect, t: float, colors: dict, min_px: int) -> None:
    """Draw the band for BoardRenderer `r` (render.py) in `rect`; `colors` by role: panel,
    title, name, and the kinds of point_state."""
    inner = r._panel(rect, colors["panel"])
    f = r.fonts
    # the title on a line of its own when the band has room for two lines, else before the points
    lines = 2 if inner.height >= 2 * f.size(TITLE, min_px)[1] else 1
    row_h = inner.height // lines
    # small type: as the band's height allows, and no larger than its width suggests
    size = max(min_px, min(f.fit_size(TITLE, 10 ** 6, int(row_h * 0.8)), inner.width // 36))
    title = f.render(TITLE.rstrip(":") if lines == 2 else TITLE, size, False, colors["title"])
    line_h = title.get_height()
    gap = int(line_h * GAP_EM)
    r._blit(title, pygame.Rect(inner.left, inner.top, title.get_width(), row_h))
    left = inner.left if lines == 2 else inner.left + title.get_width() + line_h // 2
    top = inner.top + row_h * (lines - 1)
    r.points_plan = plan(r.model.points, lambda s, bold: f.size(s, size, bold)[0], inner.right - left, gap)
    if not r.points_plan:
        return
    page = r.points_plan[r.points_page(t)]
    x = left
    for name, state, kind in page:
        for text, bold, color in ((name, True, colors["name"]), (state, False, colors[kind])):
            s = f.render(text, size, bold, color)
            r._blit(s, pygame.Rect(x, top, s.get_width(), row_h))
            x += s.get_width()
        x += gap
    r.drawn_points = [n + s for n, s, _ in page]
