"""Layout suite, kiosk and robot: every screen at 800x480, 1024x600, 1280x720, 1920x1080 and
portrait 1080x1920, with the example config and with the long real names of a ward's
catalogue. Every text the screens draw is recorded (qms.kiosk.ui.RECORD) and checked: it
stays inside its box, no word is cut across lines, it is at least 18 px, and it stands
out from its background by at least 4.5:1; every touch target is at least 60 px. The
example's screens are kept in docs/screens/ (docs/kiosk.md shows them)."""
from __future__ import annotations

import pygame
import pytest
from support.layout import (
    LONG_CENTER,
    MIN_CONTRAST,
    MIN_PX,
    MIN_TARGET,
    PLACE_NAMES,
    SIZES,
    contrast,
    cut_words,
    keep_png,
    stress,
)
from support.site import free_port, make_config
from support.wait import wait_until

from qms.config.site import load_config
from qms.kiosk import ui
from qms.kiosk.app import KioskApp
from qms.kiosk.printing import MemoryPrinter
from qms.kiosk.voice import SilentSpeaker
from qms.sim.kiosk_testing import tap

KEPT = ("idle", "menu", "procedure", "confirm", "robot-greeting")
WORDS = [w for w in ui.COMPOUNDS if " " in w] + list(PLACE_NAMES)


def _views(app):
    for sid, waiting, est, cap, open_ in (("chung-thuc", 12, 1500, 300, True), ("dat-dai", 3, 600, 0, True),
                                          ("xay-dung", 0, 0, 40, False), ("ho-tich", 0, 2700, 100, True)):
        view = {"service": sid, "waiting": waiting, "est_wait_s": est, "cap_left": cap, "open": open_,
                "day": "2026-11-24"}
        if sid == "ho-tich":            # every counter away: the menu says why
            view["away"] = {"reason": "break", "until": 1795500000000, "counters": [2, 3], "note": ""}
        app.issuer.on_service_view(view)


@pytest.fixture
def kiosk(tmp_path):
    apps = []

    def make(size, long_names: bool, robot: bool = False):
        path = make_config(tmp_path, free_port())
        if long_names:
            path.write_text(stress(path.read_text(encoding="utf-8")), encoding="utf-8")
        app = KioskApp(load_config(path), "robot-1" if robot else "kiosk-1", size=size, printer=MemoryPrinter(),
                       speaker=SilentSpeaker(), db=tmp_path / f"k{len(apps)}.sqlite")
        apps.append(app.start())
        _views(app)
        return app
    yield make
    for a in apps:
        a.stop()


def _walk(app):
    """Every screen through real touches: yields (name, hits) with ui.RECORD filled for it."""
    def shot(name):
        ui.RECORD = []
        app.render()
        drawn, ui.RECORD = ui.RECORD, None
        return name, list(app.hits), drawn, app.surface.copy()

    yield shot("idle")
    tap(app, ("menu",))
    yield shot("menu")
    tap(app, ("back",))
    tap(app, ("priority_menu",))
    yield shot("priority")
    tap(app, ("back",))
    tap(app, ("procedures",))
    yield shot("procedures")
    tap(app, ("proc_service", "chung-thuc"))
    yield shot("procedure-list")
    tap(app, ("proc", 0))
    yield shot("procedure")
    tap(app, ("service", "chung-thuc"))
    assert wait_until(lambda: not app.view.printing, 5, step=app.step)
    yield shot("confirm")
    tap(app, ("idle",))
    tap(app, ("menu",))
    tap(app, ("service", "dat-dai"))
    yield shot("message")
    tap(app, ("idle",))
    app.kc.screen_ticket = True
    app.printer.state = "paper_out"
    tap(app, ("menu",))
    tap(app, ("service", "ho-tich"))
    yield shot("screen-ticket")


def _check(where: str, size, hits, drawn, failures: list[str]) -> None:
    screen = pygame.Rect(0, 0, *size)
    for d in drawn:
        what = f"{where}: {d['text'][:50]!r}"
        if max(d["widths"], default=0) > d["rect"].width + 1 or d["height"] > d["rect"].height + 1:
            failures.append(f"{what} outside its box ({max(d['widths'])}x{d['height']} in {d['rect'].size})")
        if not screen.contains(d["rect"].clip(screen)) or d["rect"].clip(screen).width == 0:
            failures.append(f"{what} off screen")
        for word in cut_words(d["lines"], WORDS):
            failures.append(f"{what}: the word '{word}' is cut across lines")
        if d["px"] < MIN_PX:
            failures.append(f"{what} is {d['px']} px")
        if d["bg"] is not None and contrast(d["color"], d["bg"]) < MIN_CONTRAST:
            failures.append(f"{what}: contrast {contrast(d['color'], d['bg']):.1f}:1")
    for r, action in hits:
        if r.size == size:
            continue                      # "anywhere on the screen": not a button
        if min(r.size) < MIN_TARGET:
            failures.append(f"{where}: target {action} is {r.size}")


@pytest.mark.parametrize("long_names", [False, True], ids=["example", "long-names"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_kiosk_screen_holds_its_texts(kiosk, size, long_names):
    failures: list[str] = []
    app = kiosk(size, long_names)
    for lang in ("vi", "en"):
        app.kc.language = lang
        app.reset()
        app.kc.screen_ticket = False
        app.printer.state = "ready"
        seen = []
        for name, hits, drawn, surf in _walk(app):
            seen.append(name)
            assert drawn, name
            _check(f"{lang} {name}", size, hits, drawn, failures)
            if not long_names and lang == "vi" and name in KEPT:
                keep_png(surf, f"kiosk-{name}-{size[0]}x{size[1]}")
        assert len(seen) == 9
    assert not failures, "\n".join(failures[:40])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_robot_greets_with_the_whole_screen(kiosk, size):
    failures: list[str] = []
    app = kiosk(size, False, robot=True)
    app.view.screen, app.view.greeting = "idle", True
    ui.RECORD = []
    app.render()
    drawn, ui.RECORD = ui.RECORD, None
    assert any(d["text"] == "XIN CHÀO!" for d in drawn)
    _check("robot greeting", size, app.hits, drawn, failures)
    keep_png(app.surface, f"kiosk-robot-greeting-{size[0]}x{size[1]}")
    assert not failures, "\n".join(failures[:40])


def test_place_names_wrap_whole():
    """A place name (a run of capitalised syllables) wraps as one word, as "thủ tục" does,
    whatever the ward: the rule is general, not a list."""
    pygame.font.init()
    font = pygame.font.Font(None, 30)
    for text in (LONG_CENTER, "Số 12 đường Lê Lợi, phường An Khánh", "Phường Bến Nghé, quận Một"):
        for width in range(80, 700, 7):
            lines = ui.wrap(ui.keep_words(text), font, width)
            assert not cut_words(lines, [*PLACE_NAMES, "Bến Nghé"]), (width, lines)
    assert "QUẦY\u00a02" not in ui.keep_words("QUẦY 2 ĐANG GỌI")        # all caps: no name


@pytest.mark.parametrize("long_names", [False, True], ids=["example", "long-names"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_idle_screen_names_renumbered_paper_tickets(kiosk, size, long_names):
    """Offline tickets the service gave another number, until they are called: one, and
    more than the band holds (shown in pages), in both languages."""
    failures: list[str] = []
    app = kiosk(size, long_names)
    day = app.issuer.numbers.day_of(app.issuer.trusted_now())
    for n in (1, 4):
        app.issuer.renumbered = [(f"t{i}", day, 2950 + i, 2001 + i) for i in range(n)]
        for lang in ("vi", "en"):
            app.reset()
            app.view.lang = lang
            ui.RECORD = []
            app.render()
            drawn, ui.RECORD = ui.RECORD, None
            said = [app.view.tr("renumbered", printed=2950 + i, number=2001 + i) for i in range(n)]
            per = 3 if size[1] > size[0] else 2          # a page of them, the page by the clock
            assert [d["text"] for d in drawn if d["text"] in said] in [said[i:i + per] for i in range(0, n, per)]
            _check(f"{lang} renumbered x{n}", size, app.hits, drawn, failures)
            if not long_names and lang == "vi":
                keep_png(app.surface, f"kiosk-idle-renumbered-{n}-{size[0]}x{size[1]}")
    assert not failures, "\n".join(failures[:40])
