"""Procedure texts rewritten for a speech engine: numbers, fees and form codes as words.

espeak-ng's Vietnamese voice reads "10.000 đ" as "mười ngàn không trăm đê", "02 ngày" as
"không hai ngày" and drops the dash of "15–30 phút". The kiosk reads fees and deadlines
to people who may not read the screen, so what it says must be what a clerk would say:

- "10.000 đ/trường hợp" → "mười nghìn đồng một trường hợp" (dots group thousands);
- "02 ngày" → "hai ngày"; "1,5" → "một phẩy năm"; "50%" → "năm mươi phần trăm";
- "15–30 phút" → "mười lăm đến ba mươi phút"; "15:30" → "mười lăm giờ ba mươi";
- "thứ 4" → "thứ tư", "thứ 1" → "thứ nhất"; "12/3/2026" → "mười hai tháng ba năm hai nghìn không trăm hai mươi sáu";
- form codes ("Mẫu 04/ĐK", "TK1-TS") keep their letters and spell their digits one by one.

Numbers are read by qms/voice/numbers.py (the hall's caller), so the kiosk and the hall
say numbers the same way, in the site's region (nghìn/ngàn, linh/lẻ).
"""
from __future__ import annotations

import re
import unicodedata

from qms.voice.numbers import Region, digit_words, number_words

_NUM = r"\d{1,3}(?:\.\d{3})+(?!\d)|\d+"           # 10.000 (dots group thousands) or 25
_CODE = re.compile(r"(?<![\w])(?=[\w/-]*\d)(?=[\w/-]*[^\W\d_])\w+(?:[/-]\w+)+(?![\w])"   # 04/ĐK, TK1-TS
                   r"|(?<![\w])(?=\w*\d)[^\W\d_]+\d+\w*(?![\w])")                        # TK1
_RANGE = re.compile(rf"(?<![\w.,])({_NUM})\s*[–—-]\s*({_NUM})(?![\w])")
_CLOCK = re.compile(r"(?<![\w:])([01]?\d|2[0-3]):([0-5]\d)(?![\w:])")
_DATE = re.compile(r"(?<![\w/])(0?[1-9]|[12]\d|3[01])/(0?[1-9]|1[0-2])(?:/(\d{4}))?(?![\w/])")
_DECIMAL = re.compile(r"(?<![\w.,])(\d+),(\d+)(?![\w])")
_ORDINAL = re.compile(r"\b(thứ|Thứ)\s+([14])(?!\d)")
_MONEY = re.compile(rf"({_NUM})\s*(?:đ|đồng|VNĐ|VND)(?![\w])(/)?")
_PERCENT = re.compile(rf"({_NUM})\s*%")
_NUMBER = re.compile(rf"(?<![\w])({_NUM})(?![\w])")


def _words(num: str, region: Region) -> str:
    return " ".join(number_words(int(num.replace(".", "")), region))


def _digits(run: str) -> str:
    return " ".join(" ".join(digit_words(int(c))) for c in run)   # keeps leading zeros: 04


def _code(m: re.Match) -> str:
    out = []
    for part in re.split(r"[/-]", m.group(0)):
        for run in re.findall(r"\d+|\D+", part):
            out.append(_digits(run) if run.isdigit() else run)
    return " ".join(out)


def spoken_vi(text: str, region: Region = "north") -> str:
    """The Vietnamese text with every number written out in words (NFC)."""
    s = unicodedata.normalize("NFC", text)
    w = lambda n: _words(n, region)  # noqa: E731
    s = _CODE.sub(_code, s)
    s = _ORDINAL.sub(lambda m: f"{m.group(1)} {'nhất' if m.group(2) == '1' else 'tư'}", s)
    s = _CLOCK.sub(lambda m: f"{w(m.group(1))} giờ" + (f" {w(m.group(2))}" if int(m.group(2)) else ""), s)
    s = _DATE.sub(lambda m: f"{w(m.group(1))} tháng {w(m.group(2))}" + (f" năm {w(m.group(3))}" if m.group(3) else ""), s)
    s = _RANGE.sub(lambda m: f"{m.group(1)} đến {m.group(2)}", s)
    s = _MONEY.sub(lambda m: f"{w(m.group(1))} đồng" + (" một " if m.group(2) else ""), s)
    s = _PERCENT.sub(lambda m: f"{w(m.group(1))} phần trăm", s)
    s = _DECIMAL.sub(lambda m: f"{w(m.group(1))} phẩy {w(m.group(2))}", s)
    s = _NUMBER.sub(lambda m: w(m.group(1)), s)
    s = re.sub(r"\s+", " ", s).strip()
    return unicodedata.normalize("NFC", s)


def spoken_en(text: str) -> str:
    """English: espeak-ng's English voice reads digits well; only the currency needs a word."""
    return re.sub(r"\bVN[DĐ]\b", "dong", unicodedata.normalize("NFC", text))


def spoken(text: str, lang: str, region: Region = "north") -> str:
    return spoken_en(text) if lang == "en" else spoken_vi(text, region)
