"""Ticket size and transmit time for each way of printing Vietnamese.

    python bench/ticket.py [--json] [--width 576|384] [--runs N] [--config config/ward-example.toml]

Baseline (same run): the whole ticket sent as one image through python-escpos, the way
many kiosks print Vietnamese. The ticket is the realistic sample (priority ticket, QR,
English lines). Transmit time = bytes x 10 bits (8N1) / baud.

`bytes_<mode>_max`: the largest ticket over every service x priority choice (none and
each class) of the site config, with real ids (32 hex digits, as the kiosk makes them),
the longest wait and queue figures and the QR link of site.public_url. Targets:
bytes_glyphs_max <= 2,048 and bytes_raster_max <= 8,192.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import ImageOps  # noqa: E402

from qms.config.printer import PrinterConfig  # noqa: E402
from qms.drivers import escpos_env  # noqa: E402
from qms.drivers.escpos_render import render  # noqa: E402
from qms.drivers.ticket import TicketPrint, sample_ticket  # noqa: E402
from qms.drivers.ticket_encoder import TicketEncoder  # noqa: E402


def naive_image_job(width: int) -> bytes:
    """The ticket as it looks (rendered from the raster job), sent as one image + cut."""
    page = render(TicketEncoder(PrinterConfig(vietnamese="raster", paper_width_px=width))
                  .encode(sample_ticket()), width).pages[0]
    margin = 12
    picture = page.crop((margin, margin, margin + width, page.height - margin))
    ink = ImageOps.invert(picture).getbbox()           # trim the blank feed at the end
    picture = picture.crop((0, 0, width, ink[3] + 8))
    esc = escpos_env.dummy("default", width)
    esc.hw("INIT")
    esc.image(picture, center=False)
    esc.cut(mode="PART")
    return esc.output


def config_tickets(site) -> list[TicketPrint]:
    """Every ticket a kiosk of this site can print: each service, without and with each
    priority class, with a real 32-hex id and 3-digit queue and wait figures."""
    url = site.site.public_url
    out = []
    for svc in site.services:
        for prio in [None, *site.priority_classes]:
            tid = uuid.uuid4().hex
            out.append(TicketPrint(
                center_name=site.site.center, point_name=site.site.name, service_vi=svc.name_vi,
                service_en=svc.name_en, number=svc.code * 1000 + 999, issued_at=dt.datetime(2025, 3, 5, 16, 45),
                ticket_id=tid, priority_label=prio.name_vi if prio else None, people_ahead=199,
                est_wait_minutes=240, qr_url=f"{url}/t/{tid}" if url else tid))
    return out


def timed(fn, runs: int):
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--width", type=int, default=576, choices=[384, 576])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config" / "ward-example.toml"))
    args = ap.parse_args()
    from qms.config.site import load_config
    site = load_config(args.config)
    site_tickets = config_tickets(site)
    ticket = sample_ticket()
    naive, naive_ms = timed(lambda: naive_image_job(args.width), args.runs)
    result = {"paper_width_px": args.width, "runs": args.runs, "bytes_naive_image": len(naive),
              "seconds_115200_naive_image": round(len(naive) * 10 / 115200, 3),
              "seconds_9600_naive_image": round(len(naive) * 10 / 9600, 2)}
    for mode, key in (("raster", "raster"), ("glyphs", "glyphs"), ("codepage", "codepage_tcvn3")):
        enc = TicketEncoder(PrinterConfig(vietnamese=mode, paper_width_px=args.width))
        data, ms = timed(lambda enc=enc: enc.encode(ticket), args.runs)
        result[f"bytes_{key}"] = len(data)
        result[f"seconds_115200_{key}"] = round(len(data) * 10 / 115200, 3)
        result[f"seconds_9600_{key}"] = round(len(data) * 10 / 9600, 2)
        result[f"ratio_{key}_vs_naive"] = round(len(data) / len(naive), 3)
        result[f"encode_ms_median_{key}"] = round(ms, 2)
        result[f"bytes_{key}_max"] = max(len(enc.encode(t)) for t in site_tickets)
    result["site_tickets"] = len(site_tickets)
    result["targets_met"] = result["bytes_glyphs_max"] <= 2048 and result["bytes_raster_max"] <= 8192
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
