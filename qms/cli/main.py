"""The `qms` command: one subcommand per role and tool.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their subcommand runs, so
`qms --help` is fast and a kiosk does not load the report code.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "service": ("qms.service.app", "run the central counter-assignment service"),
    "uplink": ("qms.uplink.app", "ship this point's event log to the city's central tier, exactly once"),
    "city": ("qms.cli.city", "the city's central tier: PostgreSQL schema, points, server, reports"),
    "kiosk": ("qms.kiosk.app", "run the ticket kiosk (touch screen; --robot for the service robot)"),
    "display": ("qms.display.app", "run the hall display with voice announcements"),
    "counter": ("qms.counter.app", "run a counter terminal (buttons, number display, rating keys)"),
    "demo": ("qms.sim.demo", "run the whole system on this machine on simulated hardware"),
    "config": ("qms.cli.config", "check a site config file"),
    "printer": ("qms.cli.printer", "ticket printer tools: preview, selftest, status"),
    "voice": ("qms.cli.voice", "voice tools: say a call, build a voice pack"),
    "firmware": ("qms.cli.firmware", "counter box tools: write a config.json, build .mpy files"),
    "web": ("qms.web.server", "run the citizen ticket page, public board, booking API and staff alerts"),
    "report": ("qms.cli.report", "statistics for a day or a date range"),
    "simulate": ("qms.sim.simulate", "play a simulated day through the real service"),
    "provision": ("qms.ops.provision", "generate Mosquitto credentials, ACL and TLS files"),
    "install": ("qms.ops.install", "install a role on this machine as a systemd service"),
    "uninstall": ("qms.ops.uninstall", "remove what `qms install` set up"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qms",
        description="Queue-management system for public administrative service centers. "
                    "Hệ thống xếp hàng cho Trung tâm phục vụ hành chính công.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(_module=module)
        if name in sys.argv[1:2]:        # only the chosen one loads its module
            try:
                importlib.import_module(module).add_arguments(sp)
            except ModuleNotFoundError as e:
                if e.name and module.startswith(e.name):
                    sp.set_defaults(_missing=f"`qms {name}` is not available in this build ({module} missing)")
                else:
                    raise
    return p


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv[1:] = argv
    parser = build_parser()
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else getattr(logging, os.environ.get("QMS_LOG", "INFO"), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(args._missing, file=sys.stderr)
        return 2
    from qms.config.site import ConfigError
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except ConfigError as e:     # every role loads the site config: one message for all
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
