"""Layout suite, web pages: the ticket page (waiting, with every counter away; called), the
board and an error page, in headless Chromium at 800x480, 1024x600, 1280x720, 1920x1080 and
portrait 1080x1920 (and a 360-px phone), with the example config and the longest real names.
In the page itself: nothing wider than the screen, no text outside its element, no word (nor
known compound word, qms/core/words.py) broken across lines, every text at least 18 px, every
link/button at least 60 px high and wide at 800x480, contrast of every text against its background at least 4.5:1. The
example's pages are kept in docs/screens/ (docs/web.md shows them)."""
from __future__ import annotations

import pytest
from support.layout import MIN_CONTRAST, MIN_PX, MIN_TARGET, PLACE_NAMES, SIZES, SMALL, keep_png, stress
from support.site import make_config
from support.web import WEB_EXTRA, counter, take

from qms.core.words import COMPOUNDS

WORDS = sorted({w.lower() for w in (*COMPOUNDS, *PLACE_NAMES) if " " in w})

CHECK = """([minPx, minTarget, compounds]) => {
  const out = [];
  const vw = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > vw + 1) out.push(`page is ${document.documentElement.scrollWidth} px wide in ${vw}`);
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                                   .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const background = (el) => {
    for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    if (!text) continue;
    const el = n.parentElement, cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || el.closest('svg, script, style, noscript')) continue;
    const range = document.createRange(); range.selectNodeContents(n);
    const rects = [...range.getClientRects()];
    if (!rects.length) continue;
    let box = el; while (box && getComputedStyle(box).display === 'inline') box = box.parentElement;
    const b = box.getBoundingClientRect();
    for (const r of rects) {
      if (r.left < -1 || r.right > vw + 1) out.push(`'${text.slice(0, 40)}' leaves the screen`);
      else if (r.left < b.left - 1 || r.right > b.right + 1) out.push(`'${text.slice(0, 40)}' outside its box`);
    }
    // no word broken across lines: each word (and each known compound, qms/core/words.py)
    // must lie on one line box, i.e. all its fragments share a top
    const spans = [];
    for (const m of n.textContent.matchAll(/[^\\s\\u00a0]+/g)) spans.push([m.index, m.index + m[0].length]);
    const low = n.textContent.toLowerCase();
    for (const w of compounds) for (let i = low.indexOf(w); i >= 0; i = low.indexOf(w, i + 1)) spans.push([i, i + w.length]);
    for (const [a, z] of spans) {
      const wr = document.createRange(); wr.setStart(n, a); wr.setEnd(n, z);
      const tops = new Set([...wr.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top / 4)));
      if (tops.size > 1) out.push(`'${n.textContent.slice(a, z)}' broken across lines in '${text.slice(0, 40)}'`);
    }
    const px = parseFloat(cs.fontSize);
    if (px < minPx) out.push(`'${text.slice(0, 40)}' is ${px} px`);
    const c = ratio(rgb(cs.color).slice(0, 3), background(el));
    if (c < 4.5) out.push(`'${text.slice(0, 40)}' contrast ${c.toFixed(1)}:1`);
  }
  // every link, button and select is a touch target at least minTarget high (and wide)
  if (minTarget) for (const el of document.querySelectorAll('a, button, select, input, summary')) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.height < minTarget - 0.5 || r.width < minTarget - 0.5))
      out.push(`target '${el.textContent.trim().slice(0, 30)}' is ${r.width.toFixed(0)}x${r.height.toFixed(0)} px`);
  }
  return out;
}"""


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
