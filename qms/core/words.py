"""Vietnamese words on screens and pages: a word's syllables are written apart ("thủ tục"
is one word), so a line may break inside a word. Every face joins the syllables of the
known words of the administrative vocabulary (and of the procedures' names), and of proper
names (runs of capitalised syllables: places, streets), with a no-break space before it
wraps text: the kiosk (kiosk/ui.py), the web pages
(qms/web/pages.py)."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator

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


# a proper name (a place, a street, a person a place is named after) is a run of 2 to 4
# capitalised syllables: "An Khánh", "Lê Lợi", "Nguyễn Thị Minh Khai". No list can hold every
# ward's names, so the rule is general; all-caps words ("QUẦY", "BHXH") are not names, and a
# longer run (a title in Title Case) is left free to wrap
_RUN = re.compile(r"[^\W\d_]+(?: [^\W\d_]+)+")
_SYLLABLE = re.compile(r"[^\W\d_]+")
NAME_SYLLABLES = (2, 4)


def _titled(syllable: str) -> bool:
    return syllable[0].isupper() and (len(syllable) == 1 or syllable[1:].islower())


def _names(text: str) -> Iterator[tuple[int, int]]:
    for run in _RUN.finditer(text):
        group: list[re.Match] = []
        for syl in [*_SYLLABLE.finditer(run.group(0)), None]:
            if syl is not None and _titled(syl.group(0)):
                group.append(syl)
                continue
            if NAME_SYLLABLES[0] <= len(group) <= NAME_SYLLABLES[1]:
                yield run.start() + group[0].start(), run.start() + group[-1].end()
            group = []


def groups(text: str) -> list[tuple[int, int]]:
    """Where a line must not break: the known words and the proper names, as (start, end),
    overlapping ones merged."""
    # every match, overlapping ones too ("lấy số" and "số thứ tự" make one group)
    found = (compounds().match(text, i) for i in range(len(text)) if i == 0 or not text[i - 1].isalnum())
    spans = sorted([m.span() for m in found if m] + list(_names(text)))
    merged: list[tuple[int, int]] = []
    for a, z in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(z, merged[-1][1]))
        else:
            merged.append((a, z))
    return merged


def _each_group(text: str, join: Callable[[str], str]) -> str:
    out, at = [], 0
    for a, z in groups(text):
        out += [text[at:a], join(text[a:z])]
        at = z
    return "".join(out) + text[at:]


def keep_words(text: str) -> str:
    """Join the syllables of the known words and of proper names with no-break spaces (wrap
    never cuts them)."""
    return _each_group(text, lambda w: w.replace(" ", "\u00a0"))


def keep_words_html(escaped: str) -> str:
    """The same for HTML (already escaped): each group in <span class="w">, which CSS keeps
    on one line; the text itself keeps its ordinary spaces (search, copy, tests)."""
    return _each_group(escaped, lambda w: f'<span class="w">{w}</span>')


