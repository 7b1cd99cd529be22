"""systemd units and the installer, checked by systemd's own tools in a throw-away root."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from service import cli
from service.install import ROLES, UNITS

HOST_UNITS = Path("/usr/lib/systemd/system")
EXEC = re.compile(r"^Exec\w+=[-@:+!]*(/\S+)", re.M)
EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "ward-example.toml"


def make_root(tmp: Path) -> Path:
    """A root that `systemd-analyze --root` and `systemctl --root` accept: the host's unit
    library and an /etc with just root and the mosquitto group."""
    root = tmp / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc"
    (etc / "systemd/system").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nmosquitto:x:120:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nmosquitto:!::\n")
    return root


def stub_executables(root: Path) -> None:
    """verify checks that every Exec*= program exists: give it stubs inside the root."""
    texts = [p.read_text() for p in (root / "etc/systemd/system").glob("*.service")]
    texts.append((root / "usr/lib/systemd/system/mosquitto.service").read_text())
    for path in {p for t in texts for p in EXEC.findall(t)}:
        stub = root / path.lstrip("/")
        if not stub.exists():
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)


def verify(root: Path, unit: str) -> str:
    """systemd-analyze verify: '' when the unit and its drop-ins are clean."""
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", unit],
                          capture_output=True, text=True, timeout=60)
    return (proc.stdout + proc.stderr).strip() or ("" if proc.returncode == 0 else f"rc {proc.returncode}")


def copy_units(root: Path) -> None:
    dest = root / "etc/systemd/system"
    for p in UNITS.iterdir():
        if p.name.endswith(".service"):
            shutil.copy(p, dest / p.name)
        elif p.name.endswith(".service.d"):
            shutil.copytree(p, dest / p.name)


@pytest.fixture
def root(tmp_path):
    if not (HOST_UNITS / "mosquitto.service").exists():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (apt-get install mosquitto)")
    return make_root(tmp_path)


@pytest.mark.parametrize("unit", [f"qms-{r}.service" for r in ROLES] + ["mosquitto.service"])
def test_unit_passes_systemd_analyze_verify(root, unit):
    copy_units(root)
    stub_executables(root)
    assert verify(root, unit) == ""


def test_verify_reports_a_bad_setting_in_the_shared_drop_in(root):
    """The shared qms-.service.d drop-in is really read for every role (else this passes)."""
    copy_units(root)
    stub_executables(root)
    dropin = root / "etc/systemd/system/qms-.service.d/10-qms-common.conf"
    dropin.write_text(dropin.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    assert "Unknown key 'ProtectSytem'" in verify(root, "qms-counter.service")


def test_units_run_qms_subcommands_with_notify_and_watchdog():
    common = (UNITS / "qms-.service.d/10-qms-common.conf").read_text()
    for key in ("Type=notify", "WatchdogSec=", "Restart=always", "RestartSec=", "User=qms",
                "ProtectSystem=strict", "ReadWritePaths=/var/lib/qms", "NoNewPrivileges=yes",
                "PrivateTmp=yes", "ProtectHome=yes", "After=network-online.target",
                "mosquitto.service", "StandardOutput=journal"):
        assert key in common, key
    for role in ROLES:
        text = (UNITS / f"qms-{role}.service").read_text()
        sub = re.search(r"^ExecStart=\S+/qms (\S+)", text, re.M).group(1)
        assert sub == role and sub in cli.SUBCOMMANDS
        assert f"EnvironmentFile=/etc/qms/{role}.env" in text
        assert (UNITS / "env" / f"{role}.env").exists()
