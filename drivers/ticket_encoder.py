"""Ticket -> ESC/POS bytes, made with python-escpos.

The encoder knows nothing about the link to the printer; `TicketPrinter` sends what it makes.
"""
from __future__ import annotations

from escpos.constants import QR_ECLEVEL_M

from qms.config.printer import PrinterConfig
from qms.drivers import escpos_env
from qms.drivers.ticket import TicketPrint
from qms.drivers.ticket_layout import BigNumber, Feed, Item, Qr, Rule, Style, Text, ticket_blocks
from qms.drivers.vietnamese_text import CodePageText, GlyphText, PrinterFont, RasterText, VietnameseText


class TicketEncoder:
    def __init__(self, cfg: PrinterConfig):
        escpos_env.check_profile(cfg.profile)
        self.cfg = cfg
        self.printer_font = PrinterFont(cfg.paper_width_px)
        self.native_qr = cfg.qr == "native" or (
            cfg.qr == "auto" and escpos_env.supports(cfg.profile, "qrCode"))
        self._vietnamese(cfg.vietnamese)      # fail now on a bad mode/profile/font, not at print time

    def _vietnamese(self, mode: str) -> VietnameseText:
        cfg = self.cfg
        raster = RasterText(cfg.paper_width_px, cfg.font, cfg.font_bold)
        if mode == "glyphs":
            return GlyphText(cfg.paper_width_px, raster, cfg.font)
        if mode == "codepage":
            return CodePageText(cfg.paper_width_px, cfg.profile, cfg.codepage, raster)
        return raster

    def encode(self, ticket: TicketPrint) -> bytes:
        return self.encode_items(ticket_blocks(ticket, self.cfg))

    def encode_items(self, items: list[Item], mode: str | None = None) -> bytes:
        """The bytes of one job: init, the items, cut. `mode` overrides the configured one."""
        esc = escpos_env.dummy(self.cfg.profile, self.cfg.paper_width_px)
        vietnamese = self._vietnamese(mode or self.cfg.vietnamese)
        rule = "-" * self.printer_font.columns(Style())
        esc.hw("INIT")
        esc.line_spacing()
        vietnamese.begin(esc, [i.text for i in items if isinstance(i, Text)],
                         rule + "".join(i.digits for i in items if isinstance(i, BigNumber)))
        for item in items:
            if isinstance(item, Text):
                vietnamese.line(esc, item.text, item.style)
            elif isinstance(item, BigNumber):
                esc.set(align="center", bold=True, smooth=True, custom_size=True,
                        width=item.scale, height=item.scale)
                esc.text(item.digits + "\n")
                esc.set(bold=False, smooth=False, normal_textsize=True)
            elif isinstance(item, Qr):
                esc.set(align="center", normal_textsize=True)
                esc.qr(item.data, ec=QR_ECLEVEL_M, size=self.cfg.qr_module_px, native=self.native_qr)
            elif isinstance(item, Rule):
                self.printer_font.line(esc, rule, Style())
            elif isinstance(item, Feed):
                esc.ln(item.lines)
        vietnamese.end(esc)
        esc.set(align="left", bold=False, custom_size=True, width=1, height=1)
        self._cut(esc)
        return esc.output

    def _cut(self, esc) -> None:
        if self.cfg.cut == "none":
            esc.print_and_feed(5)
        else:
            esc.cut(mode="PART" if self.cfg.cut == "partial" else "FULL")

    def trim(self) -> bytes:
        """Feed and cut as a job ends, alone (the paper's end after a cut-off job)."""
        esc = escpos_env.dummy(self.cfg.profile, self.cfg.paper_width_px)
        self._cut(esc)
        return esc.output
