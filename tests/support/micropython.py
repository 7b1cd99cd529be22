"""Real MicroPython 1.27 (the WebAssembly port, run by Node): where it is and how to run a script."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "firmware_py" / "node"
RUNNER = NODE_DIR / "run_micropython.mjs"
PACKAGE = NODE_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"


def run_mp(script: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run scripts/setup.sh (apt-get install nodejs npm)")
    if not PACKAGE.exists():
        pytest.fail("MicroPython for Node is not installed: npm ci --prefix firmware_py/node")
    return subprocess.run([node, str(RUNNER), str(script)], capture_output=True, text=True,
                          timeout=timeout, cwd=NODE_DIR)
