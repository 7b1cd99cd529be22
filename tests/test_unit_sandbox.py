"""Each role started from its *installed* unit, inside the unit's sandbox, says READY=1 and
WATCHDOG=1 within the unit's start timeout.

The installer writes a throw-away root (`qms install --root`); the role then runs its
unit's ExecStart with the unit's Environment/EnvironmentFile, as the unit's user and groups,
under bubblewrap with a read-only root and only /var/lib/qms writable
(tests/support/unit_sandbox.py), against a real Mosquitto. The site config keeps the
state_dir the installer wrote: this is the test that the installed service can start at all.
Only the env files are edited, as a deployer would: simulated printer, gpiozero's mock pins,
SDL's dummy drivers.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, make_config
from support.unit_sandbox import sandboxed
from test_deploy import make_root
from test_roles_watchdog import NotifyListener

from qms.cli import main as cli

VENV = Path(sys.executable).parent.parent
# ProtectHome hides /home and /root: keep them when this venv or its Python lives there
KEEP_HOME = any(str(p).startswith(("/home/", "/root/")) for p in (VENV, Path(sys.base_prefix)))
DEVICES = {"service": "service", "kiosk": "kiosk-1", "display": "display-1", "counter": "counter-1",
           "web": "web"}


def deployer_env(role: str) -> dict[str, str]:
    """What the deployer of a test bench puts in /etc/qms/<role>.env."""
    return {
        "kiosk": {"QMS_ARGS": "--headless", "GPIOZERO_PIN_FACTORY": "mock"},
        "display": {"QMS_ARGS": "--headless", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"},
        "counter": {"GPIOZERO_PIN_FACTORY": "mock"},
        "web": {"QMS_ARGS": f"--port {free_port()} --bind 127.0.0.1"},
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


@pytest.mark.parametrize("role", ["service", "kiosk", "display", "counter", "web"])
def test_installed_role_starts_in_its_units_sandbox(role, broker, tmp_path, capsys):
    root = make_root(tmp_path)
    config = make_config(tmp_path, broker.port)
    secrets = tmp_path / "secrets"        # the test broker takes any password
    assert cli.main(["provision", str(config), str(secrets)]) == 0
    assert cli.main(["install", "--root", str(root), "--venv", str(VENV), "--role", role, "--config",
                     str(config), "--device", DEVICES[role], "--secrets", str(secrets)]) == 0, capsys.readouterr()
    site = (root / "etc/qms/site.toml").read_text()
    assert re.search(r'^state_dir = "/var/lib/qms"', site, re.M), site     # as installed
    edit_env(root / f"etc/qms/{role}.env", deployer_env(role))

    listener = NotifyListener()
    run = sandboxed(role, root, root / "var/lib/qms", listener.name, keep_home=KEEP_HOME)
    log = (tmp_path / f"{role}.log").open("w+")
    proc = subprocess.Popen(run.argv, env=run.env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        ready = listener.wait_for("READY=1", timeout=run.start_timeout)
        assert ready, f"{role}: no READY=1 within {run.start_timeout:.0f} s:\n{_output(log)}"
        # the first beat comes at once, the next a third of WatchdogSec later: wait for one
        assert listener.wait_for("WATCHDOG=1", timeout=run.watchdog_usec / 1e6), \
            f"{role}: no WATCHDOG=1; got {listener.messages}:\n{_output(log)}"
        assert proc.poll() is None, _output(log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        listener.close()
    out = _output(log)
    assert "Traceback" not in out, out
    # it really wrote its state where the unit lets it, and nothing beside the config
    assert any((root / "var/lib/qms").iterdir()), out
    assert not (root / "etc/var").exists()


def test_a_state_dir_the_unit_cannot_write_is_named_in_the_error(broker, tmp_path, capsys):
    """The deployer's config copied by hand with state_dir = "../var": a clear message, not a
    sqlite traceback at every restart."""
    root = make_root(tmp_path)
    config = make_config(tmp_path, broker.port)
    assert cli.main(["install", "--root", str(root), "--venv", str(VENV), "--role", "service",
                     "--config", str(config)]) == 0
    installed = root / "etc/qms/site.toml"
    installed.write_text(installed.read_text().replace('state_dir = "/var/lib/qms"', 'state_dir = "../var"'))
    listener = NotifyListener()
    run = sandboxed("service", root, root / "var/lib/qms", listener.name, keep_home=KEEP_HOME)
    proc = subprocess.run(run.argv, env=run.env, capture_output=True, text=True, timeout=run.start_timeout)
    listener.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "state directory /etc/var (`paths.state_dir`) cannot be created" in proc.stderr, proc.stderr
    assert 'state_dir = "/var/lib/qms"' in proc.stderr and "Traceback" not in proc.stderr
    assert listener.count("READY=1") == 0


def _output(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-4000:]
