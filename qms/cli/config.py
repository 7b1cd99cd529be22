"""`qms config check FILE`: validate a site config and summarize it."""
from __future__ import annotations

import sys

from qms.config.site import UNIT_STATE_DIR, ConfigError, load_config


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="validate a site config file")
    c.add_argument("file")


def run(args) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if cfg.unit_cannot_write_state_dir():
        print(f"error: {args.file}: state directory {cfg.state_dir_path()} (`paths.state_dir`) is outside "
              f"{UNIT_STATE_DIR}, the only place the systemd units may write: set "
              f'state_dir = "{UNIT_STATE_DIR}" in [paths]', file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    print(f"  site {cfg.site.id}: {cfg.site.name} — {cfg.site.center} ({cfg.site.timezone})")
    print(f"  {len(cfg.services)} services, {len(cfg.priority_classes)} priority classes, "
          f"{len(cfg.counters)} counters, {len(cfg.devices)} devices")
    print(f"  state directory {cfg.state_dir_path()}")
    return 0
