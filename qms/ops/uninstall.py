"""`qms uninstall`: undo `qms install`.

By default it stops and disables the units and removes the unit files and env files, but
keeps what cannot be recreated: the site config, the device secrets, the state dir (event
log, outboxes with commands not yet delivered) and the `qms` user. `--purge` removes
those too. Idempotent, `--dry-run` and `--root` as for `qms install`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from qms.ops.install import (
    BROKER_DROPIN,
    CITY_PORT_DROPIN,
    COMMON_DROPIN,
    ETC,
    MOSQUITTO_DIR,
    ROLES,
    STATE,
    TIME_WAIT,
    TIME_WAIT_DROPIN,
    UNIT_DIR,
    USB_PRINTER_RULES,
    USER,
    VENV,
    Host,
    InstallError,
    Step,
    add_common,
    execute,
    is_enabled,
)


def _exists(p: Path):
    return lambda h: h.path(p).exists() or h.path(p).is_symlink()


def remove_step(p: Path) -> Step:
    def apply(h: Host) -> None:
        t = h.path(p)
        if t.is_dir() and not t.is_symlink():
            shutil.rmtree(t)
        else:
            t.unlink()
    return Step(f"remove {p}", _exists(p), apply)


def disable_step(unit: str, target: str = "multi-user.target") -> Step:
    def apply(h: Host) -> None:
        if h.live:
            h.run(["systemctl", "disable", "--now", unit])
        else:
            h.run(["systemctl", f"--root={h.root}", "disable", unit])
    return Step(f"disable {unit}", lambda h: is_enabled(h, unit, target), apply)


def plan(roles: list[str], purge: bool, all_roles: bool) -> list[Step]:
    steps: list[Step] = []
    for role in roles:
        unit = f"qms-{role}.service"
        steps += [disable_step(unit), remove_step(UNIT_DIR / unit), remove_step(ETC / f"{role}.env")]
    if "kiosk" in roles:        # the printer's udev rule came with the kiosk role
        steps.append(remove_step(USB_PRINTER_RULES))
    if "city" in roles:         # its capability drop-in (an administrator's own drop-ins stay)
        steps.append(remove_step(UNIT_DIR / CITY_PORT_DROPIN))
    if "service" in roles:      # the broker settings came with the service role
        steps += [remove_step(UNIT_DIR / BROKER_DROPIN),
                  remove_step(MOSQUITTO_DIR / "conf.d" / "qms.conf")]
    if all_roles:               # shared by every role: goes with the last one
        steps.append(remove_step(UNIT_DIR / COMMON_DROPIN.parent))
        # the bounded wait for NTP came with the units (unbounded, it could hold others forever)
        steps += [disable_step(TIME_WAIT, "sysinit.target"), remove_step(UNIT_DIR / TIME_WAIT_DROPIN.parent)]
    if all_roles and purge:
        steps += [remove_step(p) for p in (ETC, STATE, VENV.parent, MOSQUITTO_DIR / "qms")]
        steps.append(Step(f"delete user {USER}", lambda h: h.lookup("passwd", USER) is not None,
                          lambda h: h.run(["userdel", *(["--prefix", str(h.root)]
                                                        if h.root != Path("/") else []), USER])))
    return steps


def installed_roles(h: Host) -> list[str]:
    return [r for r in ROLES if h.path(UNIT_DIR / f"qms-{r}.service").exists()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--role", choices=ROLES, action="append",
                   help="remove only this role (repeatable; default: every installed role)")
    p.add_argument("--purge", action="store_true",
                   help="also delete /etc/qms, /var/lib/qms (undelivered commands!), the venv "
                        "and the qms user")
    add_common(p)


def run(args) -> int:
    host = Host(root=args.root.resolve(), dry_run=args.dry_run)
    if os.geteuid() != 0 and not args.dry_run and host.root == Path("/"):
        print("qms uninstall changes the system: run it as root (sudo), or use --dry-run",
              file=sys.stderr)
        return 2
    present = installed_roles(host)
    roles = args.role or present
    remaining = [r for r in present if r not in roles]
    if args.purge and remaining:
        print(f"qms uninstall: --purge would delete the data of still installed roles "
              f"({', '.join(remaining)}); uninstall them too or drop --purge", file=sys.stderr)
        return 1
    print(f"qms uninstall ({', '.join(roles) or 'no role installed'})")
    try:
        changed = execute(plan(roles, args.purge, not remaining), host)
    except InstallError as e:
        print(f"qms uninstall: {e}", file=sys.stderr)
        return 1
    print("nothing to do" if not changed and not args.dry_run
          else "dry run: nothing changed" if args.dry_run else f"done: {changed} change(s)")
    if not args.purge:
        print(f"kept: {ETC} (config, secrets), {STATE} (state), {VENV}, user {USER}; "
              "--purge removes them")
    return 0
