"""The counter box firmware under real MicroPython 1.27 (WebAssembly build, run by Node).

firmware_py/node/run_micropython.mjs loads the firmware into the VM's filesystem and
runs a script there; these tests fail when MicroPython fails (exit status, traceback).
Install once: `npm ci --prefix firmware_py/node` (scripts/setup.sh does it).
"""
from __future__ import annotations

from support.micropython import NODE_DIR, ROOT, run_mp  # noqa: F401


def test_the_runner_is_real_micropython_1_27_and_reports_failure(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import sys\nprint(sys.implementation.name, sys.implementation.version[:2])\n"
                      "import dataclasses\n")
    r = run_mp(script)
    assert "micropython (1, 27)" in r.stdout
    assert r.returncode == 1 and "ImportError: no module named 'dataclasses'" in r.stderr


def test_every_firmware_module_loads_under_micropython():
    r = run_mp(NODE_DIR / "import_all.py")
    assert r.returncode == 0, r.stderr
    modules = sorted(p.stem for p in (ROOT / "firmware_py").glob("*.py")
                     if p.stem not in ("__init__", "make_config"))     # make_config: PC only
    assert f"ALL LOADED {len(modules)}" in r.stdout, r.stdout + r.stderr


def test_counter_box_scenario_under_micropython():
    r = run_mp(NODE_DIR / "scenario_box.py")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "ALL OK 25" in r.stdout, r.stdout
