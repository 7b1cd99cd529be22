"""A renumbered offline ticket, end to end: a kiosk whose offline store was lost (a replaced
SD card) prints a number it already printed today; the real service, over a real
Mosquitto, gives it a free number; the hall display (headless pygame) shows and says both
numbers, the kiosk records it, and the citizen's page shows the new number."""
from __future__ import annotations

import re

import pytest
from support.media import FREQ, tone, write_wav
from support.site import Broker, make_config
from support.wait import wait_until
from support.web import WEB_EXTRA, call, start_web

from qms.config.site import load_config
from qms.kiosk.app import KioskApp
from qms.kiosk.printing import MemoryPrinter
from qms.kiosk.voice import SilentSpeaker
from qms.mqtt.device import Device
from qms.service.app import CentralService
from qms.sim.kiosk_testing import tap
from qms.voice.numbers import number_words
from qms.voice.packs import CLIP_NAMES


def _kiosk(cfg, db, clock, printer) -> KioskApp:
    return KioskApp(cfg, "kiosk-1", size=(1024, 600), printer=printer, speaker=SilentSpeaker(),
                    clock=clock, db=db).start()


def _take(app: KioskApp, service: str) -> None:
    app.reset()
    tap(app, ("menu",))
    tap(app, ("service", service))
    assert app.view.screen == "confirm", app.view.message


@pytest.fixture
def voiced_config(tmp_path):
    broker = Broker(tmp_path)                     # configured, started later: the kiosks print offline
    pack = tmp_path / "pack"
    pack.mkdir()
    for token, stem in CLIP_NAMES.items():        # a voice pack of tones (dummy audio)
        write_wav(pack / f"{stem}.wav", tone(FREQ[token], 20))
    path = make_config(tmp_path, broker.port, extra=WEB_EXTRA + f'\n[voice]\nsource = "pack"\npack = "{pack}"\n'
                                                                 'repeat = 1\ngap_ms = 0\n')
    yield broker, path
    broker.stop()


def test_a_renumbered_ticket_is_called_with_both_numbers(voiced_config, tmp_path, site_clock):
    from qms.display.app import DisplayApp
    broker, site_config = voiced_config
    cfg = load_config(site_config)
    printer = MemoryPrinter()
    first = _kiosk(cfg, tmp_path / "kiosk-a.sqlite", site_clock, printer)
    try:
        for _ in range(2):
            _take(first, "ho-tich")
            site_clock.advance(30)
        assert wait_until(lambda: len(printer.printed) == 2, step=first.step)
    finally:
        first.stop()
    # the kiosk's SD card is replaced: a fresh store starts its offline block again
    second = _kiosk(cfg, tmp_path / "kiosk-b.sqlite", site_clock, printer)
    try:
        _take(second, "ho-tich")
        assert wait_until(lambda: len(printer.printed) == 3, step=second.step)
    finally:
        second.stop()
    paper = printer.printed[2]
    assert [t.number for t in printer.printed] == [2950, 2951, 2950] and all(t.offline for t in printer.printed)

    broker.start()
    svc = CentralService(cfg, tmp_path / "service.sqlite", clock=site_clock, tick_seconds=3600).start()
    display = None
    counter = Device(cfg, "counter-3", "counter", outbox_path=tmp_path / "c.sqlite").start()
    web = start_web(site_config, tmp_path, site_clock)
    try:
        def sync(db: str, renumbered: int) -> list:
            """The kiosk (one store, then the other, as on one machine) empties its outbox."""
            app = _kiosk(cfg, tmp_path / db, site_clock, printer)
            try:
                assert wait_until(lambda: app.device.outbox.count() == 0, 20, step=app.step)
                assert wait_until(lambda: app.issuer.stats.get("renumbered", 0) == renumbered, 5, step=app.step)
                return [app.issuer.numbers.renumbered_today(svc.core.day), app.issuer.notice]
            finally:
                app.stop()
        assert sync("kiosk-a.sqlite", 0) == [[], None]         # its own numbers: honoured
        renumbered, notice = sync("kiosk-b.sqlite", 1)
        new = svc.core.tickets[paper.ticket_id].number
        assert new != 2950 and svc.core.by_number[2950].ticket_id != paper.ticket_id
        # the kiosk that printed it keeps the renumbering, and a notice for its screen
        assert renumbered == [(2950, new)]
        assert notice[0] == f"Vé in số 2950 sẽ được gọi là số {new}."

        # the hall display (started now: a kiosk app that stops shuts pygame down)
        display = DisplayApp(cfg, size=(1280, 720), fullscreen=False).start()
        assert wait_until(lambda: display.model.connected, 10, step=lambda: display.step(0.05), every=0)
        # counter 3 calls the three tickets in the order they were printed
        called = [counter.request("counter.next", 10)[1].result["ticket"] for _ in range(3)]
        assert [c["number"] for c in called] == [2950, 2951, new]
        assert called[2]["printed_number"] == 2950 and called[0]["printed_number"] is None

        def step():
            display.step(0.05)
        assert wait_until(lambda: display.renderer.drawn_hero == new, 10, step=step, every=0)
        assert display.renderer.drawn_hero_note == "Vé in số 2950 / Printed ticket 2950"
        assert display.model.calls[0].printed_number == 2950
        spoken = wait_until(lambda: [a for a in display.announcer.history if a.spoken_at and a.number == new],
                            20, step=step, every=0)[0]
        assert spoken.printed_number == 2950
        # the phrase says the new number, then the paper's, then the counter
        assert spoken.text == ("Xin mời công dân có số thứ tự " + " ".join(number_words(new))
                               + " vé in số " + " ".join(number_words(2950)) + " đến quầy số ba")
        plain = [a for a in display.announcer.history if a.number == 2951][0]
        assert "vé in số" not in plain.text
        import pygame
        from support.layout import keep_png
        keep_png(display.screen, "display-renumbered-1280x720")
        pygame.event.pump()

        # the citizen's page (the QR code on the paper) shows the new number
        html = call(web, "GET", f"/t/{paper.ticket_id}")[1]["html"]
        vi = re.sub(r"<[^>]+>", "", re.sub(r'<span lang="en">.*?</span>', "", html))
        assert f"Vé in số 2950 đã được đổi thành số {new}. Bạn sẽ được gọi theo số {new}." in vi
        assert f'<div class="number" id="number">{new}</div>' in html
    finally:
        web.stop()
        counter.stop()
        if display is not None:
            display.close()
        svc.stop()
