"""Vietnamese numbers in words, the way a caller reads a ticket number aloud.

Speech engines must get words, not digits: espeak-ng reads 1000 as "một ngàn không
trăm" and always says "ngàn". The rules (see docs/voice.md):

- units: không một hai ba bốn năm sáu bảy tám chín; 10 = mười, 20 = hai mươi;
- after "mươi" (20 and up): 1 → mốt, 4 → tư (North) / bốn (South), 5 → lăm;
  after "mười": 5 → lăm, 1 and 4 stay một, bốn;
- a lone final digit after a hundred: linh (North) / lẻ (South): 105 = một trăm linh năm;
- an inner group below 100 says its zero hundreds: 1005 = một nghìn không trăm linh năm;
- nghìn (North) / ngàn (South).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Region = Literal["north", "south"]

UNITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
SCALES = ("", "thousand", "triệu", "tỷ")   # "thousand" is replaced by the region's word


@dataclass(frozen=True)
class Dialect:
    linh: str
    thousand: str
    four_after_muoi: str


DIALECTS: dict[str, Dialect] = {
    "north": Dialect(linh="linh", thousand="nghìn", four_after_muoi="tư"),
    "south": Dialect(linh="lẻ", thousand="ngàn", four_after_muoi="bốn"),
}


def _below_100(n: int, d: Dialect) -> list[str]:
    tens, unit = divmod(n, 10)
    if tens == 0:
        return [UNITS[unit]]
    if tens == 1:
        words = ["mười"]
        if unit == 5:
            words.append("lăm")
        elif unit:
            words.append(UNITS[unit])
        return words
    words = [UNITS[tens], "mươi"]
    if unit:
        words.append({1: "mốt", 4: d.four_after_muoi, 5: "lăm"}.get(unit, UNITS[unit]))
    return words


def _group(n: int, d: Dialect, inner: bool) -> list[str]:
    """Words for 0 < n < 1000; `inner` = a higher group was spoken before (say zero hundreds)."""
    hundreds, rest = divmod(n, 100)
    words: list[str] = []
    if hundreds or inner:
        words += [UNITS[hundreds], "trăm"]
    if rest == 0:
        return words
    if words and rest < 10:
        words += [d.linh, UNITS[rest]]
    else:
        words += _below_100(rest, d)
    return words


def number_words(n: int, region: Region = "north") -> list[str]:
    """Whole-number reading of a non-negative integer below 10^12, as a list of words."""
    if not isinstance(n, int) or n < 0 or n >= 10 ** 12:
        raise ValueError(f"cannot read {n!r}: expected an integer from 0 to 999 999 999 999")
    d = DIALECTS[region]
    if n == 0:
        return [UNITS[0]]
    groups: list[int] = []
    while n:
        n, g = divmod(n, 1000)
        groups.append(g)
    words: list[str] = []
    for scale in range(len(groups) - 1, -1, -1):
        g = groups[scale]
        if g == 0:
            continue
        words += _group(g, d, inner=bool(words))
        if scale:
            words.append(d.thousand if scale == 1 else SCALES[scale])
    return words


def digit_words(n: int) -> list[str]:
    """Digit-by-digit reading: 1005 → một không không năm."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"cannot read {n!r}: expected a non-negative integer")
    return [UNITS[int(c)] for c in str(n)]


def say_number(n: int, region: Region = "north", digits: bool = False) -> str:
    return " ".join(digit_words(n) if digits else number_words(n, region))
