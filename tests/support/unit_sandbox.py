"""Start a role the way its installed systemd unit would, without systemd: under bubblewrap.

What the unit says is read from the installed unit file and the shared qms-.service.d
drop-in (ExecStart, Environment, EnvironmentFile, User, Group, SupplementaryGroups,
WorkingDirectory, WatchdogSec) and emulated:

- ProtectSystem=strict: the whole root is read-only, except ReadWritePaths (/var/lib/qms)
  and a private /tmp (PrivateTmp); ProtectHome: /home and /root are empty tmpfs (unless the
  venv under test lives there); PrivateDevices-like: a minimal /dev.
- User=, Group=, SupplementaryGroups=, NoNewPrivileges, an empty capability set: `setpriv`
  inside the sandbox, with the uid/gids of the installed root's /etc/passwd and /etc/group
  (only when we are root; otherwise the process keeps our own uid).
- NOTIFY_SOCKET (an abstract socket: the sandbox shares our network namespace) and
  WATCHDOG_USEC from WatchdogSec=, STATE_DIRECTORY from StateDirectory=.

Not emulated: the seccomp filter, RestrictAddressFamilies, the Protect{Kernel*,Clock,...}
switches and the cgroup settings (they need systemd itself).

The "base" root is what the sandbox sees as / (the host's / on x86, a foreign-arch root in
scripts/target-check.sh); "installed" is the tree `qms install --root` wrote, whose
/etc/qms and /var/lib/qms are laid over it when the base lacks them.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

UNIT_DIR = Path("etc/systemd/system")
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Unit:
    settings: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        values = self.settings.get(key)
        return values[-1] if values else default

    def all(self, key: str) -> list[str]:
        return self.settings.get(key, [])


def read_unit(installed: Path, role: str) -> Unit:
    """The unit and its drop-ins (drop-ins after the unit, as systemd reads them)."""
    unit = Unit()
    files = [installed / UNIT_DIR / f"qms-{role}.service"]
    for d in (installed / UNIT_DIR / "qms-.service.d", installed / UNIT_DIR / f"qms-{role}.service.d"):
        if d.is_dir():
            files += sorted(d.glob("*.conf"))
    for f in files:
        for line in f.read_text().splitlines():
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            key, value = line.split("=", 1)
            unit.settings.setdefault(key.strip(), []).append(value.strip())
    return unit


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def unit_environment(unit: Unit, installed: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in unit.all("Environment"):
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            env[key] = value
    for name in unit.all("EnvironmentFile"):
        optional = name.startswith("-")
        path = installed / name.lstrip("-/")
        if path.exists():
            env.update(read_env_file(path))
        elif not optional:
            raise FileNotFoundError(f"EnvironmentFile {name} missing in {installed}")
    return env


def exec_start(unit: Unit, env: dict[str, str]) -> list[str]:
    """ExecStart= with systemd's substitution: ${VAR} is one word, a lone $VAR splits."""
    line = re.sub(r"^[-@:+!]+", "", unit.get("ExecStart"))
    argv: list[str] = []
    for word in shlex.split(line):
        lone = re.fullmatch(r"\$(\w+)", word)
        if lone:
            argv += env.get(lone.group(1), "").split()
        else:
            argv.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


def _ids(root: Path, db: str) -> dict[str, int]:
    out = {}
    for line in (root / "etc" / db).read_text().splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit():
            out[parts[0]] = int(parts[2])
    return out


def seconds(value: str) -> float:
    """systemd time span: "30", "30s", "1min 30s", "500ms"."""
    units = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)\s*([a-z]*)", value):
        total += float(num) * units[unit]
    return total


def _layer(base: Path, extra: dict[str, Path], skip: set[str]) -> list[str]:
    """bwrap arguments that rebuild `base` read-only on a tmpfs root, leaving out `skip`
    and making room (--dir) for the `extra` mount points the base does not have."""
    prefixes = set()
    for p in extra:
        parts = Path(p).parts[1:]
        for i in range(1, len(parts)):
            prefixes.add("/" + "/".join(parts[:i]))
    args: list[str] = []

    def walk(rel: str) -> None:
        for name in sorted(os.listdir(base / rel.lstrip("/") if rel != "/" else base)):
            path = f"{rel.rstrip('/')}/{name}"
            src = base / path.lstrip("/")
            if path in skip or path in extra:
                continue
            if src.is_symlink():
                args.extend(["--symlink", os.readlink(src), path])
            elif path in prefixes and src.is_dir():
                args.extend(["--dir", path])
                walk(path)
            else:
                args.extend(["--ro-bind", str(src), path])

    walk("/")
    for p in sorted(prefixes):
        if not (base / p.lstrip("/")).is_dir():
            args.extend(["--dir", p])
    return args


@dataclass
class Sandboxed:
    argv: list[str]
    env: dict[str, str]
    start_timeout: float
    watchdog_usec: int


def sandboxed(role: str, installed: Path, state: Path, notify_socket: str, base: Path = Path("/"),
              keep_home: bool = False) -> Sandboxed:
    """The bwrap command line that starts `role` as its installed unit would.

    installed: the root `qms install` wrote (its etc/systemd/system, etc/qms, etc/passwd);
    state: the host directory that is /var/lib/qms inside; base: the sandbox's /.
    """
    unit = read_unit(installed, role)
    env = unit_environment(unit, installed)
    argv = exec_start(unit, env)
    watchdog = int(seconds(unit.get("WatchdogSec", "0")) * 1_000_000)
    state_in = "/var/lib/qms"
    env = {**env, "PATH": SANDBOX_PATH, "HOME": state_in, "USER": unit.get("User", "root"),
           "LOGNAME": unit.get("User", "root"), "NOTIFY_SOCKET": notify_socket,
           "STATE_DIRECTORY": state_in}
    if watchdog:
        env["WATCHDOG_USEC"] = str(watchdog)

    extra = {"/etc/qms": installed / "etc/qms", state_in: state}
    skip = {"/dev", "/proc", "/tmp", "/run"}
    if not keep_home:
        skip |= {"/home", "/root"}
    bw = ["bwrap", *_layer(base, extra, skip),
          "--ro-bind", str(extra["/etc/qms"]), "/etc/qms",
          "--bind", str(state), state_in,
          "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    if not keep_home:
        bw += ["--tmpfs", "/home", "--tmpfs", "/root"]
    bw += ["--remount-ro", "/", "--chdir", unit.get("WorkingDirectory", "/"),
           "--unshare-ipc", "--unshare-uts", "--die-with-parent"]
    if os.geteuid() == 0:
        users, groups = _ids(installed, "passwd"), _ids(installed, "group")
        user, group = unit.get("User", "root"), unit.get("Group", unit.get("User", "root"))
        supp = [groups[g] for line in unit.all("SupplementaryGroups") for g in line.split()]
        bw += ["--", "setpriv", f"--reuid={users[user]}", f"--regid={groups[group]}",
               "--groups=" + ",".join(str(g) for g in [groups[group], *supp]),
               "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
    else:
        bw += ["--unshare-user", "--"]
    return Sandboxed(bw + argv, env, seconds(unit.get("TimeoutStartSec", "90")), watchdog)


# ---------------------------------------------------------------- a test bench's deployer
def deployer_env(role: str, web_port: int) -> dict[str, str]:
    """What the deployer of a test bench puts in /etc/qms/<role>.env: the simulated printer
    (the config's default backend), gpiozero's mock pins, SDL's dummy drivers."""
    return {
        "kiosk": {"QMS_ARGS": "--headless", "GPIOZERO_PIN_FACTORY": "mock"},
        "display": {"QMS_ARGS": "--headless", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"},
        "counter": {"GPIOZERO_PIN_FACTORY": "mock"},
        "web": {"QMS_ARGS": f"--port {web_port} --bind 127.0.0.1"},
        "service": {},
    }[role]


def edit_env(path: Path, values: dict[str, str]) -> None:
    text = path.read_text()
    for key, value in values.items():
        line = f"{key}={value}"
        text, n = re.subn(rf"^#?{key}=.*$", line, text, flags=re.M)
        if not n:
            text += line + "\n"
    path.write_text(text)


class NotifyListener:
    """What a process tells "systemd" on NOTIFY_SOCKET, datagram by datagram (abstract socket).
    Used by the sandbox check here and by tests/test_roles_watchdog.py."""

    def __init__(self) -> None:
        import socket
        import uuid
        self.name = f"@qms-notify-{uuid.uuid4().hex[:12]}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.messages: list[str] = []

    def wait_for(self, line: str, timeout: float = 30.0, count: int = 1) -> bool:
        """True once `line` has come `count` times; False when `timeout` passes first."""
        import time
        end = time.monotonic() + timeout
        while self.count(line) < count:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return False
        return True

    def count(self, line: str) -> int:
        return sum(line in m.splitlines() for m in self.messages)

    def close(self) -> None:
        self.sock.close()


@dataclass
class RoleResult:
    role: str
    ready: bool = False
    watchdog: bool = False
    ready_seconds: float | None = None      # cold start: exec to READY=1
    exit_code: int | None = None
    output: str = ""


def check_role(role: str, installed: Path, base: Path = Path("/"), keep_home: bool = False,
               log_dir: Path | None = None) -> RoleResult:
    """Start the role from its installed unit, wait for READY=1 (TimeoutStartSec) and one
    WATCHDOG=1 (WatchdogSec), then stop it with SIGTERM as systemd does."""
    import subprocess
    import tempfile
    import time
    listener = NotifyListener()
    run = sandboxed(role, installed, installed / "var/lib/qms", listener.name, base, keep_home)
    log = tempfile.TemporaryFile("w+") if log_dir is None else (log_dir / f"{role}.log").open("w+")
    result = RoleResult(role)
    t0 = time.monotonic()
    proc = subprocess.Popen(run.argv, env=run.env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        result.ready = listener.wait_for("READY=1", run.start_timeout)
        if result.ready:
            result.ready_seconds = round(time.monotonic() - t0, 2)
            # the first beat comes at once, the next a third of WatchdogSec later
            result.watchdog = listener.wait_for("WATCHDOG=1", max(run.watchdog_usec / 1e6, 1))
        alive = proc.poll() is None
        result.ready = result.ready and alive
    finally:
        stop(proc.pid)
        try:
            result.exit_code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            result.exit_code = proc.wait()
        listener.close()
        log.flush()
        log.seek(0)
        result.output = log.read()[-4000:]
        log.close()
    return result


def descendants(pid: int) -> list[int]:
    out = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in map(int, children):
        out += [child, *descendants(child)]
    return out


def stop(bwrap_pid: int) -> None:
    """SIGTERM to what runs inside bwrap (systemd's stop, KillMode=control-group); bwrap
    itself then exits with the role's exit status."""
    import signal
    for pid in descendants(bwrap_pid) or [bwrap_pid]:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def main(argv: list[str] | None = None) -> int:
    """Check every role installed in a root (scripts/target-check.sh): one JSON line per role."""
    import argparse
    import json
    import socket
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("root", type=Path, help="the root the roles were installed in (also the sandbox's /)")
    p.add_argument("--roles", default="service,web,kiosk,display,counter")
    p.add_argument("--logs", type=Path, help="keep each role's output here")
    p.add_argument("--repeat", type=int, default=1, help="start each role this many times (cold-start median)")
    args = p.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web_port = s.getsockname()[1]
    ok = True
    for role in args.roles.split(","):
        edit_env(args.root / f"etc/qms/{role}.env", deployer_env(role, web_port))
        runs = [check_role(role, args.root, base=args.root, log_dir=args.logs) for _ in range(args.repeat)]
        fine = all(r.ready and r.watchdog and r.exit_code == 0 and "Traceback" not in r.output for r in runs)
        ok = ok and fine
        r = runs[-1] if fine else next(r for r in runs if not (r.ready and r.watchdog and r.exit_code == 0))
        times = [x.ready_seconds for x in runs if x.ready_seconds is not None]
        print(json.dumps({"role": role, "ready": r.ready, "watchdog": r.watchdog,
                          "ready_seconds": sorted(times)[len(times) // 2] if times else None,
                          "ready_seconds_all": times, "exit_code": r.exit_code,
                          **({} if fine else {"output": r.output[-1500:]})}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
