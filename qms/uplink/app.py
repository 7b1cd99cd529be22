"""`qms uplink`: run a point's uplink to the center (see qms/uplink/client.py).

    qms uplink -c /etc/qms/site.toml --center https://city.example.vn --token-file /etc/qms/uplink.token
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from qms.config.site import load_config

log = logging.getLogger("qms.uplink")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="site config (TOML)")
    p.add_argument("--db", help="the service's event log (default: <state_dir>/service.sqlite)")
    p.add_argument("--center", required=True, help="the center's ingest URL, e.g. https://city.example.vn")
    p.add_argument("--token-file", required=True, help="file holding this site's uplink token")
    p.add_argument("--ca", help="CA bundle that signed the center's certificate (default: the system's)")
    p.add_argument("--no-live", action="store_true", help="do not send live waits for the city view")


def run(args) -> int:
    from qms.ops.sdnotify import Heartbeat, stop_on_sigterm
    from qms.uplink.client import Uplink
    cfg = load_config(args.config)
    try:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    except OSError as e:
        print(f"error: cannot read the token file {args.token_file}: {e.strerror}", file=sys.stderr)
        return 2
    if not token:
        print(f"error: the token file {args.token_file} is empty", file=sys.stderr)
        return 2
    db = Path(args.db) if args.db else cfg.state_dir() / "service.sqlite"
    up = Uplink(cfg, db, args.center, token, config_text=Path(args.config).read_text(encoding="utf-8"),
                live=not args.no_live, verify=args.ca or True, token_file=args.token_file)
    stop = threading.Event()
    stop_on_sigterm(stop.set)
    beat = Heartbeat()
    beat.ready("uplink of " + cfg.site.id)
    t = threading.Thread(target=up.run, args=(stop,), name="uplink", daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(5)
            beat.beat()
    except KeyboardInterrupt:
        stop.set()
    t.join(10)
    up.close()
    return 0
