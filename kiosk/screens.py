"""The kiosk's screens. Each `draw_*` paints one screen and returns its touch targets,
so what is drawn and what can be touched come from the same layout.

Flows from the idle screen, in touches: a number = 2 (anywhere, service); a priority
number = 3 (Ưu tiên, class, service); a procedure = 3 (Tra cứu, service, procedure),
reading one aloud = 3 (its speaker button on the list); the booking keypad = 1.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pygame

from qms.config.site import SiteConfig
from qms.core.wait_text import away_phrase, menu_phrase, wait_phrase
from qms.kiosk import ui
from qms.kiosk.catalog import Catalog, Procedure
from qms.kiosk.printing import PrintedTicket
from qms.kiosk.texts import t

Hit = tuple[pygame.Rect, tuple]
RENUMBERED_PAGE_MS = 5000            # more renumbered tickets than the band holds: pages in turn


@dataclasses.dataclass
class View:
    """What the screens show; owned and updated by the app."""
    cfg: SiteConfig
    catalog: Catalog
    lang: str = "vi"
    screen: str = "idle"
    priority: str | None = None
    service: str | None = None           # procedures of this service
    procedure: int | None = None         # index in catalog.for_service(service)
    page: int = 0
    ticket: PrintedTicket | None = None
    printing: bool = False
    message: tuple[str, str] = ("", "")  # (vi, en) of a refusal or fault
    greeting: bool = False               # robot: someone is in front of the screen
    booking: bool = False                # booking check-in is configured: show its button
    code: str = ""                       # booking code typed so far (canonical characters)
    title: str = ""                      # text key of a message screen's title ("" = sorry)
    actions: tuple = (("home", ("idle",)),)   # a message screen's buttons: (text key, action)
    service_views: dict = dataclasses.field(default_factory=dict)
    now_ms: int = 0
    renumbered: list = dataclasses.field(default_factory=list)   # (printed, new number), not called yet

    def tr(self, key: str, **kw) -> str:
        return t(key, self.lang, **kw)

    def name(self, obj) -> str:
        return obj.name_en if self.lang == "en" else obj.name_vi


def unit(surface: pygame.Surface) -> float:
    return min(surface.get_size()) / 100.0


def portrait(surface: pygame.Surface) -> bool:
    return surface.get_height() > surface.get_width()


def header(surface: pygame.Surface, v: View, title: str, back: bool = True) -> tuple[pygame.Rect, list[Hit]]:
    """Title bar with Back and the language toggle; returns the content area below it."""
    w, h = surface.get_size()
    u = unit(surface)
    pad = int(1.5 * u)
    bar = pygame.Rect(0, 0, w, max(int(13 * u), ui.MIN_TARGET_PX + 2 * pad))
    pygame.draw.rect(surface, ui.PANEL, bar)
    hits: list[Hit] = []
    bw = int(min(w * 0.24, 30 * u))
    title_rect = bar.inflate(-2 * (bw + 2 * pad), -pad)
    if back:
        r = pygame.Rect(pad, pad, bw, bar.height - 2 * pad)
        ui.button(surface, r, v.tr("back"), u, size=4.6, icon="back")
        hits.append((r, ("back",)))
    r = pygame.Rect(w - bw - pad, pad, bw, bar.height - 2 * pad)
    ui.button(surface, r, v.tr("lang_other"), u, size=4.6, fill=ui.ACCENT, color=ui.ACCENT_TEXT)
    hits.append((r, ("lang",)))
    ui.text(surface, title, title_rect, int(6 * u), bold=True, min_size=int(2.5 * u), max_lines=3)
    content = pygame.Rect(pad, bar.bottom + pad, w - 2 * pad, h - bar.bottom - 2 * pad)
    return content, hits


def grid(area: pygame.Rect, n: int, cols: int, gap: int) -> list[pygame.Rect]:
    rows = max(1, math.ceil(n / cols))
    cw = (area.width - gap * (cols - 1)) // cols
    ch = (area.height - gap * (rows - 1)) // rows
    return [pygame.Rect(area.left + (i % cols) * (cw + gap), area.top + (i // cols) * (ch + gap), cw, ch)
            for i in range(n)]


def service_grid(surface: pygame.Surface, v: View, area: pygame.Rect, icon: bool = False
                 ) -> tuple[list[tuple], pygame.Rect | None, int, int]:
    """(service, rect) for the services on this page, the rect of "more" (None: one page),
    the page and the number of pages. Two columns in landscape, one in portrait; all on one
    page unless a name would not fit its button at a readable size (the longest names of a
    ward's catalogue on a small screen): then fewer, larger buttons and a "more" button."""
    services = v.cfg.services
    u = unit(surface)
    gap = int(1.5 * u)
    for per in (len(services), 6, 4, 3, 2):
        if per > len(services):
            continue
        paged = per < len(services)
        slots = per + (1 if paged else 0)
        cols = 1 if portrait(surface) or slots <= 3 else 2
        rects = grid(area, slots, cols, gap)
        if all(ui.label_fits(v.name(s), r, u, 5.2, sub=True, icon=icon) for s, r in zip(services, rects)) \
                and all(ui.label_fits(v.name(s), rects[0], u, 5.2, sub=True, icon=icon) for s in services):
            break
    pages = math.ceil(len(services) / per)
    page = min(v.page, pages - 1)
    shown = services[page * per:(page + 1) * per]
    return list(zip(shown, rects)), (rects[-1] if paged else None), page, pages


def service_status(v: View, service_id: str) -> str:
    """open | closed | cap, from the retained state (unknown counts as open: the kiosk
    can still issue offline, and the service has the last word)."""
    view = v.service_views.get(service_id)
    if not view:
        return "open"
    if view.get("cap_left") == 0:
        return "cap"
    return "open" if view.get("open", True) else "closed"


def waiting_line(v: View, service_id: str) -> str:
    view = v.service_views.get(service_id)
    if not view:
        return ""
    vi, en = menu_phrase(view, v.cfg.tz)      # the words the board and the phone page use too
    return en if v.lang == "en" else vi


# ---------------------------------------------------------------- screens
def draw_idle(surface: pygame.Surface, v: View) -> list[Hit]:
    w, h = surface.get_size()
    u = unit(surface)
    surface.fill(ui.BG)
    pad = int(3 * u)
    top = pygame.Rect(pad, pad, w - 2 * pad, int(16 * u))
    ui.text(surface, v.cfg.site.center, top, int(5.5 * u), bold=True, max_lines=2, min_size=int(4 * u))
    sub = pygame.Rect(pad, top.bottom, w - 2 * pad, int(7 * u))
    ui.text(surface, v.cfg.site.name, sub, int(4.6 * u), ui.DIM_TEXT, max_lines=1, min_size=int(4 * u))
    now = dt.datetime.fromtimestamp(v.now_ms / 1000, v.cfg.tz)
    clock = pygame.Rect(pad, sub.bottom, w - 2 * pad, int(8 * u))
    ui.text(surface, f"{now:%H:%M} · {now:%d/%m/%Y}", clock, int(5 * u), ui.DIM_TEXT)
    clock = renumbered_band(surface, v, clock.bottom + pad, u) or clock
    actions = [("priority", ("priority_menu",), ui.BUTTON, "star"),
               ("procedures", ("procedures",), ui.BUTTON, "info"),
               ("lang_other", ("lang",), ui.PANEL, "")]
    if v.booking:
        actions.insert(2, ("booking", ("checkin",), ui.BUTTON, "calendar"))
    cols = 2 if portrait(surface) and len(actions) > 3 else len(actions)
    rows = math.ceil(len(actions) / cols)
    btn_h = max(int(15 * u) if rows == 1 else int(12 * u), ui.MIN_TARGET_PX)
    bottom = pygame.Rect(pad, h - pad - rows * btn_h - (rows - 1) * pad, w - 2 * pad, rows * btn_h + (rows - 1) * pad)
    middle = pygame.Rect(pad, clock.bottom + pad, w - 2 * pad, bottom.top - clock.bottom - 2 * pad)
    card = middle.inflate(-int(2 * u), 0)
    # the robot greets with the whole card (someone is in front of it): white on green
    fill, ink = (ui.OK, ui.TEXT) if v.greeting else (ui.ACCENT, ui.ACCENT_TEXT)
    pygame.draw.rect(surface, fill, card, border_radius=int(3 * u))
    inner = card.inflate(-int(4 * u), -int(3 * u))
    big = pygame.Rect(inner.left, inner.top, inner.width, int(inner.height * 0.6))
    ui.text(surface, v.tr("greet_big") if v.greeting else v.tr("take"), big, int(13 * u), ink, bold=True,
            max_lines=2)
    low = pygame.Rect(inner.left, big.bottom, inner.width, inner.height - big.height)
    ui.text(surface, v.tr("hello") if v.greeting else v.tr("touch"), low, int(6 * u), ink,
            max_lines=2, min_size=int(4 * u))
    hits: list[Hit] = []
    for (key, action, fill, icon), r in zip(actions, grid(bottom, len(actions), cols, pad)):
        color = ui.TEXT if fill == ui.PANEL else ui.BUTTON_TEXT
        ui.button(surface, r, v.tr(key), u, fill=fill, color=color, size=5 if cols <= 3 else 4.4, icon=icon)
        hits.append((r, action))
    hits.append((surface.get_rect(), ("menu",)))     # anywhere else: the service menu
    return hits


def renumbered_band(surface: pygame.Surface, v: View, top: int, u: float) -> pygame.Rect | None:
    """The paper tickets printed offline that are called by another number now, one line
    each ("Vé in số 2950 nay là số 2001") on a white band, until they are called: the
    citizen holding the paper learns the number the hall will call. Two lines at a time
    in landscape, three in portrait, in pages of `RENUMBERED_PAGE_MS` when there are more.
    Returns the band's rect (None: nothing to show)."""
    if not v.renumbered:
        return None
    w = surface.get_width()
    pad = int(3 * u)
    per = 3 if portrait(surface) else 2
    pages = math.ceil(len(v.renumbered) / per)
    page = (v.now_ms // RENUMBERED_PAGE_MS) % pages
    shown = v.renumbered[page * per:(page + 1) * per]
    line_h = int(8 * u)
    band = pygame.Rect(pad, top, w - 2 * pad, line_h * len(shown) + int(2 * u))
    pygame.draw.rect(surface, ui.BUTTON, band, border_radius=int(1.5 * u))
    for i, (printed, number) in enumerate(shown):
        line = pygame.Rect(band.left + int(2 * u), band.top + int(u) + i * line_h, band.width - int(4 * u), line_h)
        ui.text(surface, v.tr("renumbered", printed=printed, number=number), line, int(5.5 * u), ui.BUTTON_TEXT,
                bold=True, max_lines=1, min_size=int(4 * u))
    return band


def draw_menu(surface: pygame.Surface, v: View) -> list[Hit]:
    surface.fill(ui.BG)
    u = unit(surface)
    content, hits = header(surface, v, v.tr("choose_service"))
    if v.priority:
        pc = next(p for p in v.cfg.priority_classes if p.id == v.priority)
        band = pygame.Rect(content.left, content.top, content.width, int(8 * u))
        pygame.draw.rect(surface, ui.ACCENT, band, border_radius=int(1.5 * u))
        ui.text(surface, v.tr("priority_for", name=v.name(pc)), band.inflate(-int(2 * u), 0),
                int(5 * u), ui.ACCENT_TEXT, bold=True, max_lines=1)
        content = pygame.Rect(content.left, band.bottom + int(1.5 * u), content.width,
                              content.height - band.height - int(1.5 * u))
    shown, more, page, pages = service_grid(surface, v, content)
    if more is not None:
        ui.button(surface, more, f"{v.tr('more')} ({page + 1}/{pages})", u, fill=ui.PANEL, color=ui.TEXT, size=4.6)
        hits.append((more, ("page", (page + 1) % pages)))
    for s, r in shown:
        status = service_status(v, s.id)
        if status == "open":
            ui.button(surface, r, v.name(s), u, sub=waiting_line(v, s.id), size=5.2)
        else:
            ui.button(surface, r, v.name(s), u, sub=v.tr(status), fill=ui.DISABLED,
                      color=ui.DISABLED_TEXT, size=5.2)
        hits.append((r, ("service", s.id)))
    return hits


def draw_priority(surface: pygame.Surface, v: View) -> list[Hit]:
    surface.fill(ui.BG)
    u = unit(surface)
    content, hits = header(surface, v, v.tr("choose_priority"))
    classes = v.cfg.priority_classes
    cols = 1 if portrait(surface) or len(classes) <= 3 else 2
    for p, r in zip(classes, grid(content, len(classes), cols, int(2 * u))):
        ui.button(surface, r, v.name(p), u, fill=ui.ACCENT, color=ui.ACCENT_TEXT, size=6, icon="star")
        hits.append((r, ("priority", p.id)))
    return hits


def draw_procedure_services(surface: pygame.Surface, v: View) -> list[Hit]:
    surface.fill(ui.BG)
    u = unit(surface)
    content, hits = header(surface, v, v.tr("choose_proc_service"))
    shown, more, page, pages = service_grid(surface, v, content, icon=True)
    if more is not None:
        ui.button(surface, more, f"{v.tr('more')} ({page + 1}/{pages})", u, fill=ui.PANEL, color=ui.TEXT, size=4.6)
        hits.append((more, ("page", (page + 1) % pages)))
    for s, r in shown:
        n = len(v.catalog.for_service(s.id))
        ui.button(surface, r, v.name(s), u, sub=f"{n} {'procedures' if v.lang == 'en' else 'thủ tục'}",
                  size=5.2, icon="info")
        hits.append((r, ("proc_service", s.id)))
    return hits


def procedures_per_page(surface: pygame.Surface) -> int:
    return 6 if portrait(surface) else 4


def draw_procedure_list(surface: pygame.Surface, v: View) -> list[Hit]:
    surface.fill(ui.BG)
    u = unit(surface)
    s = v.cfg.service(v.service)
    content, hits = header(surface, v, v.name(s))
    procs = v.catalog.for_service(s.id)
    if not procs:
        ui.text(surface, v.tr("no_procedures"), content, int(6 * u))
        return hits
    per = procedures_per_page(surface)
    pages = math.ceil(len(procs) / per)
    page = min(v.page, pages - 1)
    shown = list(enumerate(procs))[page * per:(page + 1) * per]
    slots = per + (1 if pages > 1 else 0)
    rows = grid(content, slots, 1, int(1.5 * u))
    for (i, p), r in zip(shown, rows):
        speak = pygame.Rect(r.right - int(r.height * 1.6), r.top, int(r.height * 1.6), r.height)
        row = pygame.Rect(r.left, r.top, r.width - speak.width - int(1.5 * u), r.height)
        ui.button(surface, row, v.name(p), u, size=5)
        ui.button(surface, speak, "", u, fill=ui.ACCENT, color=ui.ACCENT_TEXT, icon="speaker")
        hits.append((speak, ("read", i)))
        hits.append((row, ("proc", i)))
    if pages > 1:
        r = rows[-1]
        ui.button(surface, r, f"{v.tr('more')} ({page + 1}/{pages})", u, fill=ui.PANEL, color=ui.TEXT, size=4.6)
        hits.append((r, ("page", (page + 1) % pages)))
    return hits


def draw_procedure(surface: pygame.Surface, v: View) -> list[Hit]:
    surface.fill(ui.BG)
    u = unit(surface)
    p: Procedure = v.catalog.for_service(v.service)[v.procedure]
    content, hits = header(surface, v, v.name(p))
    btn_h = int(13 * u)
    buttons = pygame.Rect(content.left, content.bottom - btn_h, content.width, btn_h)
    body = pygame.Rect(content.left + int(u), content.top, content.width - int(2 * u),
                       content.height - btn_h - int(2 * u))
    en = v.lang == "en"
    docs = "\n".join(f"• {d}" for d in ((p.documents_en or p.documents_vi) if en else p.documents_vi))
    sections = [(v.tr("documents"), docs), (v.tr("fee"), p.fee_en if en else p.fee_vi),
                (v.tr("time"), p.time_en if en else p.time_vi)]
    note = p.note_en if en else p.note_vi
    sections.append(("", (note + "\n" if note else "") + v.tr("fee_note")))
    ui.sections(surface, sections, body, int(5 * u), min_size=int(3.4 * u))
    r_read, r_take = grid(buttons, 2, 2, int(2 * u))
    ui.button(surface, r_read, v.tr("read"), u, fill=ui.ACCENT, color=ui.ACCENT_TEXT, icon="speaker")
    ui.button(surface, r_take, v.tr("take_here"), u)
    hits += [(r_read, ("read", v.procedure)), (r_take, ("service", v.service))]
    return hits


def _number_block(surface: pygame.Surface, v: View, area: pygame.Rect, u: float) -> None:
    tk = v.ticket
    counters = [c.number for c in v.cfg.counters if tk.service in c.services]
    why = away_phrase((v.service_views.get(tk.service) or {}).get("away"), v.cfg.tz)
    extra = bool(counters) + (why is not None)          # lines under the wait: less for the number
    top = pygame.Rect(area.left, area.top, area.width, int(area.height * 0.14))
    ui.text(surface, v.tr("your_number"), top, int(6 * u), bold=True)
    num = pygame.Rect(area.left, top.bottom, area.width, int(area.height * (0.38 - 0.07 * extra)))
    ui.text(surface, str(tk.number), num, int(34 * u), ui.ACCENT, bold=True, max_lines=1)
    svc = pygame.Rect(area.left, num.bottom, area.width, int(area.height * 0.25))
    label = tk.service_en if v.lang == "en" else tk.service_vi
    if tk.priority_vi:
        label += f" · {v.tr('priority')}"
    ui.text(surface, label, svc, int(5.5 * u), max_lines=2, min_size=int(4 * u))
    ahead = pygame.Rect(area.left, svc.bottom, area.width, area.bottom - svc.bottom)
    # the wait printed on the ticket, whoever is ahead; where; and why, when every counter is away
    wait = wait_phrase(tk.est_wait_s)
    line = v.tr("ahead_wait", n=tk.people_ahead, wait=wait[1] if v.lang == "en" else wait[0])
    if counters:
        line += "\n" + v.tr("counters_one" if len(counters) == 1 else "counters_many",
                            n=", ".join(map(str, counters)))
    if why is not None:
        line += "\n" + (why[1] if v.lang == "en" else why[0])
    ui.text(surface, line, ahead, int(5 * u), ui.DIM_TEXT, max_lines=2, min_size=int(4 * u))


def draw_confirm(surface: pygame.Surface, v: View) -> list[Hit]:
    w, h = surface.get_size()
    u = unit(surface)
    surface.fill(ui.BG)
    pad = int(3 * u)
    btn_h = int(13 * u)
    band = pygame.Rect(0, h - btn_h - 2 * pad - int(11 * u), w, int(11 * u))
    area = pygame.Rect(pad, pad, w - 2 * pad, band.top - 2 * pad)
    _number_block(surface, v, area, u)
    pygame.draw.rect(surface, ui.PANEL if v.printing else ui.OK, band)
    ui.text(surface, v.tr("printing") if v.printing else v.tr("printed"), band.inflate(-2 * pad, 0),
            int(5.5 * u), bold=True, max_lines=2, min_size=int(4 * u))
    r = pygame.Rect(0, 0, int(min(w * 0.5, 60 * u)), btn_h)
    r.midbottom = (w // 2, h - pad)
    ui.button(surface, r, v.tr("done"), u, size=6)
    return [(r, ("idle",)), (surface.get_rect(), ("idle",))]


def draw_screen_ticket(surface: pygame.Surface, v: View) -> list[Hit]:
    """The printer cannot print: the number and its QR code on screen instead of paper."""
    w, h = surface.get_size()
    u = unit(surface)
    surface.fill(ui.BG)
    pad = int(3 * u)
    # the reason and what to do (ticket.print_failed wording: up to three lines)
    band = pygame.Rect(0, 0, w, int(21 * u))
    pygame.draw.rect(surface, ui.ALERT, band)
    ui.text(surface, v.message[1] if v.lang == "en" else v.message[0], band.inflate(-2 * pad, -pad),
            int(5 * u), bold=True, max_lines=3, min_size=int(3.6 * u))
    btn_h = int(13 * u)
    note = pygame.Rect(pad, h - btn_h - 2 * pad - int(9 * u), w - 2 * pad, int(9 * u))
    ui.text(surface, v.tr("screen_ticket"), note, int(5 * u), ui.ACCENT, bold=True, max_lines=2,
            min_size=int(3.6 * u))
    body = pygame.Rect(pad, band.bottom + pad, w - 2 * pad, note.top - band.bottom - 2 * pad)
    if portrait(surface):
        num_area = pygame.Rect(body.left, body.top, body.width, int(body.height * 0.55))
        qr_area = pygame.Rect(body.left, num_area.bottom, body.width, body.height - num_area.height)
    else:
        num_area = pygame.Rect(body.left, body.top, int(body.width * 0.6), body.height)
        qr_area = pygame.Rect(num_area.right + pad, body.top, body.width - num_area.width - pad, body.height)
    _number_block(surface, v, num_area, u)
    ui.qr(surface, v.ticket.qr or str(v.ticket.number), qr_area)
    r = pygame.Rect(0, 0, int(min(w * 0.5, 60 * u)), btn_h)
    r.midbottom = (w // 2, h - pad)
    ui.button(surface, r, v.tr("done"), u, size=6)
    return [(r, ("idle",))]


def draw_message(surface: pygame.Surface, v: View) -> list[Hit]:
    """A refusal (closed, past cut-off, daily cap, a booking that cannot be checked in) or a
    printer fault, in plain words, under a title; with its way out (`v.actions`)."""
    w, h = surface.get_size()
    u = unit(surface)
    surface.fill(ui.BG)
    pad = int(4 * u)
    band = pygame.Rect(0, 0, w, int(16 * u))
    pygame.draw.rect(surface, ui.ALERT, band)
    ui.text(surface, v.tr(v.title or "sorry"), band.inflate(-2 * pad, 0), int(7 * u), bold=True,
            max_lines=1, min_size=int(4.5 * u))
    btn_h = int(14 * u)
    body = pygame.Rect(pad, band.bottom + pad, w - 2 * pad, h - band.bottom - btn_h - 3 * pad)
    vi, en = v.message
    ui.text(surface, en if v.lang == "en" else vi, body, int(7 * u), max_lines=6, min_size=int(4 * u))
    n = len(v.actions)
    row = pygame.Rect(0, 0, int(min(w - 2 * pad, n * 70 * u + (n - 1) * pad)), btn_h)
    row.midbottom = (w // 2, h - pad)
    hits: list[Hit] = []
    for i, ((key, action), r) in enumerate(zip(v.actions, grid(row, n, n, pad))):
        primary = i == 0 and n > 1
        ui.button(surface, r, v.tr(key), u, size=6, icon="" if primary else "back",
                  fill=ui.ACCENT if primary else ui.BUTTON, color=ui.ACCENT_TEXT if primary else ui.BUTTON_TEXT)
        hits.append((r, action))
    return hits


# ---------------------------------------------------------------- booking check-in
CODE_KEYS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"     # the code's alphabet (no I, L, O, U)


def code_field(code: str) -> str:
    """XXXX-XXXX with the characters still to type shown as dots."""
    padded = f"{code:·<8}"
    return f"{padded[:4]}-{padded[4:]}"


def draw_checkin(surface: pygame.Surface, v: View) -> list[Hit]:
    """The booking code keypad: 32 big keys, the code as typed, Delete and Check in."""
    surface.fill(ui.BG)
    u = unit(surface)
    content, hits = header(surface, v, v.tr("enter_code"))
    gap = int(1.5 * u)
    row = pygame.Rect(content.left, content.top, content.width, int(15 * u))
    bw = int(min(row.width * 0.2, 34 * u))
    ok = pygame.Rect(row.right - bw, row.top, bw, row.height)
    delete = pygame.Rect(ok.left - gap - bw, row.top, bw, row.height)
    field = pygame.Rect(row.left, row.top, delete.left - gap - row.left, row.height)
    pygame.draw.rect(surface, ui.BUTTON, field, border_radius=int(1.6 * u))
    ui.text(surface, code_field(v.code), field.inflate(-int(2 * u), -int(u)), int(10 * u), ui.BUTTON_TEXT,
            bold=True, max_lines=1)
    ui.button(surface, delete, v.tr("delete"), u, size=5, fill=ui.PANEL, color=ui.TEXT)
    hits.append((delete, ("key_delete",)))
    if len(v.code) == 8:
        ui.button(surface, ok, v.tr("check_in"), u, size=5, fill=ui.ACCENT, color=ui.ACCENT_TEXT)
        hits.append((ok, ("submit_code",)))
    else:
        ui.button(surface, ok, v.tr("check_in"), u, size=5, fill=ui.DISABLED, color=ui.DISABLED_TEXT)
    hint = pygame.Rect(content.left, row.bottom + int(u), content.width, int(7 * u))
    ui.text(surface, v.tr("code_hint"), hint, int(4 * u), ui.DIM_TEXT, max_lines=2, min_size=int(3.6 * u))
    keys = pygame.Rect(content.left, hint.bottom + int(u), content.width, content.bottom - hint.bottom - int(u))
    cols = 4 if portrait(surface) else 8
    for ch, r in zip(CODE_KEYS, grid(keys, len(CODE_KEYS), cols, gap)):
        ui.button(surface, r, ch, u, size=8)
        hits.append((r, ("key", ch)))
    return hits


def draw_checking(surface: pygame.Surface, v: View) -> list[Hit]:
    """Waiting for `qms web` (up to a few seconds): nothing to touch, so no second check-in."""
    w, h = surface.get_size()
    u = unit(surface)
    surface.fill(ui.BG)
    pad = int(4 * u)
    ui.text(surface, code_field(v.code), pygame.Rect(pad, int(h * 0.22), w - 2 * pad, int(18 * u)), int(14 * u),
            ui.ACCENT, bold=True, max_lines=1)
    ui.text(surface, v.tr("checking"), pygame.Rect(pad, int(h * 0.55), w - 2 * pad, int(16 * u)), int(6 * u),
            bold=True, max_lines=2, min_size=int(4 * u))
    return []


def draw_dim(surface: pygame.Surface, v: View) -> list[Hit]:
    """Robot with no one around: a dark screen that still takes a touch."""
    surface.fill((0, 0, 0))
    u = unit(surface)
    ui.text(surface, v.tr("touch"), surface.get_rect(), int(5 * u), (90, 90, 90))
    return [(surface.get_rect(), ("wake",))]


SCREENS = {
    "idle": draw_idle, "menu": draw_menu, "priority_menu": draw_priority,
    "procedures": draw_procedure_services, "procedure_list": draw_procedure_list,
    "procedure": draw_procedure, "confirm": draw_confirm, "screen_ticket": draw_screen_ticket,
    "message": draw_message, "dim": draw_dim, "checkin": draw_checkin, "checking": draw_checking,
}


def draw(surface: pygame.Surface, v: View) -> list[Hit]:
    return SCREENS[v.screen](surface, v)
