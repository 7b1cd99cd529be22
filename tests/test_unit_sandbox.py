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
from support.deploy import make_root
from support.site import free_port, make_config
from support.unit_sandbox import NotifyListener, check_role, deployer_env, edit_env, sandboxed

from qms.cli import main as cli

VENV = Path(sys.executable).parent.parent
# ProtectHome hides /home and /root: keep them when this venv or its Python lives there
KEEP_HOME = any(str(p).startswith(("/home/", "/root/")) for p in (VENV, Path(sys.base_prefix)))
DEVICES = {"service": "service", "kiosk": "kiosk-1", "display": "display-1", "counter": "counter-1",
           "web": "web"}


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
    edit_env(root / f"etc/qms/{role}.env", deployer_env(role, free_port()))

    r = check_role(role, root, keep_home=KEEP_HOME, log_dir=tmp_path)
    assert r.ready, f"{role}: no READY=1 within the unit's start timeout:\n{r.output}"
    assert r.watchdog, f"{role}: no WATCHDOG=1 within WatchdogSec:\n{r.output}"
    assert r.exit_code == 0, f"{role}: exit code {r.exit_code} after SIGTERM:\n{r.output}"
    assert "Traceback" not in r.output, r.output
    # it really wrote its state where the unit lets it, and nothing beside the config
    assert any((root / "var/lib/qms").iterdir()), r.output
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
    assert not listener.messages
