"""Vietnamese words on screens and pages: a word's syllables are written apart ("thủ tục"
is one word), so a line may break inside a word. Every face joins the syllables of the
known words of the administrative vocabulary (and of the procedures' names) with a
no-break space before it wraps text: the kiosk (kiosk/ui.py), the web pages
(qms/web/pages.py)."""
from __future__ import annotations

import re

# Vietnamese writes a word's syllables apart ("thủ tục" is one word): a line never breaks
# inside these words of the administrative vocabulary (and of the procedures' names); the
# syllables are joined by a no-break space before wrapping
COMPOUNDS = (
    "thủ tục", "đặt lịch", "chữ ký", "số thứ tự", "lĩnh vực", "màn hình", "đối tượng", "ưu tiên",
    "dịch vụ", "hồ sơ", "lệ phí", "giải quyết", "kết quả", "hộ tịch", "chứng thực", "khai sinh",
    "kết hôn", "khai tử", "đất đai", "xây dựng", "kinh doanh", "văn hóa", "xã hội", "trợ cấp",
    "người có công", "trực tuyến", "hỗ trợ", "cao tuổi", "khuyết tật", "mang thai", "cách mạng",
    "sao y", "bản sao", "giấy tờ", "căn cước", "công dân", "hộ khẩu", "tạm trú", "thường trú",
    "xác nhận", "đăng ký", "cấp đổi", "cấp lại", "phiếu", "trung tâm", "hành chính", "phục vụ",
    "nhận phiếu", "gọi số", "lấy số", "quay lại", "tiếp tục", "hài lòng", "cán bộ", "hướng dẫn",
    "thời gian", "bảo hiểm", "xã hội", "y tế", "tình trạng", "hôn nhân", "quyền sử dụng",
)
_COMPOUND_RE: re.Pattern | None = None


def compounds() -> re.Pattern:
    """The known words (longest first), case-insensitive, whole words only."""
    global _COMPOUND_RE
    if _COMPOUND_RE is None:
        words = sorted({w for w in COMPOUNDS if " " in w}, key=len, reverse=True)
        _COMPOUND_RE = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.I)
    return _COMPOUND_RE


def keep_words(text: str) -> str:
    """Join the syllables of the known words with no-break spaces (wrap never cuts them)."""
    return compounds().sub(lambda m: m.group(0).replace(" ", "\u00a0"), text)


def keep_words_html(escaped: str) -> str:
    """The same for HTML (already escaped): each known word in <span class="w">, which CSS
    keeps on one line; the text itself keeps its ordinary spaces (search, copy, tests)."""
    return compounds().sub(lambda m: f'<span class="w">{m.group(0)}</span>', escaped)


