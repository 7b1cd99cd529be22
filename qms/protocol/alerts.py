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
