"""Every `qms` subcommand loads and explains itself."""
import subprocess
import sys
from pathlib import Path

import pytest

from qms.cli.main import SUBCOMMANDS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(name):
    out = subprocess.run([sys.executable, "-m", "qms", name, "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"qms {name}" in out.stdout


def test_no_subcommand_prints_the_list():
    out = subprocess.run([sys.executable, "-m", "qms"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("role", ["service", "kiosk", "display", "counter", "web"])
def test_a_bad_config_is_named_with_its_key_for_every_role(role, tmp_path):
    bad = tmp_path / "site.toml"
    bad.write_text((ROOT / "config" / "ward-example.toml").read_text(encoding="utf-8")
                   .replace("code = 3", "code = 30"), encoding="utf-8")
    extra = ["--device", "counter-1", "--keyboard"] if role == "counter" else []
    out = subprocess.run([sys.executable, "-m", "qms", role, "--config", str(bad), *extra], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"error: {bad}: " in out.stderr and "`services[2].code`" in out.stderr
    assert "Traceback" not in out.stderr
