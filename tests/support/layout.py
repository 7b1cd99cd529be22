"""Shared by the layout suite (tests/test_layout*.py): the sizes, the stress config of long
real names, contrast, and where the kept screenshots go (docs/screens/ with QMS_UPDATE_SCREENS=1, else artifacts/screens/; PNG-optimised)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import Image

from qms.core.words import COMPOUNDS

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


# ---------------------------------------------------------------- web pages in Chromium
# (tests/test_layout_web.py, tests/test_web_city.py): page.evaluate(CHECK, [MIN_PX, MIN_TARGET or 0, WORDS])
WORDS = sorted({w.lower() for w in (*COMPOUNDS, *PLACE_NAMES) if " " in w})

CHECK = """([minPx, minTarget, compounds]) => {
  const out = [];
  const vw = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > vw + 1) out.push(`page is ${document.documentElement.scrollWidth} px wide in ${vw}`);
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                                   .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const background = (el) => {
    for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    if (!text) continue;
    const el = n.parentElement, cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || el.closest('svg, script, style, noscript')) continue;
    const range = document.createRange(); range.selectNodeContents(n);
    const rects = [...range.getClientRects()];
    if (!rects.length) continue;
    let box = el; while (box && getComputedStyle(box).display === 'inline') box = box.parentElement;
    const b = box.getBoundingClientRect();
    for (const r of rects) {
      if (r.left < -1 || r.right > vw + 1) out.push(`'${text.slice(0, 40)}' leaves the screen`);
      else if (r.left < b.left - 1 || r.right > b.right + 1) out.push(`'${text.slice(0, 40)}' outside its box`);
    }
    // no word broken across lines: each word (and each known compound, qms/core/words.py)
    // must lie on one line box, i.e. all its fragments share a top
    const spans = [];
    for (const m of n.textContent.matchAll(/[^\\s\\u00a0]+/g)) spans.push([m.index, m.index + m[0].length]);
    const low = n.textContent.toLowerCase();
    for (const w of compounds) for (let i = low.indexOf(w); i >= 0; i = low.indexOf(w, i + 1)) spans.push([i, i + w.length]);
    for (const [a, z] of spans) {
      const wr = document.createRange(); wr.setStart(n, a); wr.setEnd(n, z);
      const tops = new Set([...wr.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top / 4)));
      if (tops.size > 1) out.push(`'${n.textContent.slice(a, z)}' broken across lines in '${text.slice(0, 40)}'`);
    }
    const px = parseFloat(cs.fontSize);
    if (px < minPx) out.push(`'${text.slice(0, 40)}' is ${px} px`);
    const c = ratio(rgb(cs.color).slice(0, 3), background(el));
    if (c < 4.5) out.push(`'${text.slice(0, 40)}' contrast ${c.toFixed(1)}:1`);
  }
  // every link, button and select is a touch target at least minTarget high (and wide)
  if (minTarget) for (const el of document.querySelectorAll('a, button, select, input, summary')) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.height < minTarget - 0.5 || r.width < minTarget - 0.5))
      out.push(`target '${el.textContent.trim().slice(0, 30)}' is ${r.width.toFixed(0)}x${r.height.toFixed(0)} px`);
  }
  return out;
}"""
