"""Writes a box's config.json from the site config (runs on a PC under CPython; it is not
copied to the box).

    python -m qms.cli.firmware --site /etc/qms/site.toml --device counter-3 \\
        --wifi-ssid TTHC-Staff --wifi-password '...' --host 192.168.1.10 > config.json

The site, the counter number and the transfer targets (the site's services by code,
then the other counters) come from the site config, so the box offers exactly what the
service accepts. Pins get the defaults of docs/firmware.md; edit the file for other wiring.
"""
from __future__ import annotations

import argparse
import json
import sys

from qms.firmware import config as fw_config

DEFAULT_KEYS = {"esp32": {"next": 32, "recall": 33, "no_show": 25, "transfer": 26, "pause": 27,
                          "done": 14, "rate1": 18, "rate2": 19, "rate3": 21, "rate4": 22},
                "pico": {"next": 2, "recall": 3, "no_show": 4, "transfer": 5, "pause": 6,
                         "done": 7, "rate1": 10, "rate2": 11, "rate3": 12, "rate4": 13}}
DEFAULT_DISPLAY = {"esp32": {"kind": "tm1637", "clk": 16, "dio": 17},
                   "pico": {"kind": "tm1637", "clk": 14, "dio": 15}}
DEFAULT_LED = {"esp32": 2, "pico": 16}


def build(site, device_id: str, board: str, wifi_ssid: str, wifi_password: str, host: str,
          port: int, mqtt_password: str | None) -> dict:
    dev = site.device(device_id)
    if dev is None or dev.role != "counter" or dev.counter is None:
        known = ", ".join(d.id for d in site.devices if d.role == "counter") or "none"
        raise SystemExit(f"{device_id!r} is not a counter device in {site.source} (counter devices: {known})")
    transfer = [{"to_service": s.id, "show": f"L-{s.code}"} for s in site.services]
    transfer += [{"to_counter": c.number, "show": f"q-{c.number}"} for c in site.counters
                 if c.number != dev.counter]
    cfg = {
        "site": site.site.id, "device": device_id, "counter": dev.counter,
        "wifi": {"ssid": wifi_ssid, "password": wifi_password},
        "mqtt": {"host": host, "port": port, "user": device_id, "password": mqtt_password},
        "ntp_host": host,
        "keys": {"pins": DEFAULT_KEYS[board], "active_low": True},
        "display": dict(DEFAULT_DISPLAY[board], brightness=4),
        "led": {"pin": DEFAULT_LED[board]},
        "transfer": transfer,
    }
    fw_config.load(json.dumps(cfg))          # the box will accept it
    return cfg


def main(argv=None) -> int:
    from qms.config.site import ConfigError, load_config
    p = argparse.ArgumentParser(prog="python -m qms.cli.firmware", description=__doc__.split("\n")[0])
    p.add_argument("--site", required=True, help="site config (TOML)")
    p.add_argument("--device", required=True, help="the box's device id, a counter device of the site")
    p.add_argument("--board", choices=sorted(DEFAULT_KEYS), default="esp32")
    p.add_argument("--wifi-ssid", default="")
    p.add_argument("--wifi-password", default="")
    p.add_argument("--host", help="broker address as the box sees it (default: the site's mqtt.host)")
    p.add_argument("--port", type=int, help="broker port (default: the site's mqtt.port)")
    p.add_argument("--mqtt-password", help="the device's broker password (qms provision makes them)")
    a = p.parse_args(argv)
    try:
        site = load_config(a.site)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    cfg = build(site, a.device, a.board, a.wifi_ssid, a.wifi_password, a.host or site.mqtt.host,
                a.port or site.mqtt.port, a.mqtt_password)
    json.dump(cfg, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
