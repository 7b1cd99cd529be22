"""Driving the kiosk by synthetic touches, for the tests and the benchmark.

A touch is a real SDL event (MOUSEBUTTONDOWN or FINGERDOWN) posted to pygame's queue
and handled by `KioskApp.step()`, exactly like a finger on the panel.
"""
from __future__ import annotations

import pygame

from qms.kiosk.app import to_logical


def target(app, action: tuple) -> pygame.Rect:
    """The on-screen rect of the touch target doing `action` (the smallest one, if several)."""
    app.render()
    rects = [r for r, a in app.hits if a == action]
    if not rects:
        raise LookupError(f"no {action} on screen {app.view.screen!r}: {[a for _, a in app.hits]}")
    return min(rects, key=lambda r: r.width * r.height)


def tap(app, action: tuple, finger: bool = False) -> None:
    """Touch the centre of the target for `action` and let the app handle it."""
    # the panel point showing that logical point: turning back is turning by the opposite angle
    pos = to_logical(target(app, action).center, app.surface.get_size(), (360 - app.rotate) % 360)
    post_touch(app, pos, finger)
    app.step()


def post_touch(app, pos: tuple[int, int], finger: bool = False) -> None:
    """Post a touch at pixel `pos` of the panel (the real display surface)."""
    if finger:
        w, h = app.display.get_size()
        ev = pygame.event.Event(pygame.FINGERDOWN, x=pos[0] / w, y=pos[1] / h, touch_id=1, finger_id=0,
                                dx=0.0, dy=0.0, pressure=1.0)
    else:
        ev = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1)
    pygame.event.post(ev)

