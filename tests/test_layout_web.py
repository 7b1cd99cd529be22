"""Layout suite, web pages: the ticket page (waiting, with every counter away; called), the
board and an error page, in headless Chromium at 800x480, 1024x600, 1280x720, 1920x1080 and
portrait 1080x1920 (and a 360-px phone), with the example config and the longest real names.
In the page itself: nothing wider than the screen, no text outside its element, no word (nor
known compound word, qms/core/words.py) broken across lines, every text at least 18 px, every
link/button at least 60 px high and wide at 800x480, contrast of every text against its background at least 4.5:1. The
example's pages are kept in docs/screens/ (docs/web.md shows them)."""
from __future__ import annotations

import pytest
from support.layout import CHECK, MIN_CONTRAST, MIN_PX, MIN_TARGET, SIZES, SMALL, WORDS, keep_png, stress
from support.site import make_config
from support.web import WEB_EXTRA, counter, take


@pytest.fixture(params=[False, True], ids=["example", "long-names"])
def site_config(tmp_path, broker, request):      # the web's site, with the longest names too
    path = make_config(tmp_path, broker.port, extra=WEB_EXTRA)
    if request.param:
        path.write_text(stress(path.read_text(encoding="utf-8")), encoding="utf-8")
    path.with_suffix(".kind").write_text("long" if request.param else "example")
    return path



def test_every_page_at_every_size(web, devices, browser, site_config):
    example = site_config.with_suffix(".kind").read_text() == "example"
    for _ in range(2):
        take(devices, "ho-tich")
    waiting = take(devices, "ho-tich")
    called = take(devices, "chung-thuc")
    counter(devices, 1, "counter.resume")
    assert counter(devices, 1)["ticket"]["service"] == "chung-thuc"
    pages = {"ticket-waiting": f"/t/{waiting['ticket_id']}", "ticket-called": f"/t/{called['ticket_id']}",
             "board": f"/board/{web.cfg.site.id}", "not-found": "/t/not-a-ticket",
             "alerts": f"/alerts/{web.cfg.site.id}"}
    failures = []
    for w, h in [*SIZES, (360, 780)]:
        ctx = browser.new_context(viewport={"width": w, "height": h})
        page = ctx.new_page()
        for name, path in pages.items():
            page.goto(web.url + path)
            if name == "ticket-called":
                page.wait_for_selector("section[data-state=called]", timeout=10_000)
            failures += [f"{w}x{h} {name}: {x}" for x in page.evaluate(CHECK, [MIN_PX, MIN_TARGET if (w, h) == SMALL else 0, WORDS])]
            if example and (w, h) in ((360, 780), (1280, 720), (1920, 1080)) and name not in ("not-found", "alerts"):
                shot = page.screenshot(full_page=False)
                from io import BytesIO

                from PIL import Image
                keep_png(Image.open(BytesIO(shot)), f"web-{name}-{w}x{h}")
        ctx.close()
    assert MIN_CONTRAST == 4.5
    assert not failures, "\n".join(failures[:40])
