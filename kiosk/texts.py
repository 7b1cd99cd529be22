"""Everything the kiosk says on screen: Vietnamese first, English second."""
from __future__ import annotations

T: dict[str, tuple[str, str]] = {
    "take": ("LẤY SỐ THỨ TỰ", "TAKE A NUMBER"),
    "touch": ("Chạm vào màn hình để bắt đầu", "Touch the screen to start"),
    "hello": ("Xin chào! Mời bạn chọn dịch vụ", "Welcome! Please choose a service"),
    "priority": ("Ưu tiên", "Priority"),
    "procedures": ("Tra cứu thủ tục", "Procedures"),
    "lang_other": ("English", "Tiếng Việt"),
    "choose_service": ("Chọn lĩnh vực", "Choose a service"),
    "choose_priority": ("Chọn đối tượng ưu tiên", "Who has priority?"),
    "priority_for": ("Số ưu tiên: {name}", "Priority number: {name}"),
    "choose_proc_service": ("Tra cứu thủ tục: chọn lĩnh vực", "Procedures: choose a service"),
    "back": ("Quay lại", "Back"),
    "home": ("Về màn hình chính", "Start over"),
    "closed": ("Tạm ngừng cấp số", "Not issuing now"),
    "cap": ("Đã hết số hôm nay", "No numbers left today"),
    "your_number": ("SỐ THỨ TỰ CỦA BẠN", "YOUR NUMBER"),
    "printing": ("Đang in phiếu, vui lòng nhận phiếu bên dưới", "Printing — please take your ticket below"),
    "printed": ("Mời bạn nhận phiếu và chờ gọi số", "Please take your ticket and wait to be called"),
    "ahead": ("Số người chờ trước bạn: {n}", "People ahead of you: {n}"),
    "ahead_wait": ("Số người chờ trước bạn: {n} · chờ {wait}",
                   "People ahead of you: {n} · wait {wait}"),
    "counters_one": ("Quầy phục vụ: {n}", "Served at counter {n}"),
    "counters_many": ("Các quầy phục vụ: {n}", "Served at counters {n}"),
    "greet_big": ("XIN CHÀO!", "WELCOME!"),
    "screen_ticket": ("Vui lòng chụp ảnh hoặc ghi nhớ số này", "Please take a photo of this number or note it down"),
    "done": ("Xong", "Done"),
    "documents": ("Hồ sơ cần chuẩn bị", "Documents to bring"),
    "fee": ("Lệ phí", "Fee"),
    "time": ("Thời gian giải quyết", "Processing time"),
    "read": ("Đọc to", "Read aloud"),
    "take_here": ("Lấy số lĩnh vực này", "Take a number for this"),
    "no_procedures": ("Chưa có thông tin thủ tục cho lĩnh vực này. Vui lòng hỏi cán bộ hướng dẫn.",
                      "No procedures listed for this service yet. Please ask a staff member."),
    "fee_note": ("Mức phí có thể thay đổi theo quy định; cán bộ sẽ hướng dẫn cụ thể.",
                 "Fees may change; the officer will confirm."),
    "more": ("Xem tiếp", "More"),
    "sorry": ("Xin lỗi quý khách", "We are sorry"),
    # a paper ticket printed offline that the service gave another number (docs/kiosk.md)
    "renumbered": ("Vé in số {printed} nay là số {number}", "Printed ticket {printed} is now number {number}"),
    # booking check-in
    "booking": ("Tôi đã đặt lịch", "I have a booking"),
    "enter_code": ("Nhập mã đặt lịch", "Enter your booking code"),
    "code_hint": ("Chạm các ô bên dưới để nhập 8 ký tự của mã, hoặc đưa mã QR vào máy quét",
                  "Touch the keys below to type the 8 characters, or hold the QR code to the scanner"),
    "delete": ("Xóa", "Delete"),
    "check_in": ("Xác nhận", "Check in"),
    "checking": ("Đang kiểm tra lịch hẹn, vui lòng chờ…", "Checking your booking, please wait…"),
    "retry_code": ("Nhập lại mã", "Type the code again"),
    "new_number": ("Lấy số mới", "Take a new number"),
    "title_bad_code": ("Mã không hợp lệ", "Not a booking code"),
    "title_unknown_code": ("Không tìm thấy lịch hẹn", "Booking not found"),
    "title_too_early": ("Chưa đến giờ hẹn", "Too early for your booking"),
    "title_booking_expired": ("Lịch hẹn đã hết hạn", "Your booking has expired"),
    "title_booking_cancelled": ("Lịch hẹn đã bị hủy", "Your booking was cancelled"),
    "title_daily_cap": ("Đã hết số hôm nay", "No numbers left today"),
    "title_unavailable": ("Chưa xác nhận được lịch hẹn", "Booking cannot be checked now"),
}


def t(key: str, lang: str, **kw) -> str:
    vi, en = T[key]
    s = en if lang == "en" else vi
    return s.format(**kw) if kw else s
