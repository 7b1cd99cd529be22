"""`qms printer preview | selftest | status`: see and check the ticket printer.

preview   render a sample ticket from the config into a PNG (no printer needed)
selftest  print every Vietnamese letter in each way of printing Vietnamese, so that staff
          can choose `printer.vietnamese` for their model (backend simulated: PNGs)
status    ask the printer for its state (exit code 0 when it can print)
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import msgspec

from qms.config.printer import PrinterConfig
from qms.drivers.printer_status import PrinterConfigError, PrinterError
from qms.drivers.ticket import nfc, sample_ticket
from qms.drivers.ticket_layout import NORMAL, TITLE, Rule, Text

MODES = ["glyphs", "raster", "codepage-tcvn3", "codepage-cp1258"]


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(sp, out_help: str) -> None:
        sp.add_argument("-c", "--config", default=os.environ.get("QMS_CONFIG"),
                        help="site config file (default: $QMS_CONFIG; without one, built-in defaults)")
        sp.add_argument("-o", "--out", help=out_help)

    pv = sub.add_parser("preview", help="PNG of a sample ticket as the configured printer would print it")
    common(pv, "PNG file to write (default artifacts/ticket-preview.png)")
    pv.add_argument("--mode", choices=["glyphs", "raster", "codepage"], help="override printer.vietnamese")
    pv.add_argument("--width", type=int, choices=[384, 576], help="override printer.paper_width_px")
    pv.add_argument("--all-letters", action="store_true",
                    help="put all 134 accented Vietnamese letters in the footer")

    st = sub.add_parser("selftest", help="print every Vietnamese letter in each mode")
    common(st, "folder for the PNGs of --preview or of the simulated printer")
    st.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    st.add_argument("--preview", action="store_true", help="only render PNGs, do not print")

    s = sub.add_parser("status", help="ask the printer for its state")
    common(s, "unused")


def _load(path: str | None):
    """(site config or None, printer config, state dir)."""
    if not path:
        return None, PrinterConfig(), Path("var")
    from qms.config.site import load_config
    site = load_config(path)
    return site, site.printer, site.state_dir()


def letter_lines() -> list[str]:
    """Every vowel with its five tones, lower and upper case, then đ Đ: all 134 accented forms."""
    lines = []
    for base in "aăâeêioôơuưy":
        forms = [nfc(base + tone) for tone in ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")]
        lines.append(" ".join(forms + [f.upper() for f in forms]))
    lines.append("đ Đ")
    return lines


def selftest_items(mode_label: str) -> list:
    items = [Text("TỰ KIỂM TRA MÁY IN", TITLE), Text("PRINTER SELF-TEST"),
             Text(f"Chế độ / mode: {mode_label}", NORMAL), Rule()]
    items += [Text(line, NORMAL) for line in letter_lines()]
    items += [Rule(), Text("Trung tâm Phục vụ hành chính công", NORMAL),
              Text("Mọi chữ phải đủ dấu, không có dấu ?", NORMAL),
              Text("Every letter must show all its marks.", NORMAL)]
    return items


def _mode_config(cfg: PrinterConfig, mode: str) -> PrinterConfig:
    if mode.startswith("codepage-"):
        return _replace(cfg, vietnamese="codepage", codepage=mode.split("-", 1)[1])
    return _replace(cfg, vietnamese=mode)


def _replace(cfg: PrinterConfig, **changes) -> PrinterConfig:
    return msgspec.structs.replace(cfg, **changes)


def run(args) -> int:
    try:
        site, cfg, base = _load(args.config)
        return {"preview": _preview, "selftest": _selftest, "status": _status}[args.action](args, site, cfg, base)
    except PrinterConfigError as e:
        print(f"printer config error: {e}", file=sys.stderr)
        return 2
    except Exception as e:                     # config errors from qms.config.site
        if type(e).__name__ == "ConfigError":
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise


def _preview(args, site, cfg: PrinterConfig, base: Path) -> int:
    from qms.drivers.escpos_render import render
    from qms.drivers.ticket_encoder import TicketEncoder
    changes = {}
    if args.mode:
        changes["vietnamese"] = args.mode
    if args.width:
        changes["paper_width_px"] = args.width
    cfg = _replace(cfg, **changes)
    ticket = sample_ticket(site)
    if args.all_letters:
        ticket = dataclasses.replace(ticket, footer=tuple(letter_lines()))
    data = TicketEncoder(cfg).encode(ticket)
    out = Path(args.out or "artifacts/ticket-preview.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    r = render(data, cfg.paper_width_px, cfg.profile)
    r.last_page().save(out)
    seconds = len(data) * 10 / cfg.baudrate
    print(f"{out}: {cfg.vietnamese} mode, {cfg.paper_width_px} px, {len(data)} bytes "
          f"({seconds:.2f} s at {cfg.baudrate} baud)")
    return 0


def _selftest(args, site, cfg: PrinterConfig, base: Path) -> int:
    from qms.drivers.ticket_encoder import TicketEncoder
    jobs = []
    for mode in args.modes:
        mcfg = _mode_config(cfg, mode)
        try:
            jobs.append((mode, TicketEncoder(mcfg).encode_items(selftest_items(mode))))
        except PrinterConfigError as e:
            print(f"{mode}: skipped ({e})", file=sys.stderr)
    if args.preview:
        from qms.drivers.escpos_render import render
        out = Path(args.out or "artifacts/selftest")
        out.mkdir(parents=True, exist_ok=True)
        for mode, data in jobs:
            path = out / f"selftest-{mode}.png"
            render(data, cfg.paper_width_px, cfg.profile).last_page().save(path)
            print(f"{path}: {len(data)} bytes")
        return 0
    from qms.drivers.printer import make_printer
    if args.out:
        cfg = _replace(cfg, out_dir=str(Path(args.out).resolve()))
    printer = make_printer(cfg, base)
    try:
        for mode, data in jobs:
            printer.print_job(data)          # returns once the printer confirmed it
            if printer.simulator and cfg.cut == "none":
                printer.simulator.tear()        # no cutter: the paper is torn off by hand
            print(f"{mode}: printed ({len(data)} bytes)")
        if printer.simulator:
            if not printer.simulator.wait_tickets(len(jobs)):
                print("error: the simulated printer did not put out every job", file=sys.stderr)
                return 1
            for path in printer.simulator.saved:
                print(f"  simulated printer saved {path}")
    except PrinterError as e:
        print(f"printer error: {e}", file=sys.stderr)
        return 1
    finally:
        printer.close()
    print("Keep the mode whose every letter shows all its marks: set printer.vietnamese "
          "(and printer.codepage) in the site config.")
    return 0


def _status(args, site, cfg: PrinterConfig, base: Path) -> int:
    from qms.drivers.printer import make_printer
    printer = make_printer(cfg, base)
    try:
        state = printer.status()
    finally:
        printer.close()
    print(f"{state.value}: {state.message_vi}")
    return 0 if state.can_print else 1
