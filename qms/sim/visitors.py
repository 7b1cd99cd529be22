"""Simulated citizens for `qms demo`: they use the kiosk's real touch targets.

Now and then, when the kiosk has stood idle for a while (a person at the screen is never
interrupted), a visitor touches "take a number", then a service, sometimes through the
priority path, exactly as a finger would: the ticket is requested, printed by the
configured (simulated) printer and shown, through the same code as a real touch.

`python -m qms.sim.visitors --every 4 <qms kiosk arguments>` runs the kiosk with them
(`qms demo` starts it so): the kiosk itself knows nothing of simulated citizens.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys

# how often each service is chosen (chứng thực dominates at ward centers)
WEIGHTS = {"chung-thuc": 8, "nhan-ket-qua": 3, "ho-tich": 2}


class DemoVisitors:
    def __init__(self, every_s: float, rng: random.Random | None = None, services: list[str] | None = None):
        self.every_s = every_s
        self.services = services          # only these (the ones a running counter serves)
        self.rng = rng or random.Random()
        self.next_at: float | None = None
        self.plan: list[tuple] = []

    def step(self, app) -> None:
        now = app.monotonic()
        if self.next_at is None:
            self.next_at = now + self.every_s
        if not self.plan:
            idle_for = now - app.last_touch
            if now < self.next_at or app.view.screen not in ("idle", "dim") or idle_for < 8:
                return
            self.next_at = now + self.rng.uniform(0.5, 1.5) * self.every_s
            self.plan = self._choose(app)
        want = self.plan[0]
        for rect, action in app.hits:
            if action[:len(want)] == want:
                self.plan.pop(0)
                app.touch(rect.center)
                return
        if app.view.screen in ("idle", "dim", "menu", "priority_menu"):
            return                       # the target is not drawn yet: try next frame
        self.plan = []                   # something else came up (a refusal screen)

    def _choose(self, app) -> list[tuple]:
        services = [s.id for s in app.cfg.services if not self.services or s.id in self.services]
        service = self.rng.choices(services, [WEIGHTS.get(s, 1) for s in services])[0]
        prios = [p.id for p in app.cfg.priority_classes]
        if prios and self.rng.random() < 0.15:
            return [("priority_menu",), ("priority", self.rng.choice(prios)), ("service", service)]
        return [("menu",), ("service", service)]


def main(argv: list[str] | None = None) -> int:
    from qms.kiosk import app as kiosk_app
    p = argparse.ArgumentParser(prog="python -m qms.sim.visitors",
                                description="the kiosk (`qms kiosk` arguments) with simulated citizens")
    kiosk_app.add_arguments(p)
    p.add_argument("--every", type=float, default=4.0, metavar="SECONDS",
                   help="a simulated citizen touches the screen about every SECONDS when it is idle")
    p.add_argument("--services", default="", metavar="ID,ID",
                   help="the services simulated citizens choose from (default: all)")
    args = p.parse_args(argv)
    logging.basicConfig(level=getattr(logging, os.environ.get("QMS_LOG", "INFO"), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from qms.config.site import ConfigError
    try:
        return kiosk_app.run(args, visitors=DemoVisitors(args.every, services=[s for s in args.services.split(",") if s]))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
