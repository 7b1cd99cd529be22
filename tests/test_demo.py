"""`qms demo` runs the whole system on this machine: tickets are issued and called, its QR
codes open its own web page, a second run starts clean, and SIGTERM stops every child.

The demo is driven until what is asserted has happened (deadlines are generous: a loaded
machine makes it slower, not wrong), never for a fixed time."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from qms.config.site import load_config

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 240


class RunningDemo:
    def __init__(self, workdir: Path):
        env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", PYTHONUNBUFFERED="1")
        self.p = subprocess.Popen([sys.executable, "-m", "qms", "demo", "--headless", "--auto",
                                   "--workdir", str(workdir)], cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self._q.put(line)

    def wait_for(self, *patterns: str) -> None:
        """Until every pattern was printed (each a regex)."""
        deadline = time.monotonic() + DEADLINE_S
        missing = list(patterns)
        missing = [x for x in missing if not any(re.search(x, line) for line in self.lines)]
        while missing:
            left = deadline - time.monotonic()
            assert left > 0 and self.p.poll() is None, f"never printed {missing}:\n" + "".join(self.lines[-60:])
            try:
                line = self._q.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            self.lines.append(line)
            missing = [x for x in missing if not re.search(x, line)]

    def children(self) -> dict[str, int]:
        return {m[1]: int(m[2]) for line in self.lines if (m := re.search(r"started (\w+)\s+\(pid (\d+)", line))}

    def terminate(self) -> None:
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(60)
        while not self._q.empty():
            self.lines.append(self._q.get())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_demo_runs_twice_clean_serves_its_own_web_and_stops_on_sigterm(tmp_path):
    cfg_names = {}
    for run in (1, 2):
        demo = RunningDemo(tmp_path)
        try:
            demo.wait_for(r"tracking page and board: http://127\.0\.0\.1:\d+/",
                          r"🎫 cấp số", r"📢 Xin mời công dân có số thứ tự")
            cfg = load_config(tmp_path / "demo-site.toml")
            if not cfg_names:
                served = {s for n in (1, 2) for s in cfg.counter(n).services}
                cfg_names = {s.name_vi: s.id in served for s in cfg.services}
            url = next(re.search(r"(http://\S+)/", x)[1] for x in demo.lines if "tracking page" in x)
            # the tickets' QR codes point at the demo's own web page, which answers
            assert cfg.site.public_url == url
            with urllib.request.urlopen(url + "/", timeout=30) as r:
                assert r.status == 200 and "Quầy" in r.read().decode()
        finally:
            demo.terminate()
        children = demo.children()
        assert set(children) >= {"service", "web", "display", "kiosk"}, demo.lines
        assert demo.p.returncode == 0, "".join(demo.lines[-40:])
        for name, pid in children.items():
            assert not _alive(pid), f"{name} still running after SIGTERM"
        text = "".join(demo.lines)
        assert "exited" not in text, text[-3000:]       # every role stayed up
        # simulated citizens take numbers only for services a running counter serves
        issued = re.findall(r"🎫 cấp số \d+ — (.+?) \(trước", text)
        assert issued and all(cfg_names[name] for name in issued), issued
        # the second run starts from a clean slate: no counter waits for commands of the first
        assert "never arrived" not in (tmp_path / "service.log").read_text(), run
    assert (tmp_path / "counter-1-board.png").stat().st_size > 0
    # citizens took numbers at the kiosk's real touch targets; the simulated printer printed them
    assert sorted((tmp_path / "state" / "tickets").glob("ticket-*.png"))


def test_the_generated_config_has_no_comment_contradicting_its_values(tmp_path):
    from qms.sim.demo import EXAMPLE, demo_config
    text = demo_config(tmp_path, 18830, EXAMPLE, 18080).read_text(encoding="utf-8")
    assert "15 minutes before closing" not in text and "lunch in rotation" not in text
    assert "192.168.1.10" not in text and "ward-example.toml" not in text
    cfg = load_config(tmp_path / "demo-site.toml")
    assert cfg.hours.breaks == [] and cfg.hours.cutoff_minutes == 0 and cfg.mqtt.port == 18830
