"""Every `qms` subcommand loads and explains itself."""
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(name):
    out = subprocess.run([sys.executable, "-m", "service.cli", name, "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"qms {name}" in out.stdout


def test_no_subcommand_prints_the_list():
    out = subprocess.run([sys.executable, "-m", "service.cli"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    for name in SUBCOMMANDS:
        assert name in out.stdout
