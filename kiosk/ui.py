"""Drawing primitives of the kiosk: fonts, fitted text, buttons, icons, QR codes.

Sizes are in units of `u` = 1 % of the screen's shorter side, so the same layout works
at 1024x600, 1280x800, 1920x1080 and in portrait. Text shrinks to fit but never below
3.6 u (22 px on a 600-px screen, a 4.7 mm line on a 10" panel): readable from a metre. Colours are
white or black on dark blue / yellow, contrast ratio above 7:1.
"""
from __future__ import annotations

import os
import unicodedata
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from qms.core.words import COMPOUNDS, keep_words  # noqa: E402,F401  (COMPOUNDS: for the layout tests)

# (regular, bold): fonts with every Vietnamese letter form (checked by the tests)
FONT_CANDIDATES = [
    ("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf"),
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
]

BG = (8, 36, 77)              # dark blue
PANEL = (18, 58, 112)
TEXT = (255, 255, 255)
DIM_TEXT = (205, 220, 240)
BUTTON = (255, 255, 255)
BUTTON_TEXT = (8, 36, 77)
ACCENT = (255, 204, 0)        # yellow: priority, primary actions
ACCENT_TEXT = (0, 0, 0)
DISABLED = (92, 106, 128)
DISABLED_TEXT = (235, 235, 235)
ALERT = (176, 0, 32)
OK = (0, 122, 61)


def font_paths() -> tuple[str, str]:
    env = os.environ.get("QMS_KIOSK_FONT")
    if env and Path(env).exists():
        return env, os.environ.get("QMS_KIOSK_FONT_BOLD", env)
    for regular, bold in FONT_CANDIDATES:
        if Path(regular).exists():
            return regular, bold if Path(bold).exists() else regular
    raise RuntimeError("no font with Vietnamese letters: apt-get install fonts-noto-core or fonts-dejavu-core")


@lru_cache(maxsize=128)
def font(size: int, bold: bool = False) -> pygame.font.Font:
    if not pygame.font.get_init():
        pygame.font.init()
    regular, bold_path = font_paths()
    return pygame.font.Font(bold_path if bold else regular, max(8, int(size)))


MIN_PX = 18                 # no text smaller than this on any screen (18 px at 800x480)
MIN_TARGET_PX = 60          # no touch target smaller than this

def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def wrap(text: str, f: pygame.font.Font, width: int) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}" if line else word
            if f.size(trial)[0] <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


# tests: a list that every drawn text is appended to (TextDraw), to check the layout
RECORD: list | None = None


def fit_sized(text: str, rect: pygame.Rect, size: int, bold: bool = False, min_size: int = 10,
              max_lines: int = 99) -> tuple[pygame.font.Font, list[str], int]:
    """The largest font (<= size, >= MIN_PX) at which `text`, wrapped, fits in `rect`."""
    text = keep_words(nfc(text))
    min_size = max(int(min_size), MIN_PX)
    s = max(int(size), min_size)
    while True:
        f = font(s, bold)
        lines = wrap(text, f, rect.width)
        fits = (len(lines) <= max_lines and len(lines) * f.get_linesize() <= rect.height
                and all(f.size(x)[0] <= rect.width for x in lines))
        if fits or s <= min_size:
            return f, lines, s
        s = max(min_size, int(s * 0.9))


def fit(text: str, rect: pygame.Rect, size: int, bold: bool = False, min_size: int = 10,
        max_lines: int = 99) -> tuple[pygame.font.Font, list[str]]:
    f, lines, _ = fit_sized(text, rect, size, bold, min_size, max_lines)
    return f, lines


def text(surface: pygame.Surface, s: str, rect: pygame.Rect, size: int, color=TEXT, bold: bool = False,
         align: str = "center", valign: str = "middle", min_size: int = 10, max_lines: int = 99) -> pygame.Rect:
    """Draw `s` wrapped and shrunk to fit `rect`. Returns the rect actually used."""
    f, lines, px = fit_sized(s, rect, size, bold, min_size, max_lines)
    if RECORD is not None:
        inside = rect.clip(surface.get_rect())
        bg = surface.get_at((inside.left + 1, inside.top + 1))[:3] if inside.width > 2 and inside.height > 2 else None
        RECORD.append({"text": s, "rect": pygame.Rect(rect), "px": px, "lines": list(lines),
                       "widths": [f.size(x)[0] for x in lines], "height": f.get_linesize() * len(lines),
                       "color": tuple(color)[:3], "bg": bg, "max_lines": max_lines})
    lh = f.get_linesize()
    total = lh * len(lines)
    y = {"top": rect.top, "middle": rect.centery - total // 2, "bottom": rect.bottom - total}[valign]
    used = pygame.Rect(rect.left, y, 0, total)
    for line in lines:
        img = f.render(line, True, color)
        r = img.get_rect()
        r.top = y
        if align == "center":
            r.centerx = rect.centerx
        elif align == "left":
            r.left = rect.left
        else:
            r.right = rect.right
        surface.blit(img, r)
        used.union_ip(r)
        y += lh
    return used


def sections(surface: pygame.Surface, parts: list[tuple[str, str]], rect: pygame.Rect, size: int,
             color=TEXT, heading_color=None, min_size: int = 10) -> None:
    """Headed blocks, one under the other ("Lệ phí" in bold and yellow above its text, not
    run into it), all at the largest common size that fits `rect`."""
    heading_color = heading_color or ACCENT
    s = max(int(size), MIN_PX)
    floor = max(int(min_size), MIN_PX)
    while True:
        body, head = font(s), font(s, True)
        blocks = []
        for title, txt in parts:
            h_lines = wrap(keep_words(nfc(title)), head, rect.width) if title else []
            b_lines = wrap(keep_words(nfc(txt)), body, rect.width) if txt else []
            blocks.append((h_lines, b_lines))
        gap = s // 2
        total = sum(len(h) * head.get_linesize() + len(b) * body.get_linesize() for h, b in blocks) + gap * (len(blocks) - 1)
        if total <= rect.height or s <= floor:
            break
        s = max(floor, int(s * 0.9))
    y = rect.top
    for h_lines, b_lines in blocks:
        for lines, f, c in ((h_lines, head, heading_color), (b_lines, body, color)):
            if not lines:
                continue
            box = pygame.Rect(rect.left, y, rect.width, f.get_linesize() * len(lines))
            if RECORD is not None:
                RECORD.append({"text": "\n".join(lines), "rect": pygame.Rect(box.left, box.top, rect.width, max(0, min(box.height, rect.bottom - box.top))),
                               "px": s, "lines": lines, "widths": [f.size(x)[0] for x in lines],
                               "height": box.height, "color": tuple(c)[:3],
                               "bg": surface.get_at((rect.left + 1, min(y + 1, surface.get_height() - 1)))[:3],
                               "max_lines": 99})
            for line in lines:
                surface.blit(f.render(line, True, c), (rect.left, y))
                y += f.get_linesize()
        y += gap


def _label_box(rect: pygame.Rect, u: float, sub: bool, icon: bool) -> pygame.Rect:
    inner = rect.inflate(-int(3 * u), -int(1.6 * u))
    if icon:
        side = min(inner.height, int(6 * u))
        inner.width -= side + int(u)
        inner.left += side + int(u)
    if sub:
        return pygame.Rect(inner.left, inner.top, inner.width, int(inner.height * 0.68))
    return inner


def label_fits(label: str, rect: pygame.Rect, u: float, size: float = 5.0, sub: bool = False,
               icon: bool = False) -> bool:
    """Whether a button's label fits its box at a readable size (for paging a menu)."""
    box = _label_box(rect, u, sub, icon)
    f, lines, _ = fit_sized(label, box, int(size * u), True, int(3 * u), 3)
    return len(lines) <= 3 and f.get_linesize() * len(lines) <= box.height and \
        all(f.size(x)[0] <= box.width for x in lines)


def button(surface: pygame.Surface, rect: pygame.Rect, label: str, u: float, *, sub: str = "",
           fill=BUTTON, color=BUTTON_TEXT, size: float = 5.0, icon: str = "") -> None:
    radius = int(1.6 * u)
    pygame.draw.rect(surface, fill, rect, border_radius=radius)
    pygame.draw.rect(surface, TEXT if fill != BUTTON else PANEL, rect, width=max(2, int(u * 0.4)),
                     border_radius=radius)
    inner = rect.inflate(-int(3 * u), -int(1.6 * u))
    if icon and not label:                 # an icon alone: in the middle of its button
        side = min(inner.height, inner.width, int(10 * u))
        draw_icon(surface, icon, pygame.Rect(inner.centerx - side // 2, inner.centery - side // 2, side, side), color)
        return
    if icon:
        side = min(inner.height, int(6 * u))
        icon_rect = pygame.Rect(inner.left, inner.centery - side // 2, side, side)
        draw_icon(surface, icon, icon_rect, color)
        inner.width -= side + int(u)
        inner.left += side + int(u)
    if sub:
        main = pygame.Rect(inner.left, inner.top, inner.width, int(inner.height * 0.68))
        low = pygame.Rect(inner.left, main.bottom, inner.width, inner.height - main.height)
        text(surface, label, main, int(size * u), color, bold=True, min_size=int(3 * u), max_lines=3)
        text(surface, sub, low, int(4.2 * u), color, min_size=int(3 * u), max_lines=2)
    else:
        text(surface, label, inner, int(size * u), color, bold=True, min_size=int(3 * u), max_lines=3)


def draw_icon(surface: pygame.Surface, name: str, r: pygame.Rect, color) -> None:
    """Icons drawn as shapes: the fonts have no emoji, and shapes stay sharp at every size."""
    w, h = r.width, r.height
    if name == "speaker":
        body = [(r.left + w * .08, r.top + h * .36), (r.left + w * .28, r.top + h * .36),
                (r.left + w * .52, r.top + h * .14), (r.left + w * .52, r.top + h * .86),
                (r.left + w * .28, r.top + h * .64), (r.left + w * .08, r.top + h * .64)]
        pygame.draw.polygon(surface, color, body)
        lw = max(2, w // 14)
        for k in (0.22, 0.36):
            arc = pygame.Rect(0, 0, int(w * k * 2), int(h * k * 2.2))
            arc.center = (int(r.left + w * .5), r.centery)
            pygame.draw.arc(surface, color, arc, -0.9, 0.9, lw)
    elif name == "back":
        pts = [(r.left + w * .15, r.centery), (r.left + w * .55, r.top + h * .2), (r.left + w * .55, r.top + h * .8)]
        pygame.draw.polygon(surface, color, pts)
        pygame.draw.rect(surface, color, (r.left + w * .5, r.centery - h * .1, w * .35, h * .2))
    elif name == "star":
        import math
        cx, cy, ro, ri = r.centerx, r.centery, min(w, h) * .45, min(w, h) * .19
        pts = [(cx + (ro if i % 2 == 0 else ri) * math.sin(i * math.pi / 5),
                cy - (ro if i % 2 == 0 else ri) * math.cos(i * math.pi / 5)) for i in range(10)]
        pygame.draw.polygon(surface, color, pts)
    elif name == "calendar":
        lw = max(2, w // 12)
        page = pygame.Rect(r.left + w * .1, r.top + h * .2, w * .8, h * .7)
        pygame.draw.rect(surface, color, page, lw, border_radius=max(2, w // 14))
        pygame.draw.rect(surface, color, (page.left, page.top, page.width, h * .18))
        for x in (.32, .68):
            pygame.draw.line(surface, color, (r.left + w * x, r.top + h * .08), (r.left + w * x, r.top + h * .3), lw)
        for i in range(3):
            cell = max(2, int(w * .1))
            pygame.draw.rect(surface, color, (page.left + w * (.12 + .22 * i), page.top + h * .32, cell, cell))
    elif name == "info":
        pygame.draw.circle(surface, color, r.center, min(w, h) // 2, max(2, w // 12))
        pygame.draw.rect(surface, color, (r.centerx - w * .06, r.top + h * .42, w * .12, h * .34))
        pygame.draw.circle(surface, color, (r.centerx, int(r.top + h * .28)), max(2, w // 12))


def qr(surface: pygame.Surface, data: str, rect: pygame.Rect) -> pygame.Rect:
    """A QR code (black on white, with its quiet zone) as large as fits in `rect`."""
    import qrcode
    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()
    n = len(matrix)
    cell = max(1, min(rect.width, rect.height) // n)
    side = cell * n
    out = pygame.Rect(0, 0, side, side)
    out.center = rect.center
    pygame.draw.rect(surface, (255, 255, 255), out)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                pygame.draw.rect(surface, (0, 0, 0), (out.left + x * cell, out.top + y * cell, cell, cell))
    return out
