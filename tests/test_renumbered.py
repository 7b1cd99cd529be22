"""A renumbered offline ticket, end to end: a kiosk whose offline store was lost (a replaced
SD card) prints a number it already printed today; the real service, over a real
Mosquitto, gives it a free number; the hall display (headless pygame) shows and says both
numbers, the kiosk records it, and the citizen's page shows the new number."""
from __future__ import annotations

import re
import sqlite3

import pytest
from support.counter import CounterRig
from support.layout import keep_png
from support.media import FREQ, tone, write_wav
from support.site import Broker, make_config
from support.wait import wait_until
from support.web import WEB_EXTRA, call, start_web

from qms.config.site import load_config
from qms.kiosk import ui
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


def _print_offline(cfg, tmp_path, clock, printer: MemoryPrinter):
    """Offline (no broker yet): kiosk-1 prints 2950 and 2951; then its SD card is replaced
    and a fresh store starts its offline block again: 2950 once more. That paper."""
    first = _kiosk(cfg, tmp_path / "kiosk-a.sqlite", clock, printer)
    try:
        for _ in range(2):
            _take(first, "ho-tich")
            clock.advance(30)
        assert wait_until(lambda: len(printer.printed) == 2, step=first.step)
    finally:
        first.stop()
    second = _kiosk(cfg, tmp_path / "kiosk-b.sqlite", clock, printer)
    try:
        _take(second, "ho-tich")
        assert wait_until(lambda: len(printer.printed) == 3, step=second.step)
    finally:
        second.stop()
    assert [t.number for t in printer.printed] == [2950, 2951, 2950] and all(t.offline for t in printer.printed)
    return printer.printed[2]


def _printed_offline_then_online(cfg, tmp_path, clock, broker: Broker):
    """The papers printed offline (`_print_offline`); then the broker and the real service
    start: (printer, the renumbered one's paper, service)."""
    printer = MemoryPrinter()
    paper = _print_offline(cfg, tmp_path, clock, printer)
    broker.start()
    return printer, paper, CentralService(cfg, tmp_path / "service.sqlite", clock=clock, tick_seconds=3600).start()


def _synced(cfg, db, clock, printer) -> KioskApp:
    """A kiosk on this store, once it has emptied its outbox (as on one machine, one store
    then the other)."""
    app = _kiosk(cfg, db, clock, printer)
    assert wait_until(lambda: app.device.outbox.count() == 0, 20, step=app.step)
    return app


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
    printer, paper, svc = _printed_offline_then_online(cfg, tmp_path, site_clock, broker)
    display = None
    counter = Device(cfg, "counter-3", "counter", outbox_path=tmp_path / "c.sqlite").start()
    web = start_web(site_config, tmp_path, site_clock)
    try:
        def sync(db: str, renumbered: int) -> list:
            """The kiosk (one store, then the other, as on one machine) empties its outbox."""
            app = _synced(cfg, tmp_path / db, site_clock, printer)
            try:
                assert wait_until(lambda: app.issuer.stats.get("renumbered", 0) == renumbered, 5, step=app.step)
                return [app.issuer.numbers.renumbered_today(svc.core.day), app.issuer.renumbered_today()]
            finally:
                app.stop()
        assert sync("kiosk-a.sqlite", 0) == [[], []]           # its own numbers: honoured
        renumbered, notice = sync("kiosk-b.sqlite", 1)
        new = svc.core.tickets[paper.ticket_id].number
        assert new != 2950 and svc.core.by_number[2950].ticket_id != paper.ticket_id
        # the kiosk that printed it keeps the renumbering, and a notice for its screen
        assert renumbered == notice == [(2950, new)]

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


def _idle_texts(app: KioskApp, lang: str = "vi") -> list[str]:
    """The texts of the kiosk's idle screen, drawn now."""
    app.reset()
    app.view.lang = lang
    ui.RECORD = []
    app.render()
    drawn, ui.RECORD = ui.RECORD, None
    return [d["text"] for d in drawn]


def test_the_kiosk_and_the_counter_show_the_paper_number_until_the_call(tmp_path, site_clock, mock_pins):
    """The kiosk that printed the paper names it on its idle screen ("Vé in số 2950 nay là
    số 2001") from the renumbering until the call, across a restart; a kiosk that was off
    during the call learns it from the retained last calls. The counter terminal (real
    gpiozero keys on mock pins) tells staff both numbers and its board shows them in turn."""
    broker = Broker(tmp_path)
    cfg = load_config(make_config(tmp_path, broker.port, extra="[counter_terminal]\nrepeat_guard_ms = 0\n"))
    printer, paper, svc = _printed_offline_then_online(cfg, tmp_path, site_clock, broker)
    rig = None
    try:
        _synced(cfg, tmp_path / "kiosk-a.sqlite", site_clock, printer).stop()     # its own numbers: honoured
        app = _synced(cfg, tmp_path / "kiosk-b.sqlite", site_clock, printer)
        try:
            assert wait_until(lambda: app.issuer.stats.get("renumbered", 0) == 1, 5, step=app.step)
            new = svc.core.tickets[paper.ticket_id].number
            assert new != 2950
            notice = f"Vé in số 2950 nay là số {new}"
            assert notice in _idle_texts(app)
            keep_png(app.surface, "kiosk-renumbered-1024x600")
            assert f"Printed ticket 2950 is now number {new}" in _idle_texts(app, "en")
        finally:
            app.stop()
        # a restart keeps the notice (the kiosk's store); a copy of the store from before the
        # call stands for a kiosk that was switched off while it was called
        with sqlite3.connect(tmp_path / "kiosk-b.sqlite") as src, sqlite3.connect(tmp_path / "kiosk-off.sqlite") as dst:
            src.backup(dst)
        app = _kiosk(cfg, tmp_path / "kiosk-b.sqlite", site_clock, printer)
        try:
            assert app.issuer.renumbered_today() == [(2950, new)] and notice in _idle_texts(app)

            rig = CounterRig(cfg, "counter-3", 3, tmp_path, png=tmp_path / "counter-3-board.png")
            # the order they were printed; staff read both numbers of the renumbered one
            for number, said in ((2950, "2950"), (2951, "2951"), (new, f"{new} (vé in 2950)")):
                frames = len(rig.display.frames)
                rig.press("next")
                wait_until(lambda said=said: f"Mời số {said} đến quầy 3." in rig.lines, what=f"{number} called: {rig.lines}")
                wait_until(lambda n=number, i=frames: (f"{n:>4}", False) in rig.display.frames[i:],
                           what=f"{number} on the board")
            assert [c["number"] for c in list(svc.core.calls)[::-1]] == [2950, 2951, new]
            assert svc.core.counter_view(3)["serving"]["printed_number"] == 2950     # retained state/counter/3
            # the board shows the called number, then the paper's, in turn
            wait_until(lambda: any(f"Đang phục vụ: {new} (vé in 2950)" in line for line in rig.lines),
                       what="the state line")
            wait_until(lambda: rig.display.frames[frames:].count(("2950", False)) >= 1
                       and rig.display.frames[-1] == (f"{new:>4}", False), 15, what="both numbers in turn")
            shown = [f for f, _ in rig.display.frames[frames:]]
            assert set(shown) == {f"{new:>4}", "2950"} and shown[0] == f"{new:>4}"
            rig.display.render(*rig.display.frames[frames]).save(tmp_path / "board-new.png")
            keep_png(tmp_path / "board-new.png", f"counter-renumbered-{new}")
            keep_png(rig.display.render("2950"), "counter-renumbered-2950")
            rig.press("recall")
            wait_until(lambda: f"Đã gọi lại số {new} (vé in 2950)." in rig.lines, what="the recall line")

            # the call ends the kiosk's notice (the fact ticket.called), also after a restart
            assert wait_until(lambda: app.issuer.renumbered_today() == [], 10, step=app.step)
            assert notice not in _idle_texts(app)
        finally:
            app.stop()
        for db in ("kiosk-b.sqlite", "kiosk-off.sqlite"):
            later = _kiosk(cfg, tmp_path / db, site_clock, printer)
            try:
                assert wait_until(lambda k=later: k.issuer.renumbered_today() == [], 10, step=later.step), db
                assert notice not in _idle_texts(later)
            finally:
                later.stop()
    finally:
        if rig is not None:
            rig.stop()
        svc.stop()
        broker.stop()
