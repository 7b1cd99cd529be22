"""`qms provision CONFIG OUTDIR`: Mosquitto credentials, ACL, listeners, TLS, bridges.

From the site config it writes (see docs/security.md for what each role may do):

    OUTDIR/devices/<id>.password     one random password per device (0600); the device
                                     reads it through `mqtt.password_file` in its config
    OUTDIR/mosquitto/qms.conf        listener(s), anonymous off, ACL and password files
    OUTDIR/mosquitto/passwd          mosquitto_passwd format (PBKDF2-SHA512, "$7$")
    OUTDIR/mosquitto/acl             one `user` block per device
    OUTDIR/mosquitto/tls/            server certificate and CA certificate   (--tls)
    OUTDIR/tls/                      the CA key and device certificates      (--tls)
    OUTDIR/sub-points/<site>/        the same for each --sub-point, with its bridge

`qms install --secrets OUTDIR` puts each piece where it belongs. Re-running keeps existing
passwords and certificates (add a device without re-keying the others); --rotate renews
the passwords.
"""
from __future__ import annotations

import argparse
import base64
import grp
import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path

from qms.ops.acl import Grant, acl_text, bridge_grant, device_grant
from qms.ops.broker_conf import Bridge, Listener, listener_conf

BROKER_DIR = Path("/etc/mosquitto/qms")
ROLES_NOT_SERVICE = ("kiosk", "robot", "display", "counter", "web", "admin")
PBKDF2_ITERATIONS = 101       # Mosquitto 2.0's default; passwords are random, not guessable


class ProvisionError(Exception):
    pass


# ---------------------------------------------------------------- passwords
def hash_password(password: str, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    """The password_file hash Mosquitto 2 writes: $7$<iterations>$<salt b64>$<sha512 b64>."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def check_password(password: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt, _dk = hashed.split("$")
        if kind != "7":
            return False
        again = hash_password(password, base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(again, hashed)


def device_password(secret_dir: Path, user: str, rotate: bool) -> str:
    """The user's password, kept in secret_dir/<user>.password (created if new)."""
    path = secret_dir / f"{user}.password"
    if path.exists() and not rotate:
        pw = path.read_text(encoding="utf-8").strip()
        if pw:
            return pw
    pw = secrets.token_urlsafe(24)          # 192 bits
    secret_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(pw + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return pw


def passwd_text(users: dict[str, str], previous: Path) -> str:
    """mosquitto_passwd file; a user's old hash is kept while it still matches, so the file
    only changes when a password does (the installer then has nothing to do)."""
    old: dict[str, str] = {}
    if previous.exists():
        for line in previous.read_text().splitlines():
            name, _, hashed = line.partition(":")
            old[name] = hashed
    lines = []
    for user, pw in users.items():
        hashed = old.get(user, "")
        lines.append(f"{user}:{hashed if check_password(pw, hashed) else hash_password(pw)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- one broker
def write_broker(out: Path, grants: list[Grant], passwords: dict[str, str], listener: Listener,
                 broker_dir: Path, bridge: Bridge | None = None) -> None:
    users = [g.user for g in grants]
    dupes = sorted({u for u in users if users.count(u) > 1})
    if dupes:
        raise ProvisionError(f"MQTT user(s) {', '.join(dupes)} would be defined twice on the broker "
                             f"of {out}: device ids must be unique across the sites it serves")
    mdir = out / "mosquitto"
    mdir.mkdir(parents=True, exist_ok=True)
    _write(mdir / "passwd", passwd_text({u: passwords[u] for u in users}, mdir / "passwd"), 0o640)
    _write(mdir / "acl", acl_text(grants), 0o640)
    _write(mdir / "qms.conf", listener_conf(broker_dir, listener, bridge), 0o640)


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    broker_readable(tmp)
    tmp.replace(path)


BROKER_GROUP = "mosquitto"


def broker_readable(path: Path) -> None:
    """Group `mosquitto`, readable by the group (0640): Mosquitto drops root and runs as its
    own user, so a 0600 root key (what openssl writes) is one it cannot load (`--in-place`
    uses the files where they are written). Without that group (a development machine) or
    without root, the mode alone is set."""
    path.chmod(0o640)
    try:
        gid = grp.getgrnam(BROKER_GROUP).gr_gid
    except KeyError:
        return
    if os.geteuid() == 0:
        os.chown(path, 0, gid)


def site_grants(cfg, *, skip_roles: tuple[str, ...] = ()) -> list[Grant]:
    grants = [device_grant(cfg.site.id, d.id, d.role) for d in cfg.devices if d.role not in skip_roles]
    if not any(d.role == "service" for d in cfg.devices) and "service" not in skip_roles:
        grants.insert(0, device_grant(cfg.site.id, "service", "service"))   # qms.service.app's default id
    return grants


def service_ids(cfg) -> list[str]:
    return [d.id for d in cfg.devices if d.role == "service"] or ["service"]


# ---------------------------------------------------------------- whole provisioning
def provision(cfg, out: Path, *, listener: Listener, broker_dir: Path | None = BROKER_DIR,
              sub_points=(), main_address: str | None = None, placement: str = "center",
              tls_hosts: list[str] | None = None, rotate: bool = False) -> list[str]:
    """Write everything; returns a summary (lines for the operator).

    broker_dir None: each broker config names its files where they are written (to try it
    on this machine); else where the installer puts them on the broker host."""
    from qms.ops import tls as tls
    grants = site_grants(cfg)
    pw_dir = out / "devices"
    passwords = {g.user: device_password(pw_dir, g.user, rotate) for g in grants}
    summary = [f"site {cfg.site.id}: {len(grants)} MQTT users -> {out}/mosquitto, passwords in {pw_dir}"]

    if sub_points and not main_address:
        raise ProvisionError("--sub-point needs --main-address HOST:PORT (how sub-points reach this broker)")
    bridges = []
    for sub in sub_points:
        s = sub.site.id
        user = f"bridge-{s}"
        passwords[user] = device_password(out / "bridges", user, rotate)
        grants.append(bridge_grant(s, user, placement))
        if placement == "center":      # the sub-point's service runs here, on the main broker
            for g in site_grants(sub, skip_roles=ROLES_NOT_SERVICE):
                grants.append(g)
                passwords[g.user] = device_password(pw_dir, g.user, rotate)
        bridges.append(Bridge(s, user, passwords[user], main_address, placement, tls=tls_hosts is not None))

    if tls_hosts is not None:
        tls_dir = out / "tls"
        tls.make_ca(tls_dir, cfg.site.id)
        mtls = out / "mosquitto" / "tls"
        tls.make_cert(tls_dir, mtls, "server", hosts=tls_hosts, server=True)
        mtls.joinpath("ca.crt").write_bytes((tls_dir / "ca.crt").read_bytes())
        for f in ("server.key", "server.crt", "ca.crt"):
            broker_readable(mtls / f)
        for g in grants:
            tls.make_cert(tls_dir, tls_dir / "devices", g.user)
        summary.append(f"TLS: CA {tls_dir}/ca.crt (keep ca.key offline), listener on {listener.tls_port}"
                       + (f", plain listener on {listener.port} too" if listener.plain else
                          ", no plain listener"))
    write_broker(out, grants, passwords, listener, broker_dir or out / "mosquitto")

    for sub, bridge in zip(sub_points, bridges):
        sout = out / "sub-points" / sub.site.id
        skip = ("service",) if placement == "center" else ()
        sgrants = site_grants(sub, skip_roles=skip)
        spw = {g.user: device_password(sout / "devices", g.user, rotate) for g in sgrants}
        if tls_hosts is not None:
            # one CA for the city's tier: the bridge and the sub-point broker use it too
            stls = sout / "mosquitto" / "tls"
            tls.make_cert(out / "tls", stls, "server", hosts=tls_hosts, server=True)
            tls.make_cert(out / "tls", stls, "bridge")
            stls.joinpath("ca.crt").write_bytes((out / "tls" / "ca.crt").read_bytes())
            for f in ("server.key", "server.crt", "bridge.key", "bridge.crt", "ca.crt"):
                broker_readable(stls / f)
            for g in sgrants:
                tls.make_cert(out / "tls", sout / "tls" / "devices", g.user)
            (sout / "tls").joinpath("ca.crt").write_bytes((out / "tls" / "ca.crt").read_bytes())
        write_broker(sout, sgrants, spw, listener, broker_dir or sout / "mosquitto", bridge)
        summary.append(f"sub-point {sub.site.id}: {len(sgrants)} users, bridge to {main_address} "
                       f"-> {sout}")
    return summary


# ---------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="site config (TOML)")
    p.add_argument("outdir", type=Path, help="where to write (keep it private: it holds secrets)")
    p.add_argument("--port", type=int, default=1883, help="plain MQTT listener port")
    p.add_argument("--bind", default="", help="listen address (default: every interface)")
    p.add_argument("--broker-dir", type=Path, default=BROKER_DIR,
                   help=f"where the broker will find passwd/acl/tls (default {BROKER_DIR})")
    p.add_argument("--in-place", action="store_true",
                   help="configs name the files where they are written (try it on this machine)")
    p.add_argument("--max-queued", type=int, default=20000,
                   help="broker queue per client and bridge (never relied upon)")
    p.add_argument("--tls", action="store_true",
                   help="a TLS listener with client certificates, instead of the plain one")
    p.add_argument("--keep-plain", action="store_true",
                   help="with --tls: keep the plain listener too (--port, --bind; e.g. 127.0.0.1 "
                        "for a service on the broker's machine)")
    p.add_argument("--tls-port", type=int, default=8883)
    p.add_argument("--tls-host", action="append", default=[],
                   help="broker host name or IP for its certificate (repeatable)")
    p.add_argument("--sub-point", type=Path, action="append", default=[],
                   help="config of a sub-point bridged to this site's broker (repeatable)")
    p.add_argument("--main-address", help="HOST:PORT at which sub-points reach this broker")
    p.add_argument("--service-at", choices=("center", "local"), default="center",
                   help="where sub-points' services run: on the center (default) or at the sub-point")
    p.add_argument("--rotate", action="store_true", help="new passwords for every device")


def run(args) -> int:
    from qms.config.site import ConfigError, load_config
    from qms.ops.tls import TlsError
    try:
        cfg = load_config(args.config)
        subs = [load_config(p) for p in args.sub_point]
        if args.tls and not args.tls_host:
            raise ProvisionError("--tls needs at least one --tls-host (the broker's name or IP)")
        listener = Listener(port=args.port, bind=args.bind,
                            tls_port=args.tls_port if args.tls else None, max_queued=args.max_queued,
                            plain=args.keep_plain or not args.tls)
        lines = provision(cfg, args.outdir, listener=listener,
                          broker_dir=None if args.in_place else args.broker_dir,
                          sub_points=subs, main_address=args.main_address,
                          placement=args.service_at, tls_hosts=args.tls_host if args.tls else None,
                          rotate=args.rotate)
    except (ConfigError, ProvisionError, TlsError, OSError) as e:
        print(f"qms provision: {e}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    print('devices: set  password_file = "mqtt.password"  in [mqtt]; `qms install --secrets '
          f'{args.outdir}` copies each device\'s password to /etc/qms/mqtt.password')
    return 0
