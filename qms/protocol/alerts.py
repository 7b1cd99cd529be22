"""Staff alerts as devices receive them: retained qms/v1/<site>/alert/<kind>/<key>.

`qms web` (qms/web/alerts.py) raises an alert with a retained JSON payload and clears
it with an empty retained payload. The hall display and the counter terminals keep the
set of active alerts with `ActiveAlerts`; a payload that is not a well-formed alert for its
topic raises ValueError and changes nothing (the last good state stays shown).
"""
from __future__ import annotations

import unicodedata

import msgspec


class StaffAlert(msgspec.Struct):
    """One active alert (unknown fields are ignored: a newer publisher must not blank us)."""
    kind: str                  # "wait" (key = service id) or "pause" (key = counter number)
    key: str
    message_vi: str
    message_en: str = ""
    since: int = 0             # Unix ms when the limit was passed
    value_min: int = 0
    target_min: int = 0
    active: bool = True


class ActiveAlerts:
    def __init__(self) -> None:
        self.alerts: dict[tuple[str, str], StaffAlert] = {}

    def apply(self, kind: str, key: str, payload: bytes) -> str:
        """Apply one alert message. Returns "raised", "updated", "cleared" or "" (no change)."""
        if not kind or not key:
            raise ValueError("an alert topic ends in alert/<kind>/<key>")
        old = self.alerts.get((kind, key))
        alert = self._decode(kind, key, payload) if payload else None
        if alert is None or not alert.active:
            return "cleared" if self.alerts.pop((kind, key), None) else ""
        if alert == old:
            return ""
        self.alerts[(kind, key)] = alert
        return "updated" if old else "raised"

    @staticmethod
    def _decode(kind: str, key: str, payload: bytes) -> StaffAlert:
        try:
            a = msgspec.json.decode(payload, type=StaffAlert)
        except msgspec.MsgspecError as e:
            raise ValueError(f"not a staff alert: {e}") from None
        if (a.kind, a.key) != (kind, key):
            raise ValueError(f"alert {a.kind}/{a.key} on the topic of {kind}/{key}")
        a.message_vi = unicodedata.normalize("NFC", a.message_vi).strip()
        a.message_en = unicodedata.normalize("NFC", a.message_en).strip()
        if not a.message_vi:
            raise ValueError("an alert without message_vi")
        return a

    def ordered(self) -> list[StaffAlert]:
        """Longest waits first, then pauses by counter number."""
        def order(a: StaffAlert):
            return (a.kind != "wait", -a.value_min if a.kind == "wait" else 0,
                    int(a.key) if a.key.isdigit() else 0, a.key)
        return sorted(self.alerts.values(), key=order)

    def __len__(self) -> int:
        return len(self.alerts)


# what the service's per-device codes mean, for staff (alert/device/<dev>)
BAD_REASON_VI = {
    "invalid": "lệnh sai định dạng", "too_large": "thông điệp quá lớn", "too_deep": "thông điệp lồng quá sâu",
    "not_a_command_topic": "gửi sai chủ đề", "internal_error": "lỗi khi xử lý lệnh",
    "retained": "lệnh gửi kèm cờ lưu giữ (retain)", "unknown_device": "thiết bị chưa được khai báo",
    "not_allowed": "thao tác không được phép"}
BAD_REASON_EN = {
    "invalid": "malformed command", "too_large": "message too large", "too_deep": "message nested too deep",
    "not_a_command_topic": "wrong topic", "internal_error": "error while handling a command",
    "retained": "command sent with the retain flag", "unknown_device": "device not in the site config",
    "not_allowed": "operation not allowed"}


def _count(n: int, lang: str) -> str:
    """A count as people write it: 12.345 in Vietnamese, 12,345 in English."""
    text = f"{n:,}"
    return text.replace(",", ".") if lang == "vi" else text


def device_alert(dev: str, invalid: int, refused: int, last_error: str) -> dict:
    """The retained alert/device/<dev> payload: a device sent invalid or refused messages
    today (the service counts them; docs/protocol.md)."""
    why_vi = BAD_REASON_VI.get(last_error, last_error)
    why_en = BAD_REASON_EN.get(last_error, last_error)
    vi = [f"{_count(n, 'vi')} thông điệp {what}" for n, what in ((invalid, "không hợp lệ"), (refused, "bị từ chối")) if n]
    en = [f"{_count(n, 'en')} {what}" for n, what in ((invalid, "invalid"), (refused, "refused")) if n]
    return {"v": 1, "kind": "device", "key": dev, "active": True, "value_min": 0,
            "invalid": invalid, "refused": refused, "last_error": last_error,
            "message_vi": f"Thiết bị {dev} hôm nay đã gửi {' và '.join(vi) or '0 thông điệp lỗi'} "
                          f"(lần gần nhất: {why_vi}). Cần kiểm tra thiết bị.",
            "message_en": f"Device {dev} sent {' and '.join(en) or 'no bad'} messages today "
                          f"(last: {why_en}). The device needs checking."}
