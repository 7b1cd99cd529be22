"""Shared by the layout suite (tests/test_layout*.py): the sizes, the stress config of long
real names, contrast, and where the kept screenshots go (docs/screens/ with QMS_UPDATE_SCREENS=1, else artifacts/screens/; PNG-optimised)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
# the pictures the docs show are refreshed on request only (they carry the clock: a plain
# test run must not change tracked files): QMS_UPDATE_SCREENS=1 pytest tests/test_layout_*.py
SCREENS = ROOT / "docs" / "screens" if os.environ.get("QMS_UPDATE_SCREENS") == "1" else ROOT / "artifacts" / "screens"
SIZES = [(800, 480), (1024, 600), (1280, 720), (1920, 1080), (1080, 1920)]
SMALL = (800, 480)
MIN_PX = 18
MIN_TARGET = 60
MIN_CONTRAST = 4.5

# the longest names of a ward's catalogue of procedures (kiosk/catalog_default.toml and the
# national catalogue's titles), as service names: what the faces must hold
LONG_NAMES = {
    "chung-thuc": "Chứng thực bản sao từ bản chính giấy tờ, văn bản do cơ quan có thẩm quyền cấp",
    "ho-tich": "Đăng ký khai sinh, kết hôn, khai tử và cấp bản sao trích lục hộ tịch",
    "dat-dai": "Đăng ký biến động đất đai (chuyển nhượng, tặng cho, thừa kế)",
    "xay-dung": "Cấp giấy phép xây dựng nhà ở riêng lẻ",
    "ho-kinh-doanh": "Thay đổi nội dung đăng ký hộ kinh doanh",
    "van-hoa-xa-hoi": "Trợ cấp xã hội hằng tháng (người cao tuổi, người khuyết tật)",
    "bhxh-bhyt": "Cấp thẻ bảo hiểm y tế cho trẻ em dưới 6 tuổi",
    "nhan-ket-qua": "Nhận kết quả / hỗ trợ nộp hồ sơ trực tuyến trên Cổng dịch vụ công quốc gia",
}
LONG_CENTER = "Trung tâm Phục vụ hành chính công phường Nguyễn Thị Minh Khai"
# the proper names of the example and the stress config (center, address): each one word to a
# line break, as "thủ tục" is
PLACE_NAMES = ("Nguyễn Thị Minh Khai", "An Khánh", "Lê Lợi")


def cut_words(lines: list[str], words) -> list[str]:
    """The words (of several syllables) that a line break cuts: a line ending with the first
    syllables of one and the next line starting with the rest."""
    lines = [" ".join(x.replace("\u00a0", " ").lower().split()) for x in lines]
    cut = []
    for a, b in zip(lines, lines[1:]):
        for word in words:
            syl = word.lower().split(" ")
            for k in range(1, len(syl)):
                head, rest = " ".join(syl[:k]), " ".join(syl[k:])
                if (a == head or a.endswith(" " + head)) and b.startswith(rest):
                    cut.append(word)
    return cut


def stress(text: str) -> str:
    """A config text with the long names in place of the example's."""
    for sid, name in LONG_NAMES.items():
        text = re.sub(rf'(id = "{sid}"\ncode = \d+\nname_vi = )"[^"]*"', rf'\1"{name}"', text)
    return re.sub(r'^center = "[^"]*"', f'center = "{LONG_CENTER}"', text, flags=re.M)


def luminance(rgb) -> float:
    def ch(v):
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = rgb[:3]
    return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b)


def contrast(a, b) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def keep_png(src, name: str) -> Path:
    """Save (a path, a PIL image or a pygame surface) as SCREENS/<name>.png, as a
    palette PNG (a screen has few colours): a few tens of KB each."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    if isinstance(src, (str, Path)):
        img = Image.open(src)
    elif isinstance(src, Image.Image):
        img = src
    else:
        import pygame
        img = Image.frombytes("RGB", src.get_size(), pygame.image.tobytes(src, "RGB"))
    img = img.convert("RGB")
    if max(img.size) > 1280:                   # the docs need no more than this
        img.thumbnail((1280, 1280))
    out = SCREENS / f"{name}.png"
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out
