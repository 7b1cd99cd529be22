"""`[kiosk] rotate`: a panel mounted turned. The kiosk lays its screens out at the turned size,
shows them turned on the real display surface, and maps touches on the panel back, so a tap
where a button is seen on the panel is a tap on that button. Real pygame, headless."""
from __future__ import annotations

import msgspec
import pygame
import pytest
from support.site import free_port, make_config

from qms.config.site import load_config
from qms.kiosk.app import KioskApp
from qms.kiosk.printing import MemoryPrinter
from qms.kiosk.voice import SilentSpeaker
from qms.sim.kiosk_testing import post_touch, tap, target

PANEL = (1280, 800)                 # the panel's own mode: landscape
MARK = pygame.Color(255, 0, 255)
# where the logical top-left corner is seen on the panel: the picture turned counter-clockwise
CORNER_SEEN_AT = {0: "top-left", 90: "bottom-left", 180: "bottom-right", 270: "top-right"}


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def make(rotate):
        path = make_config(tmp_path, free_port(), extra=f"[kiosk]\nrotate = {rotate}\n")
        app = KioskApp(load_config(path), "kiosk-1", size=PANEL, printer=MemoryPrinter(),
                       speaker=SilentSpeaker(), db=tmp_path / f"k{len(apps)}.sqlite")
        apps.append(app.start())
        return app
    yield make
    for a in apps:
        a.stop()


def seen_on_panel(app, logical_rect: pygame.Rect) -> pygame.Rect:
    """Where `logical_rect` is seen on the real display surface: paint it in a colour no screen
    uses, show the frame, and find that colour on the panel."""
    app.surface.fill(MARK, logical_rect)
    app.present()
    rects = pygame.mask.from_threshold(app.display, MARK, (1, 1, 1, 255)).get_bounding_rects()
    assert len(rects) == 1, rects
    return rects[0]


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_the_frame_on_the_panel_is_the_logical_frame_turned(make_app, rotate):
    app = make_app(rotate)
    w, h = PANEL
    assert app.display.get_size() == PANEL
    assert app.surface.get_size() == ((h, w) if rotate in (90, 270) else (w, h))
    app.render()
    corner = seen_on_panel(app, pygame.Rect(0, 0, 40, 20))
    corners = {"top-left": (0, 0), "top-right": (w, 0), "bottom-left": (0, h), "bottom-right": (w, h)}
    near = min(corners, key=lambda c: abs(corners[c][0] - corner.centerx) + abs(corners[c][1] - corner.centery))
    assert near == CORNER_SEEN_AT[rotate]
    assert corner.size == ((20, 40) if rotate in (90, 270) else (40, 20))      # turned, not stretched
    # the whole frame, pixel for pixel, is the logical one turned
    assert pygame.image.tobytes(app.display, "RGB") == pygame.image.tobytes(
        pygame.transform.rotate(app.surface, rotate), "RGB")


@pytest.mark.parametrize("finger", [False, True])
@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_a_tap_where_a_button_is_seen_hits_that_button(make_app, rotate, finger):
    app = make_app(rotate)
    assert app.view.screen == "idle"
    # idle: a tap anywhere off its buttons opens the menu, so aim at a button beside others
    post_touch(app, seen_on_panel(app, target(app, ("priority_menu",))).center, finger)
    app.step()
    assert app.view.screen == "priority_menu"
    post_touch(app, seen_on_panel(app, target(app, ("back",))).center, finger)
    app.step()
    assert app.view.screen == "idle"
    post_touch(app, seen_on_panel(app, target(app, ("procedures",))).center, finger)
    app.step()
    assert app.view.screen == "procedures"
    tap(app, ("back",), finger)         # the helper the other tests use aims on the panel too
    assert app.view.screen == "idle"


def test_rotate_is_checked(tmp_path):
    path = make_config(tmp_path, free_port(), extra="[kiosk]\nrotate = 45\n")
    with pytest.raises((msgspec.ValidationError, ValueError), match="rotate"):
        load_config(path)
