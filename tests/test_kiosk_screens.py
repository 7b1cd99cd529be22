"""The kiosk's screens, drawn headless by real pygame, driven by synthetic touch events.

Every screen is saved as a PNG in both languages at four screen sizes (artifacts/kiosk/).
"""
from __future__ import annotations

import unicodedata

import pygame
import pytest
from support.site import free_port, make_config
from support.wait import wait_until

from qms.config.site import load_config
from qms.kiosk import ui
from qms.kiosk.app import KioskApp
from qms.kiosk.printing import MemoryPrinter
from qms.kiosk.voice import SilentSpeaker
from qms.sim.kiosk_testing import tap, target

SIZES = [(1024, 600), (1280, 800), (1920, 1080), (600, 1024)]
VIETNAMESE = ("aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ")


def views(app):
    app.issuer.on_service_view({"service": "chung-thuc", "waiting": 12, "est_wait_s": 1500, "cap_left": 300,
                                "open": True, "day": "2026-11-24"})
    app.issuer.on_service_view({"service": "dat-dai", "waiting": 3, "est_wait_s": 600, "cap_left": 0,
                                "open": True, "day": "2026-11-24"})
    app.issuer.on_service_view({"service": "xay-dung", "waiting": 0, "est_wait_s": 0, "cap_left": 40,
                                "open": False, "day": "2026-11-24"})


@pytest.fixture
def make_app(tmp_path):
    apps = []
    cfg_path = make_config(tmp_path, free_port())      # nobody listens: the kiosk is offline

    def make(size=(1024, 600), extra_cfg="", printer=None, **kw):
        path = cfg_path
        if extra_cfg:
            path = make_config(tmp_path, free_port(), extra=extra_cfg)
        cfg = load_config(path)
        app = KioskApp(cfg, "kiosk-1", size=size, printer=printer or MemoryPrinter(),
                       speaker=kw.pop("speaker", SilentSpeaker()), db=tmp_path / f"k{len(apps)}.sqlite", **kw)
        apps.append(app.start())
        views(app)
        return app
    yield make
    for a in apps:
        a.stop()


def test_font_has_every_vietnamese_letter():
    for bold in (False, True):
        f = ui.font(40, bold)
        letters = VIETNAMESE + VIETNAMESE.upper()
        missing = [c for c, m in zip(letters, f.metrics(letters)) if m is None]
        assert not missing, f"font lacks {missing}"
    assert len(set(VIETNAMESE)) == 73   # 12 vowel letters x 6 tones + đ (146 forms with upper case)


def walk_all_screens(app, shots, prefix):
    """Visit every screen through real touches; save each."""
    def shot(name):
        assert all(unicodedata.is_normalized("NFC", s) for s in (app.view.message or ("",)))
        shots.append((name, app.surface.copy()))
        pygame.image.save(app.surface, str(prefix.parent / f"{prefix.name}-{name}.png"))

    app.render(); shot("idle")
    tap(app, ("menu",)); shot("menu")
    tap(app, ("back",)); tap(app, ("priority_menu",)); shot("priority")
    tap(app, ("priority", "nguoi-cao-tuoi")); shot("menu-priority")
    tap(app, ("back",)); tap(app, ("procedures",)); shot("procedures")
    tap(app, ("proc_service", "chung-thuc")); shot("procedure-list")
    tap(app, ("proc", 0)); shot("procedure")
    tap(app, ("service", "chung-thuc")); shot("confirm-printing")
    assert wait_until(lambda: not app.view.printing, 5, step=app.step)
    shot("confirm-printed")
    tap(app, ("idle",)); tap(app, ("menu",)); tap(app, ("service", "dat-dai")); shot("daily-cap")
    tap(app, ("idle",))
    app.printer.state = "paper_out"
    tap(app, ("menu",)); tap(app, ("service", "ho-tich")); shot("printer-paper-out")
    tap(app, ("idle",))
    app.kc.screen_ticket = True
    tap(app, ("menu",)); tap(app, ("service", "ho-tich")); shot("screen-ticket")
    app.kc.screen_ticket = False
    app.printer.state = "ready"
    tap(app, ("idle",))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_screen_in_both_languages(make_app, artifacts, size):
    app = make_app(size)
    out = artifacts / "kiosk"
    out.mkdir(exist_ok=True)
    for lang in ("vi", "en"):
        app.kc.language = lang
        app.reset()
        shots = []
        walk_all_screens(app, shots, out / f"{size[0]}x{size[1]}-{lang}")
        names = [n for n, _ in shots]
        assert names[-1] == "screen-ticket" and len(names) == 12
        for _name, surf in shots:
            # high contrast: the screen is mostly the dark background or the white/yellow panels
            assert surf.get_size() == size
    # touch targets: inside the screen, big enough for a finger (>= 9 % of the short side)
    for scr in ("idle", "menu", "priority_menu", "procedures"):
        app.view.screen = scr
        app.render()
        for r, action in app.hits:
            assert app.surface.get_rect().contains(r), (scr, action)
            assert min(r.size) >= 0.09 * min(size), (scr, action, r)


def test_texts_are_vietnamese_first_and_nfc(make_app):
    from qms.kiosk.texts import T
    for key, (vi, en) in T.items():
        assert unicodedata.is_normalized("NFC", vi) and vi != en or key == "priority", key
    app = make_app()
    app.render()
    assert app.view.lang == "vi"


def test_flows_take_at_most_three_touches(make_app):
    app = make_app()
    flows = {
        "ticket": [("menu",), ("service", "ho-tich")],
        "priority ticket": [("priority_menu",), ("priority", "phu-nu-mang-thai"), ("service", "ho-tich")],
        "procedure": [("procedures",), ("proc_service", "ho-tich"), ("proc", 0)],
        "read aloud": [("procedures",), ("proc_service", "ho-tich"), ("read", 1)],
        "english": [("lang",), ("menu",), ("service", "ho-tich")],
    }
    for name, touches in flows.items():
        app.reset()
        assert len(touches) <= 3, name
        for i, action in enumerate(touches):
            tap(app, action, finger=i % 2 == 1)        # mouse and finger events alike
    assert app.speaker.said and app.speaker.said[-1].startswith("Đăng ký kết hôn.")
    assert app.issuer.stats["offline"] == 3
    assert wait_until(lambda: len(app.printer.printed) == 3, 5, step=app.step)
    assert [t.priority_vi for t in app.printer.printed] == ["", "Phụ nữ mang thai", ""]


def test_timeout_returns_to_idle(make_app):
    clock = [0.0]
    app = make_app(monotonic=lambda: clock[0])
    tap(app, ("menu",))
    assert app.view.screen == "menu"
    clock[0] += app.kc.idle_timeout_s - 1
    app.step()
    assert app.view.screen == "menu"
    clock[0] += 2
    app.step()
    assert app.view.screen == "idle"
    tap(app, ("lang",))
    tap(app, ("menu",))
    tap(app, ("service", "bhxh-bhyt"))
    assert app.view.screen == "confirm"
    for _ in range(100):
        app.step()
        if not app.view.printing:
            break
        pygame.time.wait(5)
    clock[0] += app.kc.confirm_seconds + 0.1
    app.step()
    assert app.view.screen == "idle" and app.view.lang == "vi"     # the next citizen starts fresh


def test_taps_during_a_request_do_not_take_a_second_ticket(make_app):
    app = make_app()
    tap(app, ("menu",))
    r = target(app, ("service", "ho-tich"))
    for _ in range(3):                                   # an impatient triple tap
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=r.center, button=1))
    app.step()
    app.step()
    assert app.issuer.stats["offline"] == 1


def test_closed_service_screen(make_app, tmp_path, artifacts):
    app = make_app()
    app.cfg.hours.weekdays = []                          # today is not a working day
    tap(app, ("menu",))
    tap(app, ("service", "ho-tich"))
    assert app.view.screen == "message"
    assert "không làm việc" in app.view.message[0].lower() or "hôm nay" in app.view.message[0]
    app.save(artifacts / "kiosk" / "1024x600-vi-closed-day.png")
    assert app.issuer.stats["offline"] == 0
