"""What the standard library would answer in English (HEAD, a 100,000-character URL, an
unknown method) gets the site's bilingual page, Vietnamese first; a page that finds nothing
has a way back; the ticket page says when, where and until when."""
from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from support.site import make_config
from support.web import WEB_EXTRA, counter, take


@pytest.fixture
def site_config(tmp_path, broker):       # the shared site plus a [web] section
    return make_config(tmp_path, broker.port, extra=WEB_EXTRA)


def _raw(url: str, request: bytes) -> tuple[str, str]:
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body.decode("utf-8", "replace")


def _text(html: str) -> str:
    """The page's text: words of several syllables are wrapped in <span class="w">."""
    return re.sub(r"<[^>]+>", "", html)


def test_head_huge_url_and_unknown_method_get_vietnamese_pages(web):
    head, body = _raw(web.url, b"HEAD /board/" + web.cfg.site.id.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert head.startswith("HTTP/1.1 200") and "text/html" in head and body == ""
    head, body = _raw(web.url, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith("HTTP/1.1 414") and "Địa chỉ quá dài." in _text(body) and '<html lang="vi"' in body
    head, body = _raw(web.url, b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith("HTTP/1.1 501") and "Phương thức không được hỗ trợ." in _text(body)
    head, body = _raw(web.url, b"GET /t/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert head.startswith("HTTP/1.1 404") and 'href="/"' in body and "Về bảng số đang gọi" in _text(body)


def _page_until(url: str, *texts: str) -> str:
    """The page once it shows every text (the web's replica follows the service over MQTT)."""
    deadline = time.monotonic() + 10
    html = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                html = _text(r.read().decode())
        except urllib.error.HTTPError:
            html = ""
        if all(t in html for t in texts):
            return html
        time.sleep(0.05)
    raise AssertionError(f"never showed {texts}: {html[-2000:]}")


def test_ticket_page_says_when_where_and_the_missed_call_deadline_as_a_clock_time(web, devices):
    t = take(devices, "ho-tich")
    _page_until(f"{web.url}/t/{t['ticket_id']}", "Lấy số lúc", "Các quầy 2, 3", "Cập nhật")
    called = counter(devices, 3)
    assert called["ticket"]["ticket_id"] == t["ticket_id"]
    counter(devices, 3, "counter.no_show")
    html = _page_until(f"{web.url}/t/{t['ticket_id']}", "Hãy đến quầy 3 trước ")
    assert "trong vòng" not in html
