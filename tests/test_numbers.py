"""Vietnamese number words, checked against the rules written a second, different way.

The code under test builds words group by group; here every number is first read naively
place by place ("một nghìn không trăm không mươi năm") and then rewritten by the rules as
string substitutions, so a shared mistake is unlikely.
"""
import re
import unicodedata

import pytest

from qms.voice.numbers import digit_words, number_words, say_number

U = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]


def by_rewriting(n: int, region: str) -> str:
    if n == 0:
        return "không"
    a, b, c, d = (int(x) for x in f"{n:04d}")
    s = f"{U[a]} nghìn {U[b]} trăm {U[c]} mươi {U[d]}"
    s = re.sub(r"( không trăm)? không mươi không$", "", s)   # x000, xy00
    s = re.sub(r"^(không (nghìn|trăm|mươi) )+", "", s)       # leading zero places
    s = re.sub(r"không mươi (\S+)$", r"linh \1", s)           # 105, 1005
    s = re.sub(r"mươi không$", "mươi", s)                      # 20, 1010
    s = re.sub(r"một mươi", "mười", s)                          # 10-19
    s = re.sub(r"mười năm$", "mười lăm", s)
    s = re.sub(r"mươi năm$", "mươi lăm", s)
    s = re.sub(r"mươi một$", "mươi mốt", s)
    if region == "north":
        s = re.sub(r"mươi bốn$", "mươi tư", s)
    else:
        s = s.replace("linh", "lẻ").replace("nghìn", "ngàn")
    return s


@pytest.mark.parametrize("region", ["north", "south"])
def test_every_number_below_10000_follows_the_rules(region):
    wrong = [(n, say_number(n, region), by_rewriting(n, region))
             for n in range(10000) if say_number(n, region) != by_rewriting(n, region)]
    assert not wrong, wrong[:10]


# Written out by hand, from docs/voice.md and the domain notes.
EXAMPLES = {
    0: ("không", "không"),
    5: ("năm", "năm"),
    10: ("mười", "mười"),
    11: ("mười một", "mười một"),
    14: ("mười bốn", "mười bốn"),
    15: ("mười lăm", "mười lăm"),
    20: ("hai mươi", "hai mươi"),
    21: ("hai mươi mốt", "hai mươi mốt"),
    24: ("hai mươi tư", "hai mươi bốn"),
    25: ("hai mươi lăm", "hai mươi lăm"),
    100: ("một trăm", "một trăm"),
    101: ("một trăm linh một", "một trăm lẻ một"),
    104: ("một trăm linh bốn", "một trăm lẻ bốn"),
    105: ("một trăm linh năm", "một trăm lẻ năm"),
    110: ("một trăm mười", "một trăm mười"),
    115: ("một trăm mười lăm", "một trăm mười lăm"),
    1000: ("một nghìn", "một ngàn"),
    1005: ("một nghìn không trăm linh năm", "một ngàn không trăm lẻ năm"),
    1010: ("một nghìn không trăm mười", "một ngàn không trăm mười"),
    1024: ("một nghìn không trăm hai mươi tư", "một ngàn không trăm hai mươi bốn"),
    1100: ("một nghìn một trăm", "một ngàn một trăm"),
    2025: ("hai nghìn không trăm hai mươi lăm", "hai ngàn không trăm hai mươi lăm"),
    9999: ("chín nghìn chín trăm chín mươi chín", "chín ngàn chín trăm chín mươi chín"),
    21000: ("hai mươi mốt nghìn", "hai mươi mốt ngàn"),
    1000005: ("một triệu không trăm linh năm", "một triệu không trăm lẻ năm"),
}


@pytest.mark.parametrize("n", sorted(EXAMPLES))
def test_hand_written_examples(n):
    north, south = EXAMPLES[n]
    assert say_number(n, "north") == north
    assert say_number(n, "south") == south


def test_words_are_nfc():
    for n in (0, 1005, 2024, 9999):
        for w in number_words(n) + number_words(n, "south"):
            assert unicodedata.normalize("NFC", w) == w


def test_digit_by_digit():
    assert digit_words(1005) == ["một", "không", "không", "năm"]
    assert say_number(2024, digits=True) == "hai không hai bốn"


@pytest.mark.parametrize("bad", [-1, 10 ** 12, 1.5, "12", None])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="cannot read"):
        number_words(bad)
