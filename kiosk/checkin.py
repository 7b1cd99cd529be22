"""Booking check-in: a booking code (typed on the keypad or read by a QR scanner) becomes a
ticket through `qms web`'s `POST /api/v1/checkin` (docs/web.md, "Check-in").

`CheckinClient.check_in(code)` never raises: it returns the ticket (the same shape as the
service's ticket.request ack) or a `Refusal` whose words the kiosk shows. The web
server's words are shown for the refusals it explains (unknown code, too early, expired,
cancelled, caps and hours); anything that means "this kiosk cannot check in now" (web
server or service unreachable, a bad token, an unexpected answer) becomes one plain
request to see a staff member, and the details go to the log. Codes are checked here
first with the web server's own rules, so a wrong scan (a citizen ID card's QR code
holds personal data) is never sent anywhere nor logged.
"""
from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from pathlib import Path

from qms.config.site import SiteConfig
from qms.kiosk.issuer import Refusal
from qms.protocol.booking_codes import NotABookingCode, display_code, normalize_code

log = logging.getLogger("qms.kiosk.checkin")

SEE_STAFF = Refusal("unavailable",
                    "Hiện chưa xác nhận được lịch hẹn. Vui lòng liên hệ cán bộ hướng dẫn để được hỗ trợ.",
                    "Your booking cannot be checked right now. Please ask a staff member for help.")
NOT_A_CODE = Refusal("bad_code",
                     "Đây không phải mã đặt lịch. Mã gồm 8 ký tự, ví dụ 7KQ2-M9XD.",
                     "This is not a booking code. A code has 8 characters, for example 7KQ2-M9XD.")
# refusals whose words come from the web server (its status and error code)
SHOWN_AS_SENT = {"unknown_code", "too_early", "booking_expired", "booking_cancelled", "rate_limited",
                 "closed_day", "not_open", "past_cutoff", "daily_cap"}


def parse_code(text: str) -> str | None:
    """The canonical 8-character code of what was typed or scanned, or None."""
    try:
        return normalize_code(text)
    except NotABookingCode:
        return None


def shown(code: str) -> str:
    """XXXX-XXXX, as printed in the citizen's booking."""
    return display_code(code)


class CheckinClient:
    def __init__(self, url: str, token: str, device: str, timeout_s: float = 8.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"check-in URL must look like http://host:8080, not {url!r}")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.path = parts.path.rstrip("/") + "/api/v1/checkin"
        self.token, self.device, self.timeout_s = token, device, timeout_s

    def check_in(self, code: str) -> dict | Refusal:
        body = json.dumps({"code": code, "device": self.device}).encode()
        conn_cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = conn_cls(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request("POST", self.path, body=body, headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            status, raw = resp.status, resp.read(65536)
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            log.error("check-in server %s:%s not reachable: %s", self.host, self.port, e)
            return SEE_STAFF
        finally:
            conn.close()
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.error("check-in server answered %d without a JSON object", status)
            return SEE_STAFF
        if status == 200 and data.get("ok") and isinstance(data.get("ticket"), dict):
            return data["ticket"]
        error = str(data.get("error") or "")
        if error in SHOWN_AS_SENT and data.get("message_vi"):
            return Refusal(error, str(data["message_vi"]), str(data.get("message_en") or data["message_vi"]))
        log.error("check-in refused with %d %s: %s", status, error or "?", data.get("message_en", ""))
        return SEE_STAFF


def token_path(cfg: SiteConfig, device_id: str) -> Path | None:
    name = cfg.kiosk.checkin_token_file
    if not name:
        return None
    p = Path(name.replace("{device}", device_id))
    if not p.is_absolute() and cfg.source:
        p = Path(cfg.source).resolve().parent / p
    return p


def make_checkin(cfg: SiteConfig, device_id: str) -> CheckinClient | None:
    """The check-in client of this kiosk, or None (no booking button) when not configured.
    A configured but unusable setup is logged: staff see the missing button and the log."""
    path = token_path(cfg, device_id)
    url = cfg.kiosk.checkin_url or cfg.site.public_url
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        log.error("booking check-in is off: cannot read the token file %s (%s)", path, e.strerror)
        return None
    if not token:
        log.error("booking check-in is off: the token file %s is empty", path)
        return None
    try:
        return CheckinClient(url, token, device_id, cfg.kiosk.checkin_timeout_s)
    except ValueError as e:
        log.error("booking check-in is off: %s (set [kiosk] checkin_url or site.public_url)", e)
        return None
