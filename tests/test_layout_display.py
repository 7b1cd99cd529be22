"""Layout suite, hall display and counter board: the board at 800x480, 1024x600, 1280x720,
1920x1080 and portrait 1080x1920, with the example's names and the longest real ones.
Every text the renderer draws is recorded (Fonts.render / BoardRenderer._blit) and checked:
inside its box and its panel, contrast >= 4.5:1 against the panel behind it, and at least
18 px (everything at 1280x720 and larger; at 800x480 and 1024x600 see SMALL_SCREEN_PANELS).
The simulated counter board (qms/counter/number_display.py): caption inside its frame, at
least 18 px, caption and lit segments >= 4.5:1. The example's boards are kept in docs/screens/
(docs/display.md shows them)."""
from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pygame
import pytest
from PIL import Image
from support.layout import LONG_CENTER, LONG_NAMES, MIN_CONTRAST, MIN_PX, SIZES, contrast, keep_png

from qms.citylink.answers import CityPoint, PointService
from qms.display import render as R
from qms.display.board import BoardModel
from qms.protocol.topics import Topics

T = Topics("t")
EXAMPLE_NAMES = {"chung-thuc": "Chứng thực (sao y, chứng thực chữ ký)", "ho-tich": "Hộ tịch (khai sinh, kết hôn, khai tử)",
                 "dat-dai": "Đất đai", "xay-dung": "Xây dựng", "ho-kinh-doanh": "Hộ kinh doanh",
                 "van-hoa-xa-hoi": "Văn hóa – Xã hội (trợ cấp, người có công)", "bhxh-bhyt": "BHXH – BHYT",
                 "nhan-ket-qua": "Nhận kết quả / hỗ trợ nộp trực tuyến"}
# panels whose text may go below 18 px on the two small screens (8 services and 6 counters in
# 480 or 600 lines): measured and listed in docs/display.md, not hidden
SMALL_SCREEN_PANELS: set[str] = set()


def _model(names: dict[str, str]) -> BoardModel:
    m = BoardModel("t", [1, 2, 3, 4, 5, 6], list(names), ticker="Trung tâm làm việc từ 7 giờ 30 đến 17 giờ")
    m.set_connected(True)
    for n in range(1, 7):
        serving = None if n in (4, 5) else {"ticket_id": f"t{1000 + n}", "number": 1000 + n, "service": "chung-thuc"}
        m.handle(T.counter_state(n), json.dumps({"counter": n, "status": "paused" if n == 4 else "open",
                                                 "serving": serving}).encode())
    for i, s in enumerate(names):
        view = {"service": s, "waiting": 2 + 3 * i, "est_wait_s": 240 * (i + 1)}
        if s == "ho-tich":
            view["away"] = {"reason": "break", "until": 1795500000000, "counters": [2, 3]}
        m.handle(T.service_state(s), json.dumps(view).encode())
    m.handle(T.calls, json.dumps({"calls": [{"number": 1000 + n, "counter": n, "service": "chung-thuc",
                                             "ticket_id": f"t{1000 + n}", "at": 100 - n} for n in (1, 2, 3, 6)]}).encode())
    return m


def _points(long_names: bool) -> list[CityPoint]:
    """Other points of the center as the city says them: open with a wait, closed, silent."""
    names = (["Điểm tiếp nhận số 2 – Nhà văn hóa khu phố 3 (đường Trần Não)", "Điểm tiếp nhận phụ Cù Lao Dung",
              "Điểm tiếp nhận xã đảo Thạnh An (bến phà Cần Thạnh)"] if long_names
             else ["Điểm tiếp nhận số 2", "Điểm Cù Lao Dung", "Điểm Thạnh An"])
    return [CityPoint("p2", "c", names[0], stale=False, open=True, services=[
                PointService("ho-tich", waiting=9, est_wait_s=1980, open=True),
                PointService("chung-thuc", waiting=4, est_wait_s=720, open=True)]),
            CityPoint("p3", "c", names[1], stale=False, open=False),
            CityPoint("p4", "c", names[2], stale=True)]


def _render(size, names, center, monkeypatch, points=None, ticker=True):
    pygame.display.init()
    pygame.font.init()
    made: dict[int, tuple] = {}
    drawn: list[dict] = []
    render, wrapped, blit = R.Fonts.render, R.Fonts.render_wrapped, R.BoardRenderer._blit

    def rec_render(self, text, size_px, bold, color):
        out = render(self, text, size_px, bold, color)
        made[id(out)] = (text, size_px, color)
        return out

    def rec_wrapped(self, text, width, height, color, bold=False, max_size=None):
        out = wrapped(self, text, width, height, color, bold, max_size)
        lines, size_px = self.wrap_plan(R.nfc(text), width, height, bold)
        made[id(out)] = (text, min(size_px, max_size or size_px), color)
        return out

    def rec_blit(self, surf, rect, align="left", valign="center"):
        info = made.get(id(surf))
        if info is not None:
            inside = rect.clip(self.surface.get_rect())
            bg = self.surface.get_at((inside.left + 1, inside.top + 1))[:3]
            drawn.append({"text": info[0], "px": info[1], "color": info[2][:3], "bg": bg,
                          "size": surf.get_size(), "rect": pygame.Rect(rect), "clip": self.surface.get_clip()})
        return blit(self, surf, rect, align, valign)

    monkeypatch.setattr(R.Fonts, "render", rec_render)
    monkeypatch.setattr(R.Fonts, "render_wrapped", rec_wrapped)
    monkeypatch.setattr(R.BoardRenderer, "_blit", rec_blit)
    m = _model(names)
    m.set_points(points)
    if not ticker:
        m.default_ticker = ""
    surf = pygame.Surface(size)
    r = R.BoardRenderer(surf, m, center=center, site="Điểm tiếp nhận chính", service_names=names,
                        last_calls=6, tz=ZoneInfo("Asia/Ho_Chi_Minh"))
    r.draw(m.take_dirty(), t=m.clock())
    return surf, r, drawn


def _region(r: R.BoardRenderer, rect: pygame.Rect) -> str:
    return next((n for n, reg in r.layout.rects.items() if n != R.LINK and reg.collidepoint(rect.center)), "?")


@pytest.mark.parametrize("points", ["", "ticker", "no-ticker"], ids=["alone", "other-points", "other-points-no-ticker"])
@pytest.mark.parametrize("long_names", [False, True], ids=["example", "long-names"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_board_holds_its_texts(size, long_names, points, monkeypatch):
    """Every text inside its box and panel, readable, with contrast; with the band of the
    center's other points (docs/display.md) too, at every size."""
    names = LONG_NAMES if long_names else EXAMPLE_NAMES
    center = LONG_CENTER if long_names else "Trung tâm Phục vụ hành chính công phường An Khánh"
    surf, r, drawn = _render(size, names, center, monkeypatch, _points(long_names) if points else None,
                             ticker=points != "no-ticker")
    failures, smallest = [], {}
    small_screen = size[0] * size[1] < 1280 * 720
    for d in drawn:
        region = _region(r, d["rect"])
        what = f"{region}: {d['text'][:40]!r}"
        w, h = d["size"]
        if region != R.TICKER and (w > d["rect"].width + 1 or h > d["rect"].height * 1.3 + 1):
            failures.append(f"{what} {w}x{h} outside its box {d['rect'].size}")
        if region != R.TICKER and not d["clip"].contains(pygame.Rect(d["rect"].left, d["rect"].top, min(w, d["rect"].width), 1)):
            failures.append(f"{what} outside its panel")
        if contrast(d["color"], d["bg"]) < MIN_CONTRAST:
            failures.append(f"{what}: contrast {contrast(d['color'], d['bg']):.1f}:1")
        smallest[region] = min(smallest.get(region, 999), d["px"])
        if d["px"] < MIN_PX and not (small_screen and region in SMALL_SCREEN_PANELS):
            failures.append(f"{what} is {d['px']} px")
    assert {R.HEADER, R.HERO, R.CALLS, R.COUNTERS, R.SERVICES} <= set(smallest), smallest
    if points:
        assert R.POINTS in smallest and r.drawn_points, smallest
        _points_band_holds(r, drawn, failures)
    else:
        assert R.POINTS not in r.layout.rects
    if not long_names and points != "no-ticker":
        keep_png(surf, f"display-{size[0]}x{size[1]}" + ("-points" if points else ""))
    print(f"{size} {'long' if long_names else 'example'} smallest px per panel: {smallest}")
    assert not failures, "\n".join(failures[:30])


def _points_band_holds(r, drawn, failures) -> None:
    """The band: every point's state whole on its page (a long name loses its end, not its
    state), the entries of a page apart, in the band's order."""
    band = r.layout.rects[R.POINTS]
    texts = [d for d in drawn if band.contains(d["rect"])]
    shown = [d["text"] for d in texts]
    for state in ("chờ từ 12 phút", "đã đóng cửa", "chưa có số liệu mới"):
        if not any(state == e[1] for page in r.points_plan for e in page):
            failures.append(f"points: {state!r} not in {r.points_plan}")
    pages = [[e[0] + e[1] for e in page] for page in r.points_plan]
    drawn_entries = [a + b for a, b in zip(shown[1::2], shown[2::2])]
    if shown[0].rstrip(":") != "Các điểm tiếp nhận khác" or drawn_entries != r.drawn_points or r.drawn_points not in pages:
        failures.append(f"points: drawn {shown}, pages {pages}")
    right = [d["rect"].left + d["size"][0] for d in texts]
    if max(right) > band.right:
        failures.append(f"points: text to {max(right)} beyond the band's {band.right}")


def test_no_ticker_band_without_a_text_and_margins_at_the_edges():
    pygame.display.init()
    pygame.font.init()
    m = _model(EXAMPLE_NAMES)
    m.default_ticker = ""
    surf = pygame.Surface((1280, 720))
    r = R.BoardRenderer(surf, m, center="Trung tâm", site="Điểm", service_names=EXAMPLE_NAMES)
    r.draw(m.take_dirty(), t=m.clock())
    assert R.TICKER not in r.layout.rects
    assert max(x.bottom for x in r.layout.rects.values()) >= 720 - 12       # panels reach down
    hero = r.layout.rects[R.HERO]
    assert hero.left >= 8 and surf.get_at((2, hero.centery))[:3] == R.BG     # a margin, not edge to edge


def test_counter_board_png(tmp_path):
    from support.site import TEST_CONFIG

    from qms.config.site import load_config
    from qms.counter.number_display import open_number_display
    cfg = load_config(TEST_CONFIG)
    board = open_number_display(cfg.counter_terminal.number_display, 2, caption="QUẦY 2",
                                png=str(tmp_path / "board.png"))
    assert board.show("2005")
    board.close()
    pngs = list(tmp_path.glob("*.png"))
    assert pngs
    keep_png(pngs[0], "counter-board")


def _bbox(img, colour):
    """The box of the pixels of one colour (anti-aliased edges aside), or None."""
    from PIL import ImageChops
    diff = ImageChops.difference(img, Image.new("RGB", img.size, colour)).convert("L")
    return diff.point(lambda v: 255 if v < 8 else 0).getbbox()


@pytest.mark.parametrize("digits", [2, 4, 8])
@pytest.mark.parametrize("caption", ["QUẦY 2", "QUẦY 12", "QUẦY 12 – Chứng thực bản sao từ bản chính"],
                         ids=["short", "two-digit", "long"])
def test_counter_board_holds_its_texts(digits, caption):
    """The simulated counter board: the caption inside the frame (a margin all round, above
    the digits, not cut), at least 18 px; the caption and the lit segments at least 4.5:1
    against what is behind them (the dark board, the unlit segments)."""
    from qms.config.counter import NumberDisplayConfig
    from qms.counter import number_display as N
    board = N.SimulatedNumberDisplay(NumberDisplayConfig(digits=digits), caption=caption)
    img = board.render("8" * digits)
    px, lines = board.caption_layout()
    assert px >= MIN_PX and " ".join(lines) == caption
    font = N._font(px)
    for line in lines:
        assert font.getlength(line) <= img.width - 2 * board.GAP, line
    text, lit = _bbox(img, N.CAPTION), _bbox(img, N.LIT)
    assert text and lit, (text, lit)
    margin = 8
    assert text[0] >= margin and text[2] <= img.width - margin and text[1] >= margin, (text, img.size)
    assert text[3] + margin <= lit[1], f"caption {text} runs into the digits {lit}"
    assert lit[0] >= margin and lit[2] <= img.width - margin and lit[3] <= img.height - margin
    assert len(img.getcolors(1 << 16)) > 3             # the colours below are the ones drawn
    for fg, bg in [(N.CAPTION, N.BG), (N.LIT, N.BG), (N.LIT, N.UNLIT)]:
        assert contrast(fg, bg) >= MIN_CONTRAST, (fg, bg, contrast(fg, bg))
