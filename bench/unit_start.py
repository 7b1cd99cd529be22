"""Cold start of each role from its installed unit, in the unit's sandbox: exec to READY=1.

    python bench/unit_start.py [--repeat 3] [--json]

The installer writes a throw-away root (`qms install --root`, as tests/test_unit_sandbox.py
does), a real Mosquitto runs on a free port, and each role is started from its unit's
ExecStart under bubblewrap (tests/support/unit_sandbox.py) with the simulated printer and
gpiozero's mock pins: the time from exec to READY=1, median of --repeat runs. This is the
native (x86) baseline; scripts/target-check.sh measures the same under arm64 emulation.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.deploy import make_root  # noqa: E402
from support.site import make_config  # noqa: E402
from support.unit_sandbox import check_role, deployer_env, edit_env  # noqa: E402

from qms.cli import main as cli  # noqa: E402
from qms.mqtt.broker import LocalBroker, free_port  # noqa: E402

ROLES = {"service": "service", "web": "web", "kiosk": "kiosk-1", "display": "display-1", "counter": "counter-1"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    venv = Path(sys.executable).parent.parent
    keep_home = any(str(x).startswith(("/home/", "/root/")) for x in (venv, Path(sys.base_prefix)))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = LocalBroker(tmp / "broker").start()
        try:
            config = make_config(tmp, broker.port)
            root = make_root(tmp)
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli.main(["provision", str(config), str(tmp / "secrets")]) == 0
                for role, device in ROLES.items():
                    assert cli.main(["install", "--root", str(root), "--venv", str(venv), "--role", role,
                                     "--config", str(config), "--device", device,
                                     "--secrets", str(tmp / "secrets")]) == 0
            out = {}
            for role in ROLES:
                edit_env(root / f"etc/qms/{role}.env", deployer_env(role, free_port()))
                runs = [check_role(role, root, keep_home=keep_home) for _ in range(args.repeat)]
                times = sorted(r.ready_seconds for r in runs if r.ready and r.watchdog)
                if len(times) != len(runs):
                    print(f"{role} did not start:\n{runs[-1].output}", file=sys.stderr)
                    return 1
                out[role] = {"median_s": times[len(times) // 2], "runs_s": times}
        finally:
            broker.stop()
    if args.json:
        print(json.dumps({"arch": "x86_64", "cold_start": out}))
    else:
        for role, r in out.items():
            print(f"{role:8} {r['median_s']:6.2f} s  {r['runs_s']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
