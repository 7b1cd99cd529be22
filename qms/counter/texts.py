"""What staff read on a counter terminal, in Vietnamese (English in docs/counter.md)."""
from __future__ import annotations

RATING_LEVELS = {4: "Rất hài lòng", 3: "Hài lòng", 2: "Bình thường", 1: "Không hài lòng"}


def ticket(number: int, printed: int | None = None) -> str:
    """A ticket's number; a renumbered one with the number on its paper, which the citizen
    hands over: "2001 (vé in 2950)"."""
    return f"{number} (vé in {printed})" if printed is not None else str(number)


def called(number: int, counter: int, printed: int | None = None) -> str:
    return f"Mời số {ticket(number, printed)} đến quầy {counter}."


def recalled(number: int, printed: int | None = None) -> str:
    return f"Đã gọi lại số {ticket(number, printed)}."


def no_show(number: int, printed: int | None = None) -> str:
    return f"Số {ticket(number, printed)}: vắng mặt."


def done(number: int, printed: int | None = None) -> str:
    return (f"Đã phục vụ xong số {ticket(number, printed)}. Mời công dân đánh giá "
            "(4 Rất hài lòng · 3 Hài lòng · 2 Bình thường · 1 Không hài lòng).")


def transferred(number: int, target: str, printed: int | None = None) -> str:
    return f"Đã chuyển số {ticket(number, printed)} sang {target}."


def service_target(name_vi: str) -> str:
    return f"lĩnh vực {name_vi}"


def counter_target(n: int) -> str:
    return f"quầy {n}"


def choosing(target: str, index: int, total: int) -> str:
    return (f"Chuyển sang {target}? ({index}/{total}) — bấm Chuyển để xem nơi khác, "
            f"giữ Chuyển (phím Enter) để xác nhận, phím khác để hủy.")


NO_ONE_WAITING = "Không còn ai đang chờ."
TRANSFER_CANCELLED = "Đã hủy chuyển."
PAUSED = "Quầy đang tạm nghỉ."
RESUMED = "Quầy đã mở lại."
NOT_SERVING = "Quầy chưa gọi số nào."
OFFLINE_REFUSED = "Mất kết nối máy chủ: chưa gọi được. Xin chờ kết nối lại rồi bấm lại."
NO_ANSWER = "Máy chủ không trả lời: thao tác chưa thực hiện. Xin bấm lại."
WAITING_FOR_SERVICE = "Đang chờ máy chủ xác nhận thao tác trước."
QUEUED_OFFLINE = "Mất kết nối: đã lưu, sẽ gửi khi có kết nối lại."
LINK_LOST = "Mất kết nối máy chủ."
LINK_BACK = "Đã kết nối lại máy chủ."
NO_RATING_NOW = "Không có lượt phục vụ nào để đánh giá."
ALREADY_RATED = "Số này đã được đánh giá."
NO_TARGETS = "Không có nơi nào để chuyển."


def thanks(level: int) -> str:
    return f"Cảm ơn quý khách đã đánh giá: {RATING_LEVELS[level]}."


def refused(message_vi: str | None) -> str:
    return f"Không thực hiện được: {message_vi or 'máy chủ từ chối.'}"


def alert_raised(message_vi: str) -> str:
    return f"CẢNH BÁO: {message_vi}"


def alert_cleared(message_vi: str) -> str:
    return f"Hết cảnh báo: {message_vi}"


def state_line(counter: int, serving: int | None, paused: bool, online: bool, pending: int,
               rating_open: bool, alerts: int = 0, printed: int | None = None) -> str:
    parts = [f"Quầy {counter}",
             f"Đang phục vụ: {ticket(serving, printed)}" if serving is not None else "Chưa phục vụ ai",
             "Tạm nghỉ" if paused else "Đang mở",
             "Kết nối: tốt" if online else "Kết nối: MẤT"]
    if pending:
        parts.append(f"Chờ gửi: {pending}")
    if rating_open:
        parts.append("Đang chờ đánh giá")
    if alerts:
        parts.append(f"Cảnh báo: {alerts}")
    return " | ".join(parts)


KEY_HELP = ("Phím: n gọi tiếp · r gọi lại · s vắng mặt · t chuyển · p tạm nghỉ/tiếp tục · "
            "d xong · 1–4 đánh giá · q thoát")
TOO_MANY_WAITING = "Quá nhiều thao tác đang chờ máy chủ: chưa thực hiện. Xin chờ kết nối lại."


def _acked(counter: int, action: str, type_: str, number: int | None, target: str,
           paused: bool, printed: int | None = None) -> str | None:
    if action == "next":
        return called(number, counter, printed) if number is not None else NO_ONE_WAITING
    if action == "recall":
        return recalled(number, printed)
    if action == "no_show":
        return no_show(number, printed)
    if action == "transfer":
        return transferred(number, target, printed)
    if action == "pause":
        return PAUSED if paused else RESUMED
    return None                         # done and ratings were said when pressed


_LINES = {
    "link": lambda online, first: None if first else (LINK_BACK if online else LINK_LOST),
    "refused": lambda action, type_, error, message_vi: refused(message_vi),
    "no_answer": lambda type_: NO_ANSWER,
    "chooser_idle": lambda: TRANSFER_CANCELLED,
    "transfer_cancelled": lambda: TRANSFER_CANCELLED,
    "not_serving": lambda action: NOT_SERVING,
    "waiting": lambda action: WAITING_FOR_SERVICE,
    "outbox_full": lambda action: TOO_MANY_WAITING,
    "offline": lambda action: OFFLINE_REFUSED,
    "no_targets": lambda: NO_TARGETS,
    "choosing": lambda label, index, total: choosing(label, index, total),
    "done": lambda number, online, printed=None: done(number, printed) if online else QUEUED_OFFLINE,
    "queued_offline": lambda: QUEUED_OFFLINE,
    "no_rating": lambda level: NO_RATING_NOW,
    "already_rated": lambda level: ALREADY_RATED,
    "thanks": thanks,
    "alert_raised": alert_raised,
    "alert_cleared": alert_cleared,
    "state": state_line,
}


def line(counter: int, what: str, *args) -> str | None:
    """The line staff read for one event of the counter's state machine (qms.firmware.box),
    or None for events that are only for the log (sent, repeated press, bad input)."""
    if what == "ok":
        return _acked(counter, *args)
    fn = _LINES.get(what)
    return fn(*args) if fn is not None else None
