"""`qms install --role ROLE`: set this machine up to run one role under systemd.

Idempotent: every step first checks whether the machine is already as wanted and does
nothing if so, so running the installer again after an upgrade or a half-finished run is
safe. `--dry-run` prints the plan; `--root DIR` applies it below DIR instead of / (used by
the tests: real useradd/groupadd --prefix and `systemctl --root`, nothing touches the host).

What it sets up: the `qms` system user and the groups its unit needs, /etc/qms (site
config, the role's env file, the device's MQTT secret), /var/lib/qms (state), a venv in
/opt/qms/venv (or an existing one with --venv), the unit files, and enables the unit.
For the service role it also installs the broker files made by `qms provision`.
The city roles: `uplink` on a point (the center's URL, its token in /etc/qms/uplink.token)
and `city` on the central server (no site config: a PostgreSQL DSN, its password file,
where to listen, a TLS certificate); see docs/city.md.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("qms.install")

SOURCE = Path(__file__).resolve().parents[2]         # the checked-out project
UNITS = SOURCE / "systemd"
ROLES = ("service", "kiosk", "display", "counter", "web", "uplink", "city")
# roles that are no MQTT device: the uplink reads the service's log, the city has no site
CITY_ROLES = ("uplink", "city")
UPLINK_TOKEN = Path("/etc/qms/uplink.token")
CITY_PASSWORD = Path("/etc/qms/city.password")
CITY_CA = Path("/etc/qms/tls/city-ca.crt")
CITY_CERT, CITY_KEY = Path("/etc/qms/tls/city.crt"), Path("/etc/qms/tls/city.key")
DEVICE_ROLES = {"service": ("service",), "kiosk": ("kiosk", "robot"),
                "display": ("display",), "counter": ("counter",), "web": ("web",)}
# Each device role keeps its MQTT password in its own file, which its env file names in
# QMS_MQTT_PASSWORD_FILE (it wins over [mqtt] password_file): several roles on one machine
# (the web beside the service, a display on a small point's service Pi) then keep theirs.
# The service's is the config's mqtt.password.
PASSWORD_FILE = {"web": "web.password", "kiosk": "kiosk.password", "display": "display.password",
                 "counter": "counter.password"}
USER = "qms"
ETC = Path("/etc/qms")
STATE = Path("/var/lib/qms")
VENV = Path("/opt/qms/venv")
UNIT_DIR = Path("/etc/systemd/system")
COMMON_DROPIN = Path("qms-.service.d/10-qms-common.conf")
# the city's server may listen on 443 itself: CAP_NET_BIND_SERVICE, after the common drop-in
CITY_PORT_DROPIN = Path("qms-city.service.d/50-bind-port.conf")
BROKER_DROPIN = Path("mosquitto.service.d/qms.conf")
TIME_WAIT = "systemd-time-wait-sync.service"
TIME_WAIT_DROPIN = Path(f"{TIME_WAIT}.d/qms.conf")
MOSQUITTO_DIR = Path("/etc/mosquitto")
# USB ticket printers: group lp may use them through libusb (systemd/udev/)
USB_PRINTER_RULES = Path("/etc/udev/rules.d/60-qms-usb-printers.rules")


class InstallError(Exception):
    """A precondition is not met; the message says what to do."""


# ---------------------------------------------------------------- the machine
@dataclass
class Host:
    """The machine (or a directory standing for it) and how we change it."""
    root: Path = Path("/")
    dry_run: bool = False
    reused_venv: bool = False
    done: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Installing into the running system with systemd as init (not --root)."""
        return self.root == Path("/") and Path("/run/systemd/system").is_dir()

    def path(self, p: Path | str) -> Path:
        return self.root / Path(p).relative_to("/")

    def run(self, cmd: list[str]) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise InstallError(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")

    def lookup(self, db: str, name: str) -> int | None:
        """uid/gid of `name` in the root's /etc/passwd or /etc/group (not NSS: --root)."""
        try:
            for line in self.path(f"/etc/{db}").read_text().splitlines():
                parts = line.split(":")
                if parts[0] == name and len(parts) > 2:
                    return int(parts[2])
        except OSError:
            pass
        return None

    def chown(self, p: Path, owner: str, group: str) -> None:
        uid, gid = self.lookup("passwd", owner), self.lookup("group", group)
        if os.geteuid() == 0 and uid is not None and gid is not None:
            os.chown(p, uid, gid)


@dataclass
class Step:
    what: str
    needed: Callable[[Host], bool]
    apply: Callable[[Host], None]


def execute(steps: list[Step], host: Host, out=print) -> int:
    """Run the steps that are needed; print one line per step. Returns how many changed."""
    changed = 0
    for step in steps:
        if not step.needed(host):
            out(f"  ok     {step.what}")
            continue
        out(f"  {'would' if host.dry_run else 'do   '}  {step.what}")
        if not host.dry_run:
            step.apply(host)
            changed += 1
    return changed


# ---------------------------------------------------------------- step builders
def group_step(name: str) -> Step:
    return Step(f"group {name}", lambda h: h.lookup("group", name) is None,
                lambda h: h.run(["groupadd", "--system", *_prefix(h), name]))


def user_step() -> Step:
    return Step(f"system user {USER} (home {STATE}, no login)",
                lambda h: h.lookup("passwd", USER) is None,
                lambda h: h.run(["useradd", "--system", *_prefix(h), "--no-create-home",
                                 "--home-dir", str(STATE), "--shell", "/usr/sbin/nologin",
                                 "--gid", USER, USER]))


def _prefix(h: Host) -> list[str]:
    return [] if h.root == Path("/") else ["--prefix", str(h.root)]


def dir_step(p: Path, mode: int, owner: str, group: str) -> Step:
    def needed(h: Host) -> bool:
        t = h.path(p)
        return not t.is_dir() or (t.stat().st_mode & 0o7777) != mode

    def apply(h: Host) -> None:
        t = h.path(p)
        t.mkdir(parents=True, exist_ok=True)
        t.chmod(mode)
        h.chown(t, owner, group)
    return Step(f"directory {p} ({owner}:{group} {mode:o})", needed, apply)


def file_step(dest: Path, content: bytes, mode: int = 0o644, owner: str = "root",
              group: str = "root", replace: bool = True, what: str = "") -> Step:
    """Put `content` at `dest`. replace=False: an existing file is the admin's, keep it."""
    def needed(h: Host) -> bool:
        t = h.path(dest)
        if not t.exists():
            return True
        return replace and (t.read_bytes() != content or (t.stat().st_mode & 0o7777) != mode)

    def apply(h: Host) -> None:
        t = h.path(dest)
        t.parent.mkdir(parents=True, exist_ok=True)
        if t.exists() and t.read_bytes() != content:
            shutil.copy2(t, t.with_name(t.name + ".bak"))     # keep the previous version
        tmp = t.with_name(t.name + ".qms-new")
        tmp.write_bytes(content)
        tmp.chmod(mode)
        h.chown(tmp, owner, group)
        os.replace(tmp, t)
    return Step(what or f"file {dest}", needed, apply)


def unit_text(role: str, venv: Path) -> str:
    text = (UNITS / f"qms-{role}.service").read_text()
    return text.replace(str(VENV), str(venv))


def supplementary_groups(role: str) -> list[str]:
    m = re.search(r"^SupplementaryGroups=(.*)$", unit_text(role, VENV), re.M)
    return m.group(1).split() if m else []


def is_enabled(h: Host, unit: str, target: str = "multi-user.target") -> bool:
    # lexists: under --root the link points at /etc/..., which is outside the root
    return os.path.lexists(h.path(UNIT_DIR / f"{target}.wants" / unit))


def enable_step(unit: str, target: str = "multi-user.target", now: bool = True) -> Step:
    def apply(h: Host) -> None:
        if h.live:
            h.run(["systemctl", "daemon-reload"])
            h.run(["systemctl", "enable", *(["--now"] if now else []), unit])
        else:
            h.run(["systemctl", f"--root={h.root}", "enable", unit])
    return Step(f"enable {unit}", lambda h: not is_enabled(h, unit, target), apply)


def udev_step(src: Path, dest: Path) -> Step:
    """A udev rule; on the live system udev reloads it and applies it to what is plugged in."""
    step = file_step(dest, src.read_bytes(), what=f"udev rule {dest}")
    put = step.apply

    def apply(h: Host) -> None:
        put(h)
        if h.live:
            h.run(["udevadm", "control", "--reload"])
            h.run(["udevadm", "trigger", "--subsystem-match=usb", "--action=change"])
    return Step(step.what, step.needed, apply)


def time_sync_steps() -> list[Step]:
    """Hold the units back until NTP has synced the clock (a Pi has no RTC), for a bounded
    time. Not started now: that would wait for the sync here."""
    return [file_step(UNIT_DIR / TIME_WAIT_DROPIN, (UNITS / TIME_WAIT_DROPIN).read_bytes()),
            enable_step(TIME_WAIT, "sysinit.target", now=False)]


# The extras each role needs (pyproject.toml), and a module that shows one is there
ROLE_EXTRAS = {"service": ("reports",), "web": (), "kiosk": ("pi",), "counter": ("pi",), "display": (),
               "uplink": (), "city": ("city",)}   # the uplink: the standard library only
EXTRA_MODULE = {"reports": "matplotlib", "pi": "lgpio", "city": "psycopg"}
DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"       # where python3-pygame installs


def on_a_pi() -> bool:
    """lgpio (the `pi` extra) can be had: a Raspberry Pi, or at least an ARM board."""
    import platform
    try:
        if b"Raspberry Pi" in Path("/proc/device-tree/model").read_bytes():
            return True
    except OSError:
        pass
    return platform.machine() in ("aarch64", "armv7l", "armv6l")


def role_extras(role: str) -> list[str]:
    return [e for e in ROLE_EXTRAS[role] if e != "pi" or on_a_pi()]


def _venv_python(h: Host, venv: Path) -> str:
    # a venv given with --venv is a path of the machine running the installer (also with
    # --root, as the tests do); one the installer makes goes below the root
    return str((venv if h.reused_venv else h.path(venv)) / "bin" / "python")


def _module_file(h: Host, venv: Path, module: str) -> str | None:
    """Where the venv's Python finds `module`, or None."""
    if not Path(_venv_python(h, venv)).exists():
        return None
    proc = subprocess.run([_venv_python(h, venv), "-c", f"import {module}; print({module}.__file__)"],
                          capture_output=True, text=True, env={**os.environ, "PYGAME_HIDE_SUPPORT_PROMPT": "1"})
    lines = proc.stdout.strip().splitlines()     # pygame < 2.1.3 greets on stdout
    return lines[-1] if proc.returncode == 0 and lines else None


def venv_steps(venv: Path, reuse: bool, system_pygame: bool, role: str = "service") -> list[Step]:
    extras = role_extras(role)
    spec = f"{SOURCE}[{','.join(extras)}]" if extras else str(SOURCE)
    if reuse:
        def refuse(h: Host) -> None:
            raise InstallError(f"{venv}/bin/qms not found: is --venv a venv with qms-edge in it?")
        steps = [Step(f"reuse the venv {venv}", lambda h: not (venv / "bin" / "qms").exists(), refuse)]
    else:
        def create(h: Host) -> None:
            target = h.path(venv)
            cmd = [sys.executable, "-m", "venv", str(target)]
            if system_pygame:       # Debian's python3-pygame (KMSDRM), see docs/deploy.md
                cmd.insert(3, "--system-site-packages")
            h.run(cmd)
            # editable: the units and env templates stay readable in the checkout's systemd/;
            # pygame>=2.1.2 is met by Debian's, so pip leaves it alone
            h.run([str(target / "bin" / "pip"), "install", "--upgrade", "-e", spec])
        steps = [Step(f"venv {venv} with qms-edge from {SOURCE}" + (" (system pygame)" if system_pygame else ""),
                      lambda h: not h.path(venv / "bin" / "qms").exists(), create)]
    if system_pygame:
        steps.append(system_pygame_step(venv))
    for extra in extras:
        steps.append(extra_step(venv, extra, spec))
    return steps


def system_pygame_step(venv: Path) -> Step:
    """The venv imports Debian's pygame (built with KMSDRM), not pip's wheel (without it):
    also for a venv made earlier without --system-site-packages or with the wheel in it."""
    def needed(h: Host) -> bool:
        found = _module_file(h, venv, "pygame")
        return found is None or not found.startswith(DEBIAN_PYTHON)

    def apply(h: Host) -> None:
        if not Path(DEBIAN_PYTHON, "pygame").is_dir():
            raise InstallError("--system-pygame: Debian's pygame is not installed: "
                               "sudo apt-get install python3-pygame")
        cfg = Path(_venv_python(h, venv)).parent.parent / "pyvenv.cfg"
        text = cfg.read_text()
        text = re.sub(r"^include-system-site-packages\s*=.*$", "include-system-site-packages = true", text, flags=re.M)
        cfg.write_text(text)
        found = _module_file(h, venv, "pygame")
        if found and not found.startswith(DEBIAN_PYTHON):      # pip's wheel shadows it
            h.run([_venv_python(h, venv), "-m", "pip", "uninstall", "--yes", "pygame"])
        found = _module_file(h, venv, "pygame")
        if found is None or not found.startswith(DEBIAN_PYTHON):
            raise InstallError(f"--system-pygame: the venv {venv} still imports pygame from {found}")
    return Step(f"venv {venv} uses Debian's pygame (KMSDRM)", needed, apply)


def extra_step(venv: Path, extra: str, spec: str) -> Step:
    module = EXTRA_MODULE[extra]

    def apply(h: Host) -> None:
        try:
            h.run([_venv_python(h, venv), "-m", "pip", "install", "-e", spec])
        except InstallError as e:
            if extra != "pi":
                raise
            # the unit would restart forever on "No module named 'lgpio'": say it now
            raise InstallError(f"{e}\nlgpio (the `pi` extra, gpiozero's pins on a Raspberry Pi) could not "
                               "be installed: sudo apt-get install python3-lgpio (Raspberry Pi OS), or "
                               "set GPIOZERO_PIN_FACTORY in the role's env file") from None
    return Step(f"the `{extra}` extra ({module}) in {venv}",
                lambda h: _module_file(h, venv, module) is None, apply)


# ---------------------------------------------------------------- the plan
def env_text(role: str, device: str, robot: bool, pi: bool = True, secrets: bool = True,
             values: dict[str, str] | None = None) -> bytes:
    text = (UNITS / "env" / f"{role}.env").read_text().replace("@DEVICE@", device)
    for key, value in (values or {}).items():       # @CENTER@, @DSN@, @ARGS@ of the city roles
        text = text.replace(f"@{key}@", value)
    if role == "city" and not secrets:      # peer authentication: no password
        text = text.replace("\nQMS_CITY_PASSWORD_FILE=", "\n#QMS_CITY_PASSWORD_FILE=")
    if not secrets:     # no password installed: the config's [mqtt] settings apply
        text = text.replace("\nQMS_MQTT_PASSWORD_FILE=", "\n#QMS_MQTT_PASSWORD_FILE=")
    if robot:
        text = text.replace("\nQMS_ARGS=\n", "\nQMS_ARGS=--robot\n")
    if not pi:      # no lgpio here (the `pi` extra is for a Pi): not "No module named 'lgpio'"
        text = text.replace("\nGPIOZERO_PIN_FACTORY=lgpio\n",
                            "\n# not a Raspberry Pi, no lgpio: gpiozero picks what it finds\n"
                            "#GPIOZERO_PIN_FACTORY=lgpio\n")
    return text.encode()


def pick_device(cfg, role: str, wanted: str | None) -> tuple[str, bool]:
    """The device id this machine runs as, and whether it is a robot."""
    roles = DEVICE_ROLES[role]
    if role == "web":       # `qms web` connects as [web] device_id; the ACL needs that device
        d = cfg.device(wanted or cfg.web.device_id)
        if wanted and wanted != cfg.web.device_id:
            raise InstallError(f"`qms web` connects as [web] device_id = {cfg.web.device_id!r}, "
                               f"not {wanted!r}: set device_id in {cfg.source}")
        if d is None or d.role != "web":
            raise InstallError(f"{cfg.source} has no [[devices]] id = {cfg.web.device_id!r} role = \"web\" "
                               "(the broker ACL gives `qms web` its topics through it)")
        return d.id, False
    if wanted:
        d = cfg.device(wanted)
        if d is None or d.role not in roles:
            ids = [x.id for x in cfg.devices if x.role in roles]
            raise InstallError(f"device {wanted!r} is not a {'/'.join(roles)} in {cfg.source} "
                               f"(there: {', '.join(ids) or 'none'})")
        return d.id, d.role == "robot"
    found = [d for d in cfg.devices if d.role in roles]
    if role == "service" and not found:
        return "service", False
    if len(found) != 1:
        raise InstallError(f"{cfg.source} has {len(found)} {role} devices "
                           f"({', '.join(d.id for d in found) or 'none'}): say which with --device")
    return found[0].id, found[0].role == "robot"


def plan(role: str, config: Path | None, device: str, robot: bool, venv: Path, reuse_venv: bool,
         secrets: Path | None, system_pygame: bool = False) -> list[Step]:
    groups = [USER] + supplementary_groups(role)
    steps = [group_step(g) for g in groups]
    steps.append(user_step())
    steps += [dir_step(ETC, 0o750, "root", USER), dir_step(STATE, 0o750, USER, USER)]
    if config is not None:
        steps.append(file_step(ETC / "site.toml", installed_config(config), 0o640, "root", USER,
                               what=f"site config {ETC}/site.toml from {config} (state_dir {STATE})"))
    steps.append(file_step(ETC / f"{role}.env", env_text(role, device, robot, on_a_pi(), secrets is not None), 0o640, "root", USER,
                           replace=False, what=f"environment {ETC}/{role}.env (device {device})"))
    if secrets is not None:
        steps += secret_steps(secrets, device, role)
    steps += venv_steps(venv, reuse_venv, system_pygame, role)
    steps.append(file_step(UNIT_DIR / COMMON_DROPIN, (UNITS / COMMON_DROPIN).read_bytes()))
    steps += time_sync_steps()
    if role == "kiosk":
        steps.append(udev_step(UNITS / "udev" / USB_PRINTER_RULES.name, USB_PRINTER_RULES))
    steps += unit_steps(role, venv, [BROKER_DROPIN] if role == "service" else [])
    return steps


def unit_steps(role: str, venv: Path, dropins: list[str]) -> list[Step]:
    """The role's unit, its own drop-ins (shipped in systemd/), and enabling it."""
    unit = f"qms-{role}.service"
    return [file_step(UNIT_DIR / unit, unit_text(role, venv).encode()),
            *(file_step(UNIT_DIR / d, (UNITS / d).read_bytes()) for d in dropins),
            enable_step(unit)]


@dataclass
class CityOptions:
    """What the city roles are told on the command line (files are read when planning)."""
    center: str | None = None           # uplink: the center's URL
    token_file: Path | None = None      # uplink: this point's token
    center_ca: Path | None = None       # uplink: the CA of the center's certificate
    dsn: str | None = None              # city: PostgreSQL
    db_password_file: Path | None = None
    bind: str = "127.0.0.1"
    port: int = 8090
    tls_cert: Path | None = None
    tls_key: Path | None = None


def _secret(src: Path, what: str) -> bytes:
    try:
        data = src.read_bytes()
    except OSError as e:
        raise InstallError(f"{what}: cannot read {src}: {e.strerror}") from None
    if not data.strip():
        raise InstallError(f"{what}: {src} is empty")
    return data


def city_plan(role: str, opts: CityOptions, config: Path | None, venv: Path, reuse_venv: bool,
              host: Host) -> list[Step]:
    """The uplink on a point, or the central tier on the city's server."""
    steps = [group_step(USER), user_step(), dir_step(ETC, 0o750, "root", USER), dir_step(STATE, 0o750, USER, USER)]
    env = ETC / f"{role}.env"
    has_env = host.path(env).exists()        # written once: then the admin's
    if role == "uplink":
        if config is not None:
            steps.append(file_step(ETC / "site.toml", installed_config(config), 0o640, "root", USER,
                                   what=f"site config {ETC}/site.toml from {config} (state_dir {STATE})"))
        if opts.center is None and not has_env:
            raise InstallError("--center URL is needed: the city's central tier, e.g. https://city.example.vn")
        if opts.center is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", opts.center):
            raise InstallError(f"--center {opts.center!r}: give the URL, e.g. https://city.example.vn")
        if opts.token_file is None and not host.path(UPLINK_TOKEN).exists():
            raise InstallError("--token-file FILE is needed: the token `qms city add-site` printed on the center")
        args = f"--ca {CITY_CA}" if opts.center_ca else ""
        steps.append(file_step(env, env_text(role, "", False, values={"CENTER": opts.center or "", "ARGS": args}),
                               0o640, "root", USER, replace=False, what=f"environment {env} (center {opts.center})"))
        if opts.token_file is not None:
            token = _secret(opts.token_file, "--token-file")
            if len(token.strip().splitlines()) != 1:
                raise InstallError(f"--token-file: {opts.token_file} should hold the token alone, on one line")
            steps.append(file_step(UPLINK_TOKEN, token.strip() + b"\n", 0o640, "root", USER,
                                   what=f"uplink token in {UPLINK_TOKEN}"))
        if opts.center_ca is not None:
            steps.append(file_step(CITY_CA, _secret(opts.center_ca, "--center-ca"), 0o644,
                                   what=f"the center's CA in {CITY_CA}"))
    else:
        if opts.dsn is None and not has_env:
            raise InstallError("--dsn is needed: the city database, e.g. postgresql://qms@db.example.vn/city")
        if (opts.tls_cert is None) != (opts.tls_key is None):
            raise InstallError("--tls-cert and --tls-key go together")
        args = f"--host {opts.bind} --port {opts.port}"
        if opts.tls_cert:
            args += f" --ssl-certfile {CITY_CERT} --ssl-keyfile {CITY_KEY}"
        steps.append(file_step(env, env_text(role, "", False, secrets=opts.db_password_file is not None,
                                              values={"DSN": opts.dsn or "", "ARGS": args}),
                               0o640, "root", USER, replace=False, what=f"environment {env} ({args})"))
        if opts.db_password_file is not None:
            steps.append(file_step(CITY_PASSWORD, _secret(opts.db_password_file, "--db-password-file"),
                                   0o640, "root", USER, what=f"database password in {CITY_PASSWORD}"))
        if opts.tls_cert and opts.tls_key:
            steps += [file_step(CITY_CERT, _secret(opts.tls_cert, "--tls-cert"), 0o644, what=f"certificate {CITY_CERT}"),
                      file_step(CITY_KEY, _secret(opts.tls_key, "--tls-key"), 0o640, "root", USER,
                                what=f"certificate key {CITY_KEY}")]
    steps += venv_steps(venv, reuse_venv, False, role)
    steps.append(file_step(UNIT_DIR / COMMON_DROPIN, (UNITS / COMMON_DROPIN).read_bytes()))
    steps += time_sync_steps()
    steps += unit_steps(role, venv, [CITY_PORT_DROPIN] if role == "city" else [])
    return steps


def installed_config(config: Path) -> bytes:
    """The site config as installed: its state_dir is /var/lib/qms, the only place the
    units may write (a relative one would resolve beside /etc/qms/site.toml, read-only
    under ProtectSystem=strict). One under /var/lib/qms already is kept."""
    import tomllib
    text = config.read_text(encoding="utf-8")
    current = tomllib.loads(text).get("paths", {}).get("state_dir")
    if current and (Path(current) == STATE or STATE in Path(current).parents):
        return text.encode()
    line = f'state_dir = "{STATE}"        # set by qms install: the units may write only here'
    table = re.search(r"^\[paths\][ \t]*(#.*)?$", text, re.M)
    if table is None:
        new = text.rstrip("\n") + f"\n\n[paths]\n{line}\n"
    else:
        end = re.search(r"^\s*\[", text[table.end():], re.M)
        body_end = table.end() + (end.start() if end else len(text) - table.end())
        body = text[table.end():body_end]
        key = re.compile(r"^[ \t]*state_dir[ \t]*=.*$", re.M)
        body = key.sub(line, body, count=1) if key.search(body) else "\n" + line + body
        new = text[:table.end()] + body + text[body_end:]
    try:
        ok = tomllib.loads(new).get("paths", {}).get("state_dir") == str(STATE)
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:
        raise InstallError(f'{config}: could not set state_dir = "{STATE}" in [paths]: set it by hand '
                           "(the units may write only there)")
    return new.encode()


def secret_steps(secrets: Path, device: str, role: str) -> list[Step]:
    """The device's MQTT password (and TLS files) from `qms provision`'s output dir."""
    pw = secrets / "devices" / f"{device}.password"
    if not pw.exists():
        raise InstallError(f"{pw} not found: run `qms provision CONFIG {secrets}` first")
    dest = ETC / PASSWORD_FILE.get(role, "mqtt.password")
    steps = [file_step(dest, pw.read_bytes(), 0o640, "root", USER,
                       what=f"MQTT password of {device} in {dest}")]
    for src, name in ((secrets / "tls" / "ca.crt", "ca.crt"),
                      (secrets / "tls" / "devices" / f"{device}.crt", "device.crt"),
                      (secrets / "tls" / "devices" / f"{device}.key", "device.key")):
        if src.exists():
            # the TLS listener checks that a certificate is the site CA's, the ACL goes by the
            # password's user: a second device of a machine keeps the machine's certificate
            steps.append(file_step(ETC / "tls" / name, src.read_bytes(), 0o640, "root", USER,
                                   replace=role != "web"))
    broker = secrets / "mosquitto"
    if role == "service" and broker.is_dir():
        for src in sorted(p for p in broker.rglob("*") if p.is_file()):
            rel = src.relative_to(broker)
            dest = (MOSQUITTO_DIR / "conf.d" / "qms.conf" if rel == Path("qms.conf")
                    else MOSQUITTO_DIR / "qms" / rel)
            # the broker drops root and runs as `mosquitto`: it must read these
            steps.append(file_step(dest, src.read_bytes(), 0o640, "root", "mosquitto",
                                   what=f"broker file {dest}"))
    return steps


# ---------------------------------------------------------------- CLI
def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="apply below this directory instead of / (for tests and images)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--config", type=Path, help="site config to install as /etc/qms/site.toml")
    p.add_argument("--device", help="this machine's device id (default: the only one of the role)")
    p.add_argument("--secrets", type=Path, help="output dir of `qms provision` (device password, "
                   "TLS files, broker files for the service role)")
    p.add_argument("--venv", type=Path, help="use this existing venv instead of creating "
                   f"{VENV}")
    p.add_argument("--system-pygame", action="store_true",
                   help="the venv imports Debian's python3-pygame (built with KMSDRM) instead of "
                   "pip's wheel; also fixes an existing venv")
    up = p.add_argument_group("--role uplink (a point of the city)")
    up.add_argument("--center", metavar="URL", help="the city's central tier, e.g. https://city.example.vn")
    up.add_argument("--token-file", type=Path, help="this point's token from `qms city add-site` "
                    f"(installed as {UPLINK_TOKEN})")
    up.add_argument("--center-ca", type=Path, help="CA of the center's certificate, if not a public one")
    city = p.add_argument_group("--role city (the city's central server)")
    city.add_argument("--dsn", help="PostgreSQL, e.g. postgresql://qms@db.example.vn/city or, with peer "
                      "authentication here, postgresql:///city?host=/var/run/postgresql")
    city.add_argument("--db-password-file", type=Path, help=f"the database password (installed as {CITY_PASSWORD})")
    city.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1: "
                      "behind a reverse proxy; 0.0.0.0 to face the network)")
    city.add_argument("--port", type=int, default=8090)
    city.add_argument("--tls-cert", type=Path, help="certificate (chain) for HTTPS without a reverse proxy")
    city.add_argument("--tls-key", type=Path, help="its key")
    add_common(p)


def run(args) -> int:
    from qms.config.site import ConfigError, load_config
    host = Host(root=args.root.resolve(), dry_run=args.dry_run, reused_venv=args.venv is not None)
    if os.geteuid() != 0 and not args.dry_run and host.root == Path("/"):
        print("qms install changes the system: run it as root (sudo), or use --dry-run",
              file=sys.stderr)
        return 2
    cfg_path = args.config or host.path(ETC / "site.toml")
    try:
        if not UNITS.is_dir():
            raise InstallError(f"unit files not found in {UNITS}: run the installer from a "
                               "checkout of the project (pip install -e), see docs/deploy.md")
        venv = args.venv.resolve() if args.venv else VENV       # the unit needs an absolute path
        if args.role in CITY_ROLES:
            cfg = load_config(cfg_path) if args.role == "uplink" else None
            device, robot = (cfg.site.id if cfg else "city"), False
            opts = CityOptions(args.center, args.token_file, args.center_ca, args.dsn, args.db_password_file,
                               args.bind, args.port, args.tls_cert, args.tls_key)
            steps = city_plan(args.role, opts, args.config, venv, args.venv is not None, host)
        else:
            cfg = load_config(cfg_path)
            device, robot = pick_device(cfg, args.role, args.device)
            steps = plan(args.role, args.config, device, robot, venv, args.venv is not None,
                         args.secrets, args.system_pygame)
        print(f"qms install --role {args.role} ({'site' if args.role == 'uplink' else 'device'} {device})"
              + (f" into {host.root}" if host.root != Path("/") else ""))
        changed = execute(steps, host)
    except (ConfigError, InstallError) as e:
        print(f"qms install: {e}", file=sys.stderr)
        return 1
    if cfg is not None and cfg.mqtt.password_file is None and args.secrets is not None and args.role not in PASSWORD_FILE:
        print(f'note: set  password_file = "mqtt.password"  in [mqtt] of the site config, '
              f"so {device} uses {ETC}/mqtt.password", file=sys.stderr)
    print("nothing to do: already installed" if not changed and not args.dry_run
          else "dry run: nothing changed" if args.dry_run else f"done: {changed} change(s)")
    return 0
