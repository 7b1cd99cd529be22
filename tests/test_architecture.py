"""The architecture, enforced (docs/architecture.md): import contracts, lint, types, packaging.

The import contracts (pyproject.toml, [tool.importlinter]) are checked on the installed
layout, the wheel unpacked: only there do kiosk/, drivers/, display/, mqtt/ and
firmware_py/ sit inside `qms` as they do after `pip install`.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
# top-level names of ours that must never be imported bare (they live in `qms` now)
BARE = {"service", "mqtt", "kiosk", "display", "drivers", "counter", "firmware_py"}
# not Python packages of ours, or not installed: the Node runner's MicroPython scripts
# (inside MicroPython the firmware is the board's top-level package `firmware_py`)
NOT_INSTALLED = {ROOT / "firmware_py" / "node"}
SKIP_DIRS = {".venv", ".git", "node_modules", "build", "__pycache__", ".pytest_cache", ".hypothesis",
             "artifacts", "var", ".cache"}


def tool(name: str) -> str:
    """A console script of this environment (the `test` extra installs them)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in this environment: pip install -e '.[test]'")
    return str(path)


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def python_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for f in filenames:
            if f.endswith(".py"):
                yield Path(dirpath) / f


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a clean copy (a stale build/ must not leak into it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.egg-info"))
    r = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
             "-w", str(tmp / "dist"), str(src)], cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = (tmp / "dist").glob("*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel unpacked: the package tree exactly as `pip install` lays it out."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def test_the_wheel_holds_only_the_qms_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        tops = {name.split("/")[0] for name in z.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and tops - dist_info == {"qms"}, sorted(tops)


def test_every_package_directory_is_listed_in_pyproject():
    """setuptools installs only the listed packages: a new directory left out would be
    missing from every Pi while all tests (run from the checkout) still pass."""
    listed = set(SETUPTOOLS["packages"])
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    found = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for path in python_files(base):
            d = path.parent
            if any(d == n or n in d.parents for n in NOT_INSTALLED):
                continue
            assert (d / "__init__.py").exists(), f"{d.relative_to(ROOT)} holds Python files but no __init__.py"
            rel = d.relative_to(base).parts
            found.add(".".join((package, *rel)))
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "listed in pyproject.toml but not found"


def test_no_module_imports_a_bare_top_level_name_of_ours():
    offenders = []
    for path in python_files(ROOT):
        if any(n in path.parents for n in NOT_INSTALLED):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                          if n.split(".")[0] in BARE]
    assert offenders == [], "import these through `qms.` (e.g. qms.mqtt.client)"


def test_no_test_file_imports_another_test_file():
    """Shared fixtures and helpers live in tests/support/; a test file importing another
    runs that file's tests twice and ties unrelated tests together."""
    offenders = []
    for path in [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("bench").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                          if n.split(".")[-1].startswith("test_") or n.startswith(("tests.", "conftest"))]
    assert offenders == [], "move what is shared to tests/support/"


def test_import_contracts_hold_on_the_installed_layout(installed):
    env = dict(os.environ, PYTHONPATH=str(installed))
    r = run([tool("lint-imports"), "--no-cache", str(ROOT / "pyproject.toml")], cwd=installed, env=env)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    # the graph really was the installed one: the mapped folders were in it
    assert "BROKEN" not in r.stdout and "0 broken" in r.stdout


def test_the_import_contracts_catch_a_broken_boundary(installed, tmp_path):
    """The contracts are not vacuous: a kiosk importing the web server, or the core opening
    a database, breaks them."""
    site = tmp_path / "site"
    shutil.copytree(installed / "qms", site / "qms")
    with open(site / "qms" / "kiosk" / "checkin.py", "a", encoding="utf-8") as f:
        f.write("\nimport qms.web.bookings\n")
    with open(site / "qms" / "core" / "refusals.py", "a", encoding="utf-8") as f:
        f.write("\nimport sqlite3\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    r = run([tool("lint-imports"), "--no-cache", str(ROOT / "pyproject.toml")], cwd=site, env=env)
    assert r.returncode != 0
    assert "qms.kiosk.checkin -> qms.web.bookings" in r.stdout
    assert "qms.core.refusals -> sqlite3" in r.stdout


def test_ruff_finds_nothing():
    r = run([tool("ruff"), "check", "--no-cache", "."], cwd=ROOT)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_the_core_and_the_config_type_check():
    r = run([tool("mypy"), "--no-incremental", "--cache-dir", os.devnull], cwd=ROOT)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
