"""`qms demo` runs the whole system on this machine: tickets are issued and called."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_headless_and_calls_tickets(tmp_path):
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    out = subprocess.run([sys.executable, "-m", "qms", "demo", "--headless", "--auto",
                          "--duration", "25", "--workdir", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    text = out.stdout
    assert out.returncode == 0, out.stderr[-3000:]
    assert "🎫 cấp số" in text, text[-3000:]
    assert "📢 Xin mời công dân có số thứ tự" in text, text[-3000:]
    assert "exited" not in text, text[-3000:]          # every role stayed up
    for name in ("service", "display", "kiosk"):
        assert (tmp_path / f"{name}.log").exists()
    assert (tmp_path / "counter-1-board.png").stat().st_size > 0
    # citizens took numbers at the kiosk's real touch targets; the simulated printer printed them
    assert sorted((tmp_path / "state" / "tickets").glob("ticket-*.png"))
