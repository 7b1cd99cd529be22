"""Why a command was refused, in words a citizen or a staff member understands."""
from __future__ import annotations


class Refused(Exception):
    def __init__(self, code: str, vi: str, en: str):
        super().__init__(f"{code}: {en}")
        self.code, self.vi, self.en = code, vi, en


def closed_day() -> Refused:
    return Refused("closed_day", "Hôm nay trung tâm không làm việc. Xin mời quay lại vào ngày làm việc.",
                   "The center is closed today. Please come back on a working day.")


def not_open(start: str) -> Refused:
    return Refused("not_open", f"Chưa đến giờ cấp số. Trung tâm bắt đầu cấp số lúc {start}.",
                   f"Tickets are issued from {start}.")


def past_cutoff(stop: str) -> Refused:
    return Refused("past_cutoff",
                   f"Đã hết giờ cấp số hôm nay (ngừng cấp số lúc {stop}). Xin mời quay lại vào ngày làm việc tiếp theo.",
                   f"No more tickets today (issuing stopped at {stop}). Please come back on the next working day.")


def daily_cap(name_vi: str, name_en: str) -> Refused:
    return Refused("daily_cap",
                   f"Lĩnh vực {name_vi} đã hết số trong hôm nay. Xin mời quay lại vào ngày làm việc tiếp theo.",
                   f"{name_en}: all of today's numbers are taken. Please come back on the next working day.")


_WHAT_VI = {"service": "lĩnh vực", "counter": "quầy", "priority": "đối tượng ưu tiên", "number": "số"}


def unknown(what: str, value: object) -> Refused:
    return Refused(f"unknown_{what}", f"Không tìm thấy {_WHAT_VI.get(what, what)} {value}.",
                   f"Unknown {what} {value!r}.")


def counter_paused(n: int) -> Refused:
    return Refused("counter_paused", f"Quầy {n} đang tạm nghỉ. Bấm Tiếp tục để mở lại.",
                   f"Counter {n} is paused. Press Resume first.")


def no_current(n: int) -> Refused:
    return Refused("no_current", f"Quầy {n} chưa gọi số nào.", f"Counter {n} is not serving anyone.")


def recall_cap(cap: int) -> Refused:
    return Refused("recall_cap", f"Đã gọi lại đủ {cap} lần. Hãy bấm Vắng mặt hoặc Gọi tiếp.",
                   f"Already recalled {cap} times. Mark as no-show or call the next number.")


def not_callable(number: int) -> Refused:
    return Refused("not_callable", f"Số {number} không thể gọi lại (không vắng mặt hoặc đã quá thời gian).",
                   f"Number {number} cannot be called back (not a no-show, or its window has passed).")


def bad_transfer(detail_en: str) -> Refused:
    return Refused("bad_transfer", "Không thể chuyển số này.", f"Cannot transfer: {detail_en}.")


def not_rateable(detail_en: str) -> Refused:
    return Refused("not_rateable", "Không thể ghi nhận đánh giá cho số này.", f"Cannot rate: {detail_en}.")


def not_allowed(role: str, kind: str) -> Refused:
    return Refused("not_allowed", "Thiết bị không được phép thực hiện thao tác này.",
                   f"A {role} device may not send {kind}.")


# ---------------------------------------------------------------- the device, not the queue
def unknown_device(dev: str) -> Refused:
    return Refused("unknown_device", f"Thiết bị {dev} chưa được khai báo trong cấu hình của trung tâm.",
                   f"Device {dev!r} is not listed in the site config.")


def wrong_role(dev: str, role: str, topic_role: str) -> Refused:
    return Refused("not_allowed", f"Thiết bị {dev} được khai báo với vai trò {role}, không được gửi lệnh "
                                  f"của vai trò {topic_role}.",
                   f"Device {dev!r} is listed as a {role}; it may not send {topic_role} commands.")


def invalid(detail_en: str) -> Refused:
    return Refused("invalid", "Yêu cầu không hợp lệ; thiết bị cần được kiểm tra.",
                   f"Invalid command: {detail_en[:300]}")


def retained() -> Refused:
    return Refused("retained", "Lệnh gửi với cờ lưu giữ (retain) bị từ chối; thiết bị cần được kiểm tra.",
                   "A command published with the retain flag is refused (and cleared from the broker).")


def internal_error() -> Refused:
    return Refused("internal_error", "Hệ thống gặp lỗi khi xử lý yêu cầu này. Xin báo cán bộ kỹ thuật.",
                   "The service failed on this command; it was set aside for the administrator "
                   "and will not be retried.")
