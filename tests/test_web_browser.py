"""The pages in a real headless Chromium (Debian's, driven by Playwright): live updates,
both languages, the phone layout; screenshots go to artifacts/."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from support.site import make_config
from support.web import BOOK_TOKEN, KIOSK_TOKEN, WEB_EXTRA, booking, call, counter, take

PHONE = {"width": 360, "height": 800}


@pytest.fixture
def site_config(tmp_path, broker):       # the shared site plus a [web] section
    return make_config(tmp_path, broker.port, extra=WEB_EXTRA)



@pytest.fixture
def phone(browser, web):
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    outside = []
    page.on("request", lambda r: None if r.url.startswith(web.url) else outside.append(r.url))
    yield page
    ctx.close()
    assert outside == [], "the page fetched something from outside the service"


def visible_text(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def switch_language(page, to: str) -> None:
    page.click("#lang")
    expect(page.locator("html")).to_have_attribute("data-lang", to)


def test_ticket_page_follows_the_ticket_until_called(web, devices, phone, artifacts):
    tickets = [take(devices, "ho-tich") for _ in range(3)]
    mine = tickets[2]
    phone.goto(f"{web.url}/t/{mine['ticket_id']}")
    assert visible_text(phone, "#number") == str(mine["number"])
    assert visible_text(phone, "#ahead") == "2"
    assert "Số người đang chờ trước bạn" in visible_text(phone, "main")
    assert "Hộ tịch (khai sinh, kết hôn, khai tử)" in visible_text(phone, "main")
    assert "Số 12 đường Lê Lợi, phường An Khánh" in visible_text(phone, "footer")
    phone.wait_for_selector("#status.ok")                       # the live stream is connected
    phone.screenshot(path=str(artifacts / "web-ticket-waiting-vi.png"))
    switch_language(phone, "en")
    assert "People ahead of you" in visible_text(phone, "main")
    assert "Số người" not in visible_text(phone, "main")
    phone.screenshot(path=str(artifacts / "web-ticket-waiting-en.png"))
    switch_language(phone, "vi")

    counter(devices, 3)                                          # the first one is called
    expect(phone.locator("#ahead")).to_have_text("1", timeout=5000)
    counter(devices, 3)
    expect(phone.locator("#ahead")).to_have_text("0", timeout=5000)
    counter(devices, 3)                                          # now mine
    phone.wait_for_selector("section[data-state=called]", timeout=5000)
    assert visible_text(phone, "#counter") == "Quầy 3"
    size = phone.eval_on_selector("#counter", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 48, "the counter must be in large type"
    assert phone.title().startswith("▶")
    phone.screenshot(path=str(artifacts / "web-ticket-called-vi.png"))
    switch_language(phone, "en")
    assert visible_text(phone, "#counter") == "Counter 3"
    phone.screenshot(path=str(artifacts / "web-ticket-called-en.png"))

    counter(devices, 3, "counter.done")                          # served: the stream ends
    phone.wait_for_selector("section[data-state=done]", timeout=5000)
    assert "Served. Thank you!" in visible_text(phone, "main")


def test_language_choice_is_kept_and_works_without_script(web, devices, browser):
    t = take(devices, "chung-thuc")
    ctx = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = ctx.new_page()
    page.goto(f"{web.url}/t/{t['ticket_id']}?lang=en")
    assert "People ahead of you" in visible_text(page, "main")
    assert "Số người" not in visible_text(page, "main")
    assert page.locator("noscript meta[http-equiv=refresh]").count() == 1   # still updates, slowly
    page.click("#lang")                                           # a plain link without JavaScript
    assert "Số người đang chờ trước bạn" in visible_text(page, "main")
    ctx.close()


def test_booked_number_page_then_checked_in(web, phone, site_clock, artifacts):
    b = call(web, "POST", "/api/v1/bookings", booking(site_clock), token=BOOK_TOKEN)[1]["booking"]
    phone.goto(f"{web.url}/t/{b['ticket_id']}")
    assert visible_text(phone, "#code") == b["code"]
    assert phone.locator(".qr svg").count() == 1
    phone.screenshot(path=str(artifacts / "web-booking-vi.png"), full_page=True)
    st, body, _ = call(web, "POST", "/api/v1/checkin", {"code": b["code"]}, token=KIOSK_TOKEN)
    assert st == 200
    phone.wait_for_selector("section[data-state=waiting]", timeout=5000)
    assert visible_text(phone, "#number") == str(body["ticket"]["number"])


def test_board_page_shows_calls_counters_and_waiting(web, devices, browser, artifacts):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.goto(f"{web.url}/board/{web.cfg.site.id}")
    assert "Chưa gọi số nào" in visible_text(page, ".calls")
    tickets = [take(devices, "chung-thuc") for _ in range(2)] + [take(devices, "dat-dai")]
    counter(devices, 4, "counter.pause")
    counter(devices, 1)
    expect(page.locator(".latest .number")).to_have_text(str(tickets[0]["number"]), timeout=5000)
    assert "Quầy 1" in visible_text(page, ".latest")
    rows = {r.locator("td").nth(0).inner_text(): r.locator("td").nth(1).inner_text()
            for r in page.locator(".services tbody tr").all()}
    assert rows["Chứng thực (sao y, chứng thực chữ ký)"] == "1" and rows["Đất đai"] == "1"
    assert "Tạm nghỉ" in visible_text(page, ".counters li.c-paused")
    page.screenshot(path=str(artifacts / "web-board-vi.png"), full_page=True)
    switch_language(page, "en")
    assert "Counter 1" in visible_text(page, ".latest")
    assert "Paused" in visible_text(page, ".counters li.c-paused")
    page.screenshot(path=str(artifacts / "web-board-en.png"), full_page=True)
    ctx.close()
