"""`BoardRenderer`: draws a BoardModel on a pygame surface, one region at a time.

Only the regions named dirty are drawn; the caller passes the returned rectangles to
`pygame.display.update`, so an idle board costs nothing but the clock once a minute.
Text is NFC and drawn with a TTF that has every Vietnamese letter (Noto Sans or DejaVu
Sans); long service names shrink to fit their box.
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pygame

from qms.core.wait_text import short_phrase
from qms.display import points as points_band
from qms.display.board import (
    ALERTS,
    ALL_REGIONS,
    CALLS,
    COUNTERS,
    HEADER,
    HERO,
    LINK,
    POINTS,
    SERVICES,
    TICKER,
    BoardModel,
    CounterView,
    nfc,
)

# Noto Sans first, as on the kiosk (one face for the whole hall); it lacks → and ●, which
# are drawn from DejaVu Sans (FALLBACK_CHARS); either can be configured with [display] font.
FONT_CANDIDATES = {
    False: ["/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"],
    True: ["/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
           "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"],
}
FALLBACK_FONT = {False: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                 True: "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"}
FALLBACK_CHARS = frozenset("→●")

BG = (10, 28, 56)
PANEL = (18, 45, 86)
TEXT = (240, 244, 250)
DIM = (150, 165, 190)
ACCENT = (255, 190, 30)
HERO_BG = (255, 190, 30)
HERO_TEXT = (10, 28, 56)
PAUSED = (255, 170, 150)       # "Tạm nghỉ": 6:1 on the panel (grey was 3.4:1)
ALERT = (255, 130, 120)        # red text on the dark panel, 5:1
ALERT_BG = (180, 28, 28)       # the alert badge behind white text, 6:1

READABLE_PX = 18          # content text at least this high where the screen allows it

WEEKDAYS = ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"]


def find_font(bold: bool, configured: str = "") -> str:
    for path in ([configured] if configured else []) + FONT_CANDIDATES[bold]:
        if path and Path(path).exists():
            return path
    raise FileNotFoundError("no TTF font with Vietnamese letters found: install fonts-noto-core "
                            "or fonts-dejavu-core, or set [display] font")


def _fit_words(name: str, one_line, wrapped) -> str:
    """The name as it fits: whole, else without its bracket, else cut to whole words + "…"."""
    if one_line(name) or wrapped(name):
        return name
    short = name.split(" (")[0].split(", ")[0]
    if one_line(short) or wrapped(short):
        return short
    words = short.split()
    while len(words) > 1:
        words.pop()
        cut = " ".join(words).rstrip(",;:–-/") + "…"
        if one_line(cut) or wrapped(cut):
            return cut
    return words[0] if words else name


def phrase_cuts(words: list[str]) -> list[int]:
    """Where a name may go to a second line: after a separator ("/", "–", a comma) or before a
    bracket, when it has one (Vietnamese words are syllables apart: "Nhận / kết quả" breaks
    a word); else between any two syllables."""
    cuts = [i for i in range(1, len(words))
            if words[i - 1] in ("/", "–", "-") or words[i - 1].endswith((",", ";", ":")) or words[i].startswith("(")]
    return cuts or list(range(1, len(words)))


class Fonts:
    def __init__(self, regular: str = "", bold: str = ""):
        self.paths = {False: find_font(False, regular), True: find_font(True, bold)}

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one Fonts per display, for its lifetime)
    def get(self, size: int, bold: bool = False) -> pygame.font.Font:
        return pygame.font.Font(self.paths[bold], max(6, size))

    @functools.lru_cache(maxsize=64)  # noqa: B019
    def _fallback(self, size: int, bold: bool) -> pygame.font.Font | None:
        path = FALLBACK_FONT[bold]
        if "noto" not in self.paths[bold].lower() or not Path(path).exists():
            return None
        return pygame.font.Font(path, max(6, size))

    def _runs(self, text: str, size: int, bold: bool) -> list[tuple[str, pygame.font.Font]]:
        """The text in runs of one font: the main one, or DejaVu for FALLBACK_CHARS."""
        main, other = self.get(size, bold), self._fallback(size, bold)
        if other is None or not FALLBACK_CHARS.intersection(text):
            return [(text, main)]
        runs: list[tuple[str, pygame.font.Font]] = []
        for ch in text:
            f = other if ch in FALLBACK_CHARS else main
            if runs and runs[-1][1] is f:
                runs[-1] = (runs[-1][0] + ch, f)
            else:
                runs.append((ch, f))
        return runs

    def size(self, text: str, size: int, bold: bool = False) -> tuple[int, int]:
        runs = self._runs(text, size, bold)
        return sum(f.size(t)[0] for t, f in runs), max(f.size(t)[1] for t, f in runs)

    def render(self, text: str, size: int, bold: bool, color) -> pygame.Surface:
        runs = self._runs(text, size, bold)
        if len(runs) == 1:
            return runs[0][1].render(text, True, color)
        parts = [f.render(t, True, color) for t, f in runs]
        line_h = self.get(size, bold).get_linesize()
        out = pygame.Surface((sum(p.get_width() for p in parts), max(line_h, *(p.get_height() for p in parts))),
                             pygame.SRCALPHA)
        x = 0
        for p in parts:
            out.blit(p, (x, (out.get_height() - p.get_height()) // 2))
            x += p.get_width()
        return out

    @functools.lru_cache(maxsize=1024)  # noqa: B019
    def fit_size(self, text: str, width: int, height: int, bold: bool = False) -> int:
        """The largest size (by line height) at which `text` fits in width x height."""
        lo, hi = 6, max(6, int(height * 0.95))
        while lo < hi:
            mid = (lo + hi + 1) // 2
            w, h = self.size(text, mid, bold)
            if w <= width and h <= height * 1.25:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def render_fit(self, text: str, width: int, height: int, color, bold: bool = False,
                   max_size: int | None = None) -> pygame.Surface:
        text = nfc(text)
        size = self.fit_size(text, width, height, bold)
        if max_size:
            size = min(size, max_size)
        return self.render(text, size, bold, color)

    def render_wrapped(self, text: str, width: int, height: int, color, bold: bool = False,
                       max_size: int | None = None) -> pygame.Surface:
        """Fit on one line, or on two when that gives a larger size (long service names)."""
        text = nfc(text)
        best, best_size = self.wrap_plan(text, width, height, bold)
        size = min(best_size, max_size or best_size)
        rendered = [self.render(line, size, bold, color) for line in best]
        line_h = self.get(size, bold).get_linesize()
        out = pygame.Surface((max(r.get_width() for r in rendered), line_h * len(rendered)), pygame.SRCALPHA)
        for i, r in enumerate(rendered):
            out.blit(r, (0, i * line_h))
        return out

    def wrap_plan(self, text: str, width: int, height: int, bold: bool = False) -> tuple[list[str], int]:
        """The lines (one or two) and size render_wrapped uses for `text`."""
        text = nfc(text)
        words = text.split()
        best = [text]
        best_size = self.fit_size(text, width, height, bold)
        two_lines, two_size = None, 0
        for cut in phrase_cuts(words):
            lines = [" ".join(words[:cut]), " ".join(words[cut:])]
            size = min(self.fit_size(line, width, height // 2, bold) for line in lines)
            if size > two_size:        # the first best cut is the most balanced one
                two_lines, two_size = lines, size
        if two_lines and two_size > best_size * 1.15:
            best, best_size = two_lines, two_size
        return best, best_size

    def missing_glyphs(self, text: str, bold: bool = False) -> set[str]:
        """Characters drawn as a "missing glyph" box (by the font that draws them)."""
        out = set()
        for ch in set(nfc(text)):
            if ch.isspace():
                continue
            font = self._runs(ch, 24, bold)[0][1]
            notdef = pygame.image.tobytes(font.render("\ue000", True, (255, 255, 255)), "RGBA")
            if pygame.image.tobytes(font.render(ch, True, (255, 255, 255)), "RGBA") == notdef:
                out.add(ch)
        return out


@dataclass(frozen=True)
class Layout:
    rects: dict[str, pygame.Rect]
    portrait: bool


def make_layout(width: int, height: int, alerts: bool = False, ticker: bool = True,
                points: bool = False) -> Layout:
    """Regions as fractions of the screen; portrait stacks what landscape puts side by side.
    With `alerts`, a thin strip for staff alerts above the ticker (taken from the panels
    above it); with `points`, a band for the center's other points above that (under the
    recent calls in landscape: the services keep their room); without a
    ticker text, no ticker band (no empty strip at the bottom). Panels keep a margin from
    the screen's edges and a gap between them."""
    if height > width:
        tick = .935 if ticker else 1.0
        low = tick - (.023 if alerts else 0)
        band = max(.03, 40 / height) if points else 0      # one line of >= 18 px
        rects = {HEADER: (0, 0, 1, .07), HERO: (0, .07, 1, .27), CALLS: (0, .27, 1, .43),
                 COUNTERS: (0, .43, 1, .70), SERVICES: (0, .70, 1, low - band)}
        portrait = True
    else:
        tick = .91 if ticker else 1.0
        low = tick - (.04 if alerts else 0)
        band = max(.1, 70 / height) if points else 0      # two lines, under the recent calls
        hd = max(.11, 90 / height)        # two lines of >= 18 px on a short screen
        rects = {HEADER: (0, 0, 1, hd), HERO: (0, hd, .6, .53), CALLS: (0, .53, .6, low - band),
                 COUNTERS: (.6, hd, 1, .57), SERVICES: (.6, .57, 1, low)}
        portrait = False
    if alerts:
        rects[ALERTS] = (0, low, 1, tick)
    if points:
        rects[POINTS] = (0, low - band, .6 if not portrait else 1, low)
    if ticker:
        rects[TICKER] = (0, tick, 1, 1.0)
    margin = max(4, round(min(width, height) * 0.012))
    out = {}
    for name, (x0, y0, x1, y1) in rects.items():
        r = pygame.Rect(round(x0 * width), round(y0 * height), round((x1 - x0) * width), round((y1 - y0) * height))
        if name in (HEADER, TICKER, ALERTS):      # full-width bands: a margin at the sides only
            out[name] = r.inflate(-2 * margin, 0) if name == ALERTS else r
        else:                                     # panels: half a margin each side = one between
            left = r.left + (margin if x0 == 0 else margin // 2)
            right = r.right - (margin if x1 == 1 else margin // 2)
            top = r.top + margin // 2
            low = r.bottom - (margin if y1 == 1 else margin // 2)
            out[name] = pygame.Rect(left, top, right - left, low - top)
    h = out[HEADER]   # the link mark sits between the names and the clock, bottom line
    out[LINK] = pygame.Rect(h.right - h.width * 27 // 100 - h.width // 7, h.bottom - h.height * 2 // 5,
                            h.width // 7, h.height * 2 // 5 - 4)
    return Layout(out, portrait)


class BoardRenderer:
    def __init__(self, surface: pygame.Surface, model: BoardModel, *, center: str, site: str,
                 service_names: dict[str, str], tz=None, fonts: Fonts | None = None,
                 last_calls: int = 6, blink_seconds: float = 10.0, blink_period: float = 0.5,
                 clock_seconds: bool = False, english: bool = True, ticker_speed: float = 120.0,
                 alert_page_seconds: float = 6.0):
        self.surface, self.model = surface, model
        self.center, self.site = nfc(center), nfc(site)
        self.service_names = {k: nfc(v) for k, v in service_names.items()}
        self.tz = tz
        self.fonts = fonts or Fonts()
        self.layout = make_layout(*surface.get_size(), ticker=bool(model.ticker_text()))
        self.last_calls = last_calls
        self.blink_seconds, self.blink_period = blink_seconds, blink_period
        self.clock_seconds, self.english = clock_seconds, english
        self.ticker_speed = ticker_speed
        self._ticker_surface: pygame.Surface | None = None
        self._ticker_text: str | None = None
        self.drawn_hero: int | None = None           # number in the last drawn hero (tests, bench)
        self.drawn_hero_note = ""                    # its bottom line: service, or the paper's number
        self.drawn_alerts = ""                       # text of the last drawn alert strip (tests)
        self._alert_pages: list[str] = []
        self.alert_page_seconds = alert_page_seconds
        self.service_page_seconds = 8.0
        self.points_plan: list = []                  # the points band's pages (points.plan)
        self.points_page_seconds = 8.0
        self.drawn_points: list[str] = []            # the entries on the band's shown page (tests)

    # ------------------------------------------------------------ time-driven state
    def now(self) -> dt.datetime:
        return dt.datetime.now(self.tz)

    def clock_text(self, now: dt.datetime) -> str:
        return now.strftime("%H:%M:%S" if self.clock_seconds else "%H:%M")

    def blink_phase(self, t: float) -> bool | None:
        """None when not blinking; else whether the hero is in its highlighted half."""
        m = self.model
        if not m.blinking(self.blink_seconds):
            return None
        return int((t - m.hero_since) / self.blink_period) % 2 == 0

    # ------------------------------------------------------------ drawing
    def draw(self, regions: set[str], t: float | None = None) -> list[pygame.Rect]:
        t = self.model.clock() if t is None else t
        bands = {ALERTS: bool(self.model.alerts), TICKER: bool(self.model.ticker_text()),
                 POINTS: bool(self.model.points)}
        if any(shown != (name in self.layout.rects) for name, shown in bands.items()):
            # the alert strip, the points band or the ticker comes or goes: the panels around
            # it change size
            self.layout = make_layout(*self.surface.get_size(), alerts=bands[ALERTS], ticker=bands[TICKER],
                                      points=bands[POINTS])
            self._ticker_text = None
            self.drawn_alerts = ""
            self.points_plan, self.drawn_points = [], []
            regions = set(ALL_REGIONS)
        if regions >= ALL_REGIONS - {ALERTS, POINTS}:
            self.surface.fill(BG)                    # the margins and gaps between panels
        out = []
        for name in (HEADER, HERO, CALLS, COUNTERS, SERVICES, TICKER, LINK, ALERTS, POINTS):
            if name not in self.layout.rects:
                continue
            if name in regions or (name == LINK and HEADER in regions):
                rect = self.layout.rects[name]
                self.surface.set_clip(rect)          # nothing spills into a neighbour
                getattr(self, f"_draw_{name}")(rect, t)
                out.append(rect)
        self.surface.set_clip(None)
        return out

    def _panel(self, rect: pygame.Rect, color=BG) -> pygame.Rect:
        self.surface.fill(color, rect)
        return rect.inflate(-max(8, rect.width // 60), -max(6, rect.height // 30))

    def _blit(self, surf: pygame.Surface, rect: pygame.Rect, align: str = "left", valign: str = "center") -> None:
        x = {"left": rect.left, "center": rect.centerx - surf.get_width() // 2,
             "right": rect.right - surf.get_width()}[align]
        y = {"top": rect.top, "center": rect.centery - surf.get_height() // 2,
             "bottom": rect.bottom - surf.get_height()}[valign]
        self.surface.blit(surf, (x, y))

    def _label(self, vi: str, en: str) -> str:
        return f"{vi} / {en}" if self.english and en else vi

    def _draw_header(self, rect: pygame.Rect, t: float) -> None:
        inner = self._panel(rect, PANEL)
        f = self.fonts
        now = self.now()
        right_w = inner.width // 4
        link = self.layout.rects[LINK]
        left = pygame.Rect(inner.left, inner.top, link.left - inner.left - 10, inner.height)
        self._blit(f.render_wrapped(self.center, left.width, int(left.height * 0.6), TEXT, bold=True),
                   pygame.Rect(left.left, left.top, left.width, int(left.height * 0.6)))
        self._blit(f.render_fit(self.site, left.width, int(left.height * 0.36), DIM),
                   pygame.Rect(left.left, left.top + int(left.height * 0.62), left.width, int(left.height * 0.38)))
        right = pygame.Rect(inner.right - right_w, inner.top, right_w, inner.height)
        self._blit(f.render_fit(self.clock_text(now), right.width, int(right.height * 0.5), ACCENT, bold=True),
                   pygame.Rect(right.left, right.top, right.width, int(right.height * 0.55)), "right")
        date = f"{WEEKDAYS[now.weekday()]}, {now:%d/%m/%Y}"
        self._blit(f.render_fit(date, right.width, int(right.height * 0.38), DIM),
                   pygame.Rect(right.left, right.top + int(right.height * 0.55), right.width,
                               int(right.height * 0.45)), "right")

    def _draw_link(self, rect: pygame.Rect, t: float) -> None:
        # a small mark inside the header, left of the clock; cleared when the link is back
        self.surface.fill(PANEL, rect)
        if not self.model.connected:
            text = self.fonts.render_fit("● mất kết nối", rect.width, rect.height, ALERT,
                                         max_size=max(12, rect.height // 2))
            self._blit(text, rect, "right", "bottom")

    def _draw_hero(self, rect: pygame.Rect, t: float) -> None:
        m = self.model
        phase = self.blink_phase(t)
        lit = phase is None or phase
        inner = self._panel(rect, HERO_BG if lit else BG)
        fg = HERO_TEXT if lit else ACCENT
        f = self.fonts
        label_h = inner.height // 7
        self._blit(f.render_fit(self._label("ĐANG MỜI", "Now calling"), inner.width, label_h, fg),
                   pygame.Rect(inner.left, inner.top, inner.width, label_h), "center")
        body = pygame.Rect(inner.left, inner.top + label_h, inner.width, inner.height - 2 * label_h)
        if m.hero is None:
            self._blit(f.render_fit("—", body.width, body.height, fg, bold=True), body, "center")
            self.drawn_hero = None
            return
        text = f"{m.hero.number} → Quầy {m.hero.counter}"
        room = body.inflate(-body.width // 10, -body.height // 10)     # never edge to edge
        self._blit(f.render_fit(text, room.width, room.height, fg, bold=True), body, "center")
        name = self.service_names.get(m.hero.service, "")
        if m.hero.printed_number is not None:
            # a renumbered ticket: the citizen holds paper with another number (docs/display.md)
            name = self._label(f"Vé in số {m.hero.printed_number}", f"Printed ticket {m.hero.printed_number}")
        self.drawn_hero_note = name
        if name:                 # readable, or shortened (the kiosk and the ticket show it whole)
            name = _fit_words(name, lambda x: f.fit_size(x, inner.width, label_h) >= READABLE_PX,
                              lambda x: f.wrap_plan(x, inner.width, label_h)[1] >= READABLE_PX)
            self._blit(f.render_wrapped(name, inner.width, label_h, fg),
                       pygame.Rect(inner.left, inner.bottom - label_h, inner.width, label_h), "center")
        self.drawn_hero = m.hero.number

    def _draw_calls(self, rect: pygame.Rect, t: float) -> None:
        inner = self._panel(rect)
        f = self.fonts
        calls = self.model.recent_calls(self.last_calls)
        title_h = max(inner.height // 8, int(READABLE_PX * 1.3))
        self._blit(f.render_fit(self._label("Số vừa gọi", "Recent calls"), inner.width, title_h, DIM),
                   pygame.Rect(inner.left, inner.top, inner.width, title_h))
        if not calls:
            return
        cols = 2 if self.last_calls > 3 else 1
        rows = -(-self.last_calls // cols)
        area = pygame.Rect(inner.left, inner.top + title_h, inner.width, inner.height - title_h)
        cw, ch = area.width // cols, area.height // rows
        size = f.fit_size("8888 → Quầy 88", cw - 20, int(ch * 0.8), True)
        for i, c in enumerate(calls):
            cell = pygame.Rect(area.left + (i // rows) * cw, area.top + (i % rows) * ch, cw - 20, ch)
            if c.printed_number is not None:        # the paper's number too, in the same cell
                self._blit(f.render_fit(f"{c.number} (vé {c.printed_number}) → Quầy {c.counter}", cell.width,
                                        int(ch * 0.8), TEXT, bold=True), cell)
            else:
                self._blit(f.render(f"{c.number} → Quầy {c.counter}", size, True, TEXT), cell)

    def _grid(self, n: int, area: pygame.Rect) -> tuple[int, int]:
        best = (1, n)
        best_score = 0.0
        for cols in range(1, n + 1):
            rows = -(-n // cols)
            w, h = area.width / cols, area.height / rows
            score = min(w / 1.6, h)            # cells wider than tall, labels not squeezed
            if score > best_score:
                best, best_score = (cols, rows), score
        return best

    def _draw_counters(self, rect: pygame.Rect, t: float) -> None:
        inner = self._panel(rect)
        f = self.fonts
        title_h = max(inner.height // 10, int(READABLE_PX * 1.3))
        self._blit(f.render_fit(self._label("Các quầy", "Counters"), inner.width, title_h, DIM),
                   pygame.Rect(inner.left, inner.top, inner.width, title_h))
        counters = sorted(self.model.counters.values(), key=lambda c: c.counter)
        if not counters:
            return
        area = pygame.Rect(inner.left, inner.top + title_h, inner.width, inner.height - title_h)
        cols, rows = self._grid(len(counters), area)
        cw, ch = area.width // cols, area.height // rows
        for i, c in enumerate(counters):
            cell = pygame.Rect(area.left + (i % cols) * cw, area.top + (i // cols) * ch, cw, ch).inflate(-8, -8)
            self._counter_cell(cell, c)

    def _counter_cell(self, cell: pygame.Rect, c: CounterView) -> None:
        f = self.fonts
        paused = c.status == "paused"
        pygame.draw.rect(self.surface, PANEL, cell, border_radius=max(4, cell.height // 10))
        pad = max(5, cell.width // 20)
        top = pygame.Rect(cell.left + pad, cell.top + 4, cell.width - 2 * pad, int(cell.height * 0.38))
        bottom = pygame.Rect(cell.left + pad, top.bottom, cell.width - 2 * pad, cell.bottom - top.bottom - max(4, cell.height // 10))
        self._blit(f.render_fit(f"Quầy {c.counter}", top.width, top.height, DIM), top, "center")
        if paused:
            text, color = "Tạm nghỉ", PAUSED
        elif c.serving is not None:
            text, color = str(c.serving.number), ACCENT
        else:
            text, color = "—", DIM
        self._blit(f.render_fit(text, bottom.width, bottom.height, color, bold=True), bottom, "center")

    def service_rows(self, area_h: int) -> int:
        """How many service rows fit the panel at a readable size (a row of READABLE_PX text
        with its spacing)."""
        return max(1, area_h // int(READABLE_PX * 1.6))

    def service_pages(self) -> int:
        rect = self.layout.rects[SERVICES]
        n = len(self.model.services)
        return max(1, -(-n // self.service_rows(self._services_area(rect).height))) if n else 1

    def service_page(self, t: float) -> int:
        pages = self.service_pages()
        return int(t // self.service_page_seconds) % pages if pages > 1 else 0

    def _services_area(self, rect: pygame.Rect) -> pygame.Rect:
        inner = rect.inflate(-max(8, rect.width // 60), -max(6, rect.height // 30))
        title_h = max(inner.height // 9, int(READABLE_PX * 1.3))
        return pygame.Rect(inner.left, inner.top + title_h, inner.width, inner.height - title_h)

    def _draw_services(self, rect: pygame.Rect, t: float) -> None:
        """One row per service: name, how many wait, what a new ticket would wait. Rows
        never shrink below a readable size: when they do not all fit, they show page by page
        (`service_page_seconds` each)."""
        inner = self._panel(rect)
        f = self.fonts
        area = self._services_area(rect)
        title_h = area.top - inner.top
        pages = self.service_pages()
        title = self._label("Đang chờ", "Waiting")
        if pages > 1:
            title += f"  ({self.service_page(t) + 1}/{pages})"
        self._blit(f.render_fit(title, inner.width, title_h, DIM), pygame.Rect(inner.left, inner.top, inner.width, title_h))
        services = list(self.model.services.values())
        if not services:
            return
        per = -(-len(services) // pages)           # pages of equal length (4 + 4, not 7 + 1)
        page = self.service_page(t)
        shown = services[page * per:(page + 1) * per]
        row_h = area.height // (per if pages > 1 else max(3, len(services)))
        count_w = area.width // 8
        wait_w = max(area.width // 4, f.size("tạm nghỉ đến 13:00", READABLE_PX)[0] + 4)
        name_w = area.width - count_w - wait_w - 16
        # one size for every name (what the longest allows) and never below READABLE_PX:
        # a name too long for its box at that size loses its detail in brackets, then its
        # last words ("…"); the kiosk shows it whole
        names = {s.service: self.service_names.get(s.service, s.service) for s in services}
        cap = max(READABLE_PX, int(row_h * 0.45))
        size = max(READABLE_PX, min(min(f.wrap_plan(n, name_w, int(row_h * 0.9))[1] for n in names.values()), cap))
        fitted = {k: _fit_words(v, lambda x: f.size(x, size)[0] <= name_w,
                                lambda x: f.wrap_plan(x, name_w, int(row_h * 0.9))[1] >= size)
                  for k, v in names.items()}
        for i, s in enumerate(shown):
            row = pygame.Rect(area.left, area.top + i * row_h, area.width, row_h)
            name_box = pygame.Rect(row.left, row.top, name_w, row.height)
            self._blit(f.render_wrapped(fitted[s.service], name_box.width, int(row.height * 0.9), TEXT,
                                        max_size=size), name_box)
            color = TEXT if s.open else PAUSED
            count_box = pygame.Rect(name_box.right + 8, row.top, count_w, row.height)
            self._blit(f.render_fit(str(s.waiting), count_w, int(row.height * 0.75), color, bold=True,
                                    max_size=int(size * 1.4)), count_box, "right")
            # the wait a new ticket would get: the estimate the kiosk and the phone page show
            wait = short_phrase(msgspec.structs.asdict(s), self.tz)
            self._blit(f.render_fit(wait, wait_w, int(row.height * 0.9), ACCENT, max_size=size),
                       pygame.Rect(row.right - wait_w, row.top, wait_w, row.height), "right")

    def _draw_alerts(self, rect: pygame.Rect, t: float) -> None:
        """For staff, discreet: a small red "Cảnh báo" badge and the alerts' Vietnamese
        messages in small type. What does not fit on one line is shown page by page
        (`alert_page_seconds` each); no scrolling, nothing blinks."""
        self.surface.fill(BG, rect)
        alerts = self.model.alerts.ordered()
        if not alerts:
            self._alert_pages = []
            return
        f = self.fonts
        # small type, and on a narrow (portrait) screen small enough for one whole message
        size = min(f.fit_size("Cảnh báo (8)", rect.width, int(rect.height * 0.62), True),
                   max(10, rect.width // 60))
        pad = max(4, rect.height // 5)
        label = f"Cảnh báo ({len(alerts)})" if len(alerts) > 1 else "Cảnh báo"
        text = f.get(size, True).render(label, True, TEXT)
        badge = pygame.Rect(rect.left + pad, rect.top + 2, text.get_width() + 2 * pad, rect.height - 4)
        pygame.draw.rect(self.surface, ALERT_BG, badge, border_radius=badge.height // 3)
        self._blit(text, badge, "center")
        line = pygame.Rect(badge.right + pad, rect.top, rect.right - badge.right - 2 * pad, rect.height)
        font = f.get(size)
        self._alert_pages = _pages([a.message_vi for a in alerts], font, line.width)
        shown = self._alert_pages[self.alert_page(t)]
        self._blit(font.render(shown, True, TEXT), line)
        self.drawn_alerts = shown

    def _draw_points(self, rect: pygame.Rect, t: float) -> None:
        points_band.draw(self, rect, t, {"panel": PANEL, "title": DIM, "name": TEXT, "wait": ACCENT,
                                         "closed": PAUSED, "stale": DIM}, READABLE_PX)

    def points_page(self, t: float) -> int:
        n = len(self.points_plan)
        return int(t // self.points_page_seconds) % n if n > 1 else 0

    def alert_page(self, t: float) -> int:
        n = len(self._alert_pages)
        return int(t // self.alert_page_seconds) % n if n > 1 else 0

    def alert_pages(self) -> int:
        return len(self._alert_pages)

    def _draw_ticker(self, rect: pygame.Rect, t: float) -> None:
        self.surface.fill(PANEL, rect)
        text = self.model.ticker_text()
        if not text:
            return
        if text != self._ticker_text:
            self._ticker_text = text
            self._ticker_surface = self.fonts.render_fit(text + "      ", 10 ** 6, int(rect.height * 0.6), TEXT)
        s = self._ticker_surface
        y = rect.centery - s.get_height() // 2
        if not self.ticker_moves():
            self.surface.blit(s, (rect.left + 10, y))
            return
        span = s.get_width()
        offset = int(t * self.ticker_speed) % span
        x = rect.left - offset
        clip = self.surface.get_clip()
        self.surface.set_clip(rect)
        while x < rect.right:
            self.surface.blit(s, (x, y))
            x += span
        self.surface.set_clip(clip)

    def ticker_moves(self) -> bool:
        """A text that fits stands still (no redraws); a longer one scrolls."""
        s = self._ticker_surface
        return bool(self._ticker_text) and s is not None and s.get_width() > self.layout.rects[TICKER].width - 20


ALERT_SEPARATOR = "   •   "


def _pages(messages: list[str], font: pygame.font.Font, width: int) -> list[str]:
    """Messages packed into lines of `width` pixels; one too long alone is cut with "…"."""
    pages: list[str] = []
    for msg in messages:
        joined = pages[-1] + ALERT_SEPARATOR + msg if pages else ""
        if pages and font.size(joined)[0] <= width:
            pages[-1] = joined
        elif font.size(msg)[0] <= width:
            pages.append(msg)
        else:
            lo, hi = 0, len(msg)              # the longest prefix that fits with "…"
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if font.size(msg[:mid].rstrip() + "…")[0] <= width:
                    lo = mid
                else:
                    hi = mid - 1
            pages.append(msg[:lo].rstrip() + "…")
    return pages
