"""The words every face uses for a wait (qms/core/wait_text.py), from the queue's own views."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from qms.core.wait_text import away_phrase, menu_phrase, new_ticket_phrase, wait_phrase

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
AT_13H = 1795500000000        # 2026-11-24 13:00 +07:00


def test_minutes_and_hours():
    assert wait_phrase(20) == ("dưới 1 phút", "under 1 minute")
    assert wait_phrase(12 * 60) == ("khoảng 12 phút", "about 12 min")
    assert wait_phrase(75 * 60) == ("khoảng 1 giờ 15 phút", "about 1 h 15 min")


def test_no_waiting_only_when_the_estimate_says_so():
    assert new_ticket_phrase({"waiting": 0, "est_wait_s": 15}, TZ)[0] == "Không phải chờ"
    # nobody waiting, but the counters are all busy: a wait, not "no waiting"
    assert new_ticket_phrase({"waiting": 0, "est_wait_s": 600}, TZ)[0] == "khoảng 10 phút"
    assert menu_phrase({"waiting": 3, "est_wait_s": 20}, TZ)[0] == "Đang chờ: 3 người · dưới 1 phút"


def test_a_long_wait_with_nobody_ahead_says_why_in_site_time():
    away = {"reason": "break", "until": AT_13H, "counters": [2, 3], "note": ""}
    view = {"waiting": 0, "est_wait_s": 2700, "away": away}
    assert away_phrase(away, TZ) == ("Các quầy đang nghỉ trưa đến 13:00",
                                     "The counters are on lunch break until 13:00")
    assert new_ticket_phrase(view, TZ)[0] == "Các quầy đang nghỉ trưa đến 13:00 · chờ khoảng 45 phút"
    assert menu_phrase(view, TZ)[0] == "Nghỉ trưa đến 13:00 · khoảng 45 phút"     # one short line
    one = away_phrase({"reason": "pause", "until": AT_13H, "counters": [4], "note": "Họp"}, TZ)
    assert one[0] == "Quầy 4 đang tạm nghỉ (Họp), dự kiến đến 13:00"
