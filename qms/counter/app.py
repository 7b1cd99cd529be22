"""`qms counter`: a counter terminal on a Raspberry Pi (GPIO keys and lights, an LED number
board) or, with --keyboard, on any PC (keys from the terminal, lines in Vietnamese)."""
from __future__ import annotations

import argparse
import logging
import sys
import time

from qms.counter import texts as T
from qms.counter.keyboard import KeyboardReader
from qms.counter.keys import GpioKeys, key_pins
from qms.counter.lights import GpioLights, MemoryLights
from qms.counter.number_display import open_number_display
from qms.counter.terminal import CounterTerminal, open_device

log = logging.getLogger("qms.counter")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="site config (TOML)")
    p.add_argument("--device", "-d", required=True,
                   help="this terminal's device id, a counter device of the config (e.g. counter-2)")
    p.add_argument("--keyboard", action="store_true",
                   help="take keys from this terminal instead of GPIO buttons (no GPIO used)")
    p.add_argument("--headless", action="store_true",
                   help="no terminal input or output: state goes to the log (systemd, demo)")
    p.add_argument("--png", help="simulated number display: write each frame to this PNG")
    p.add_argument("--outbox", help="outbox file (default: <state_dir>/<device>.outbox.sqlite)")


def _fail(msg: str) -> int:
    print(msg, file=sys.stderr)
    return 2


def run(args) -> int:
    from qms.config.site import load_config
    cfg = load_config(args.config)
    dev = cfg.device(args.device)
    if dev is None or dev.role != "counter" or dev.counter is None:
        known = ", ".join(d.id for d in cfg.devices if d.role == "counter") or "none"
        return _fail(f"{args.config}: {args.device!r} is not a counter device (counter devices: {known})")
    tc = cfg.counter_terminal
    say = (lambda line: log.info("%s", line)) if args.headless else (lambda line: print(line, flush=True))
    display = open_number_display(tc.number_display, dev.counter, caption=f"QUẦY {dev.counter}",
                                  png=args.png)
    keys = reader = None
    try:
        lights = MemoryLights() if args.keyboard else GpioLights(tc.lights)
        terminal = CounterTerminal(cfg, dev.counter, display, lights, clock=time.monotonic, say=say)
        if not args.keyboard:
            keys = GpioKeys(key_pins(tc.buttons), terminal.post_edge, time.monotonic)
    except Exception as e:   # noqa: BLE001 - gpiozero's BadPinFactory, pins in use, bad pin map
        return _fail(f"cannot use the GPIO pins ({type(e).__name__}: {e}); "
                     "on a PC run with --keyboard, on a Pi check [counter_terminal] pins")
    device = open_device(cfg, args.device, terminal, outbox_path=args.outbox).start()
    if args.keyboard and not args.headless:
        say(T.KEY_HELP)
        reader = KeyboardReader(terminal.post_char).start()
    from qms.ops.sdnotify import Heartbeat, stop_on_sigterm
    heartbeat = Heartbeat()
    heartbeat.ready(f"counter {dev.counter}")
    stop_on_sigterm(terminal.stop)
    try:
        while terminal.step(0.02):
            heartbeat.beat()
    except KeyboardInterrupt:
        pass
    finally:
        if reader:
            reader.stop()
        device.stop()
        if keys:
            keys.close()
        lights.close()
        display.close()
    return 0
