"""An ESC/POS interpreter that draws what a thermal printer would print.

It understands the commands our encoder sends (and the common ones around them):
text with the resident font, sizes, bold, underline, white-on-black, alignment,
code pages, user-defined characters (ESC & / ESC % / ESC ?), raster images (GS v 0,
GS ( L, ESC *), QR codes (GS ( k), feeds and cuts; DLE EOT status requests are handed
to `on_status`. Anything else is skipped and listed in `unknown`, never a crash.

Bitmaps use 1 = dot (ink) internally; `page()` gives a normal picture, ink black on white.
"""
from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable

import qrcode
from PIL import Image, ImageChops, ImageOps

from qms.drivers import escpos_env
from qms.drivers.glyphs import CELL_H, CELL_W, MONO, SANS, cell_glyph, find_font

ESC, GS, DLE, FS = 0x1B, 0x1D, 0x10, 0x1C
# DLE DC4 fn=8: clear the receive and print buffers; real-time (acted on when received,
# even inside the data of a half-received command)
REALTIME_CLEAR = b"\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08"
DEFAULT_PITCH = 30


@dataclasses.dataclass
class PrintedChar:
    """One character cell as it came out: which code, and where its shape came from."""
    code: int
    char: str            # what the printer font drew ("" for a downloaded character)
    source: str          # "user" (downloaded), "resident" (printer font), "missing" (no glyph: '?')
    bitmap: Image.Image


class EscposRenderer:
    def __init__(self, paper_width_px: int = 576, profile: str = "default",
                 on_status: Callable[[int], bytes | None] | None = None,
                 on_cut: Callable[[Image.Image], None] | None = None, realtime_status: bool = False):
        self.paper_width_px = paper_width_px
        # True: DLE EOT is answered by whoever feeds us, on receipt (as a printer does);
        # here it is then only skipped
        self.realtime_status = realtime_status
        self.clears = 0                         # real-time buffer clears received
        self.interrupted = False                # the current page began before a clear/reset
        self.last_cut_interrupted = False
        self.on_status = on_status
        self.on_cut = on_cut
        escpos_env.check_profile(profile)
        self.slot_encoding = {slot: enc for enc, slot in escpos_env.code_page_slots(profile).items()}
        self.mono = find_font("", MONO)
        self.sans = find_font("", SANS)
        self.buf = bytearray()
        self.rows: list[Image.Image] = []       # printed strips of the current page
        self.pages: list[Image.Image] = []      # cut pages
        self.chars: list[PrintedChar] = []      # every character cell printed since creation
        self.images = 0                         # raster/column/QR images printed
        self.image_log: list[Image.Image] = []  # raster images as received (1 = dot)
        self.unknown: list[bytes] = []
        self.answers: list[bytes] = []          # bytes the printer sends back (status)
        self.last_qr_data = ""
        self.user_chars: dict[int, Image.Image] = {}
        self._tables: dict[int, dict[int, str]] = {}
        self.reset()

    # -- state -------------------------------------------------------------
    def reset(self) -> None:
        """ESC @: modes back to defaults, downloaded characters and the line buffer cleared."""
        self.bold = self.underline = self.invert = self.user_selected = False
        self.font_b = False
        self.mag_w = self.mag_h = 1
        self.align = 0
        self.pitch = DEFAULT_PITCH
        self.slot = 0
        self.user_chars.clear()
        self.line: list[Image.Image] = []
        self.qr_data, self.qr_size, self.qr_ec = b"", 3, 0
        self.graphics: Image.Image | None = None

    # -- input -------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.buf += data
        while (i := self.buf.find(REALTIME_CLEAR)) >= 0:
            rest = self.buf[i + len(REALTIME_CLEAR):]
            del self.buf[i:]
            self._run()                    # what came before it, up to a half command
            self.buf = bytearray(rest)     # which the clear throws away, with the line buffer
            self.clears += 1
            self.line = []
            if self.rows:
                self.interrupted = True
        self._run()

    def _run(self) -> None:
        while self.buf:
            used = self._step()
            if used == 0:
                break                      # command incomplete: wait for more bytes
            del self.buf[:used]

    def page(self) -> Image.Image:
        """What has been printed since the last cut (ink black on white)."""
        return _to_picture(self._stack(self.rows + self._pending_line_rows()), self.paper_width_px)

    def last_page(self) -> Image.Image:
        """The last cut page, or what is on the paper when no cut came (no cutter, cut = "none")."""
        if self.rows or self.line or not self.pages:
            return self.page()
        return self.pages[-1]

    def tear(self) -> Image.Image | None:
        """Tear the paper off by hand (a printer without cutter): as a cut, if anything printed."""
        if not (self.rows or self.line):
            return None
        self._cut()
        return self.pages[-1]

    def _pending_line_rows(self) -> list[Image.Image]:
        return [self._line_strip()] if self.line else []

    # -- the interpreter ----------------------------------------------------
    def _transmit_status(self, n: int) -> bytes | None:
        """GS r n as ESC/POS answers it, from the DLE EOT state; bit 4 is 0 (set in every
        DLE EOT answer), which tells a late DLE EOT answer from this one."""
        eot = self.on_status(4 if n in (1, 49) else 1)
        if not eot:
            return None
        if n in (1, 49):                  # paper sensors: near-end bits 0-1, end bits 2-3
            return bytes([(0x03 if eot[0] & 0x0C else 0) | (0x0C if eot[0] & 0x60 else 0)])
        return bytes([eot[0] >> 2 & 1])   # drawer kick-out connector pin 3

    def _need(self, n: int) -> bool:
        return len(self.buf) >= n

    def _step(self) -> int:
        b = self.buf
        c = b[0]
        if c == 0x0A:
            self._print_line()
            return 1
        if c == 0x0D:
            return 1
        if c == 0x09:
            self._char(0x20)
            return 1
        if c == DLE:
            return self._dle()
        if c == ESC:
            return self._esc()
        if c == GS:
            return self._gs()
        if c == FS:
            if not self._need(2):
                return 0
            self.unknown.append(bytes(b[:2]))
            return 2
        if c < 0x20 or c == 0x7F:
            self.unknown.append(bytes([c]))
            return 1
        self._char(c)
        return 1

    def _dle(self) -> int:
        b = self.buf
        if not self._need(2):
            return 0
        if b[1] == 0x05:                  # DLE ENQ n: real-time error recovery
            return 3 if self._need(3) else 0
        if b[1] == 0x04:
            if not self._need(3):
                return 0
            answer = self.on_status(b[2]) if self.on_status and not self.realtime_status else None
            if answer:
                self.answers.append(answer)
            return 3
        if b[1] == 0x14:
            if not self._need(3):
                return 0
            size = len(REALTIME_CLEAR) if b[2] == 0x08 else 5
            return size if self._need(size) else 0
        self.unknown.append(bytes(b[:2]))
        return 2

    def _esc(self) -> int:
        b = self.buf
        if not self._need(2):
            return 0
        cmd = b[1]
        two = {ord("@"), ord("2"), ord("<")}
        three = set(b"!EG-adJ3tM%?{VRe K=cU")
        if cmd in two:
            if cmd == ord("@"):
                self.line = []
                self.reset()
                if self.rows:              # printed before the reset: a cut-off job's top
                    self.interrupted = True
            elif cmd == ord("2"):
                self.pitch = DEFAULT_PITCH
            return 2
        if cmd == ord("p"):
            return 5 if self._need(5) else 0
        if cmd == ord("$"):
            return 4 if self._need(4) else 0
        if cmd == ord("&"):
            return self._define_chars()
        if cmd == ord("*"):
            return self._column_image()
        if cmd in three:
            if not self._need(3):
                return 0
            n = b[2]
            if cmd == ord("!"):
                self.font_b = bool(n & 0x01)
                self.bold = bool(n & 0x08)
                self.mag_h = 2 if n & 0x10 else 1
                self.mag_w = 2 if n & 0x20 else 1
                self.underline = bool(n & 0x80)
            elif cmd in (ord("E"), ord("G")):
                self.bold = bool(n & 1)
            elif cmd == ord("-"):
                self.underline = n not in (0, 48)
            elif cmd == ord("a"):
                self.align = {0: 0, 48: 0, 1: 1, 49: 1, 2: 2, 50: 2}.get(n, 0)
            elif cmd == ord("d"):
                self._print_line()
                self._blank(self.pitch * max(0, n - 1))
            elif cmd == ord("J"):
                self._print_line(feed=n)
            elif cmd == ord("3"):
                self.pitch = n
            elif cmd == ord("t"):
                self.slot = n
            elif cmd == ord("M"):
                self.font_b = n in (1, 49)
            elif cmd == ord("%"):
                self.user_selected = bool(n & 1)
            elif cmd == ord("?"):
                self.user_chars.pop(n, None)
            elif cmd == ord("c"):
                return 4 if self._need(4) else 0
            return 3
        self.unknown.append(bytes(b[:2]))
        return 2

    def _gs(self) -> int:
        b = self.buf
        if not self._need(2):
            return 0
        cmd = b[1]
        if cmd in b"!BbHhwfarI":
            if not self._need(3):
                return 0
            n = b[2]
            if cmd == ord("!"):
                self.mag_w, self.mag_h = (n >> 4 & 7) + 1, (n & 7) + 1
            elif cmd == ord("B"):
                self.invert = bool(n & 1)
            elif cmd == ord("r") and self.on_status:
                answer = self._transmit_status(n)
                if answer:
                    self.answers.append(answer)
            return 3
        if cmd in b"LW":
            return 4 if self._need(4) else 0
        if cmd == ord("V"):
            if not self._need(3):
                return 0
            if b[2] in (65, 66, 97, 98, 103, 104):
                if not self._need(4):
                    return 0
                self._cut()
                return 4
            self._cut()
            return 3
        if cmd == ord("v"):
            return self._raster_image()
        if cmd == ord("("):
            if not self._need(5):
                return 0
            size = 5 + b[3] + 256 * b[4]
            if not self._need(size):
                return 0
            body = bytes(b[5:size])
            if b[2] == ord("k"):
                self._qr(body)
            elif b[2] == ord("L"):
                self._graphics(body)
            else:
                self.unknown.append(bytes(b[:3]))
            return size
        if cmd == ord("k"):
            return self._skip_barcode()
        self.unknown.append(bytes(b[:2]))
        return 2

    # -- characters ---------------------------------------------------------
    def _table(self, slot: int) -> dict[int, str]:
        if slot not in self._tables:
            enc = self.slot_encoding.get(slot)
            try:
                self._tables[slot] = escpos_env.code_page_table(enc) if enc else {}
            except KeyError:
                self._tables[slot] = {}
        return self._tables[slot]

    def _char(self, code: int) -> None:
        cell_w, cell_h = (9, 17) if self.font_b else (CELL_W, CELL_H)
        if self.user_selected and code in self.user_chars:
            img, source, char = self.user_chars[code], "user", ""
        else:
            char = chr(code) if code < 0x80 else self._table(self.slot).get(code)
            source = "resident"
            if char is None:
                char, source = "?", "missing"
            if unicodedata.combining(char):
                # a lone tone mark (CP1258): printed in a cell of its own, as many printers do
                char = "\u00a0" + char
            img = cell_glyph(char, self.mono if char.isascii() else self.sans, cell_w, cell_h)
        self.chars.append(PrintedChar(code, char, source, img))
        self._put(self._styled(img))

    def _styled(self, img: Image.Image) -> Image.Image:
        if self.mag_w > 1 or self.mag_h > 1:
            img = img.resize((img.width * self.mag_w, img.height * self.mag_h), Image.Resampling.NEAREST)
        if self.bold:
            shifted = Image.new("1", img.size, 0)
            shifted.paste(img.crop((0, 0, img.width - 1, img.height)), (1, 0))
            img = ImageChops.logical_or(img, shifted)
        if self.underline:
            img = img.copy()
            img.paste(1, (0, img.height - 2, img.width, img.height))
        if self.invert:
            img = ImageChops.invert(img.convert("L")).convert("1")
        return img

    def _put(self, img: Image.Image) -> None:
        if sum(i.width for i in self.line) + img.width > self.paper_width_px:
            self._print_line()               # the printer wraps a full line by itself
        self.line.append(img)

    def _define_chars(self) -> int:
        b = self.buf
        if not self._need(5):
            return 0
        y, c1, c2 = b[2], b[3], b[4]
        pos, chars = 5, {}
        for code in range(c1, c2 + 1):
            if not self._need(pos + 1):
                return 0
            x = b[pos]
            n = x * y
            if not self._need(pos + 1 + n):
                return 0
            chars[code] = _from_columns(bytes(b[pos + 1:pos + 1 + n]), x, y)
            pos += 1 + n
        if 1 <= y <= 3 and 0x20 <= c1 <= c2 <= 0x7E:
            self.user_chars.update(chars)
        else:
            self.unknown.append(bytes(b[:5]))
        return pos

    # -- images -------------------------------------------------------------
    def _raster_image(self) -> int:
        b = self.buf
        if not self._need(8):
            return 0
        m, wb, h = b[3], b[4] + 256 * b[5], b[6] + 256 * b[7]
        if not self._need(8 + wb * h):
            return 0
        img = Image.frombytes("1", (wb * 8, h), bytes(b[8:8 + wb * h]))
        self._place_image(img, 2 if m & 1 else 1, 2 if m & 2 else 1)
        return 8 + wb * h

    def _graphics(self, body: bytes) -> None:
        """GS ( L: fn 112 stores a raster graphic, fn 50 prints it."""
        if len(body) >= 10 and body[1] == 112:
            w, h = body[6] + 256 * body[7], body[8] + 256 * body[9]
            wb = (w + 7) // 8
            data = body[10:10 + wb * h]
            if len(data) == wb * h:
                self.graphics = Image.frombytes("1", (wb * 8, h), data).crop((0, 0, w, h))
        elif len(body) >= 2 and body[1] == 50 and self.graphics is not None:
            self._place_image(self.graphics)
            self.graphics = None

    def _column_image(self) -> int:
        """ESC * m nL nH d...: a bit image in the text line (8 or 24 dots tall)."""
        b = self.buf
        if not self._need(5):
            return 0
        m, n = b[2], b[3] + 256 * b[4]
        rows = 3 if m in (32, 33) else 1
        size = 5 + n * rows
        if not self._need(size):
            return 0
        img = _from_columns(bytes(b[5:size]), n, rows)
        self.images += 1
        self._put(img)
        return size

    def _qr(self, body: bytes) -> None:
        if len(body) < 2 or body[0] != 49:
            return                                   # not a QR code (PDF417...): not drawn
        fn = body[1]
        if fn == 67 and len(body) > 2:
            self.qr_size = body[2]
        elif fn == 69 and len(body) > 2:
            self.qr_ec = body[2] - 48
        elif fn == 80:
            self.qr_data = body[3:]
        elif fn == 81 and self.qr_data:
            ec = [qrcode.constants.ERROR_CORRECT_L, qrcode.constants.ERROR_CORRECT_M,
                  qrcode.constants.ERROR_CORRECT_Q, qrcode.constants.ERROR_CORRECT_H][min(max(self.qr_ec, 0), 3)]
            qr = qrcode.QRCode(box_size=max(1, self.qr_size), border=0, error_correction=ec)
            qr.add_data(self.qr_data)
            qr.make(fit=True)
            img = qr.make_image().get_image().convert("L")
            self.last_qr_data = self.qr_data.decode("utf-8", "replace")
            self._place_image(ImageOps.invert(img).convert("1"))

    def _place_image(self, img: Image.Image, mag_w: int = 1, mag_h: int = 1) -> None:
        self.image_log.append(img)
        if self.line:
            self._print_line()
        if mag_w > 1 or mag_h > 1:
            img = img.resize((img.width * mag_w, img.height * mag_h), Image.Resampling.NEAREST)
        img = img.crop((0, 0, min(img.width, self.paper_width_px), img.height))
        strip = Image.new("1", (self.paper_width_px, img.height), 0)
        strip.paste(img, (self._x0(img.width), 0))
        self.rows.append(strip)
        self.images += 1

    def _skip_barcode(self) -> int:
        b = self.buf
        if not self._need(3):
            return 0
        m = b[2]
        if m <= 6:
            end = b.find(b"\x00", 3)
            if end < 0:
                return 0
            self.unknown.append(b"\x1dk")
            return end + 1
        if not self._need(4) or not self._need(4 + b[3]):
            return 0
        self.unknown.append(b"\x1dk")
        return 4 + b[3]

    # -- paper --------------------------------------------------------------
    def _x0(self, width: int) -> int:
        room = max(0, self.paper_width_px - width)
        return (0, room // 2, room)[self.align]

    def _line_strip(self, feed: int | None = None) -> Image.Image:
        height = max(i.height for i in self.line)
        total = max(height, self.pitch if feed is None else feed)
        strip = Image.new("1", (self.paper_width_px, total), 0)
        x = self._x0(sum(i.width for i in self.line))
        for img in self.line:
            strip.paste(img, (x, height - img.height))
            x += img.width
        return strip

    def _print_line(self, feed: int | None = None) -> None:
        if self.line:
            self.rows.append(self._line_strip(feed))
            self.line = []
        else:
            self._blank(self.pitch if feed is None else feed)

    def _blank(self, dots: int) -> None:
        if dots > 0:
            self.rows.append(Image.new("1", (self.paper_width_px, dots), 0))

    def _cut(self) -> None:
        if self.line:
            self._print_line()
        page = self.page()
        self.rows = []
        self.last_cut_interrupted, self.interrupted = self.interrupted, False
        self.pages.append(page)
        if self.on_cut:
            self.on_cut(page)

    @staticmethod
    def _stack(rows: list[Image.Image]) -> Image.Image:
        width = rows[0].width if rows else 1
        out = Image.new("1", (width, max(1, sum(r.height for r in rows))), 0)
        y = 0
        for r in rows:
            out.paste(r, (0, y))
            y += r.height
        return out


def _from_columns(data: bytes, width: int, rows_of_8: int) -> Image.Image:
    """Column-major bitmap (ESC & and ESC *): `rows_of_8` bytes per column, MSB on top."""
    img = Image.new("1", (width, rows_of_8 * 8), 0)
    px = img.load()
    for x in range(width):
        for r in range(rows_of_8):
            i = x * rows_of_8 + r
            byte = data[i] if i < len(data) else 0
            for bit in range(8):
                if byte & (0x80 >> bit):
                    px[x, r * 8 + bit] = 1
    return img


def _to_picture(ink: Image.Image, width: int) -> Image.Image:
    """Ink black on white paper, with a grey table around so that the paper's edges show."""
    paper = ImageOps.invert(ink.convert("L"))
    margin = 12
    out = Image.new("L", (width + 2 * margin, paper.height + 2 * margin), 200)
    out.paste(paper, (margin, margin))
    return out


def render(data: bytes, paper_width_px: int = 576, profile: str = "default") -> EscposRenderer:
    """Interpret a whole job; the result holds `.pages` (one per cut) and the trace."""
    r = EscposRenderer(paper_width_px, profile)
    r.feed(data)
    return r
