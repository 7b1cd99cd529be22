"""Entry point on the box: `import firmware_py.main` from the board's /main.py
(on CPython the same package is `qms.firmware`; imports inside it are relative).

Reads /config.json, builds the box from real parts and runs its loop forever under a
hardware watchdog within the port's limit (`hardware.watchdog`), fed only after a healthy
loop turn (`hardware.serve`). A config that cannot be used shows "CFG" (when the display pins can be read)
and repeats the reason on the console; it never boot-loops silently.
"""
import json
import sys
import time

from . import app, config, hardware
from .storage import FileStore, MemoryStore

CONFIG_PATH = "/config.json"
# a loop turn is ~10 ms; the slowest healthy one (a broker connect: DNS, TCP and MQTT, each
# bounded by the link's 3 s I/O timeout) stays well under this, the RP2040's limit too
WATCHDOG_MS = 8000


def _show_config_error(text, error):
    board = None
    try:                                # the display section alone may still be usable
        stub = {"site": "x", "device": "x", "counter": 1, "keys": {"pins": {"next": 0}},
                "display": json.loads(text).get("display", {})}
        board = hardware.display(config.load(json.dumps(stub)))
    except Exception:                   # noqa: BLE001 - then the console must do
        pass
    while True:
        print("config.json problem:", error)
        if board is not None:
            board.show("CFG")
        time.sleep(5)


def run():
    try:
        with open(CONFIG_PATH) as f:
            text = f.read()
    except OSError:
        text = None
    if text is None:
        _show_config_error("", "no %s on the box: copy one with mpremote (docs/firmware.md)" % CONFIG_PATH)
    try:
        cfg = config.load(text)
    except config.ConfigError as e:
        _show_config_error(text, str(e))
    clock = hardware.MachineClock()
    board = hardware.display(cfg)
    board.show("----")
    box = app.build(
        cfg, key_sources=hardware.key_sources(cfg), board=board, led=hardware.led(cfg, clock),
        client_factory=hardware.mqtt_factory(cfg), clock=clock,
        store=FileStore("/") if cfg.persist_outbox else MemoryStore(), rng=hardware.rng,
        network=hardware.Wifi(cfg.wifi_ssid, cfg.wifi_password, clock, cfg.ntp_host))
    hardware.serve(box, hardware.watchdog(WATCHDOG_MS), cfg.loop_ms, time.sleep_ms)


if sys.implementation.name == "micropython":      # on a PC (tests, tools) importing is enough
    run()
