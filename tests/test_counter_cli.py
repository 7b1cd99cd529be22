"""`qms counter` as a process: the keyboard caller against the real service, and bad input."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from support.wait import wait_until

from qms.config.site import load_config
from qms.mqtt.device import Device

ROOT = Path(__file__).resolve().parent.parent


def qms(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GPIOZERO_PIN_FACTORY", None)
    return subprocess.Popen([sys.executable, "-m", "qms", "counter", *args], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8", **kw)


class Lines:
    def __init__(self, stream):
        self.items: list[str] = []
        self.t = threading.Thread(target=lambda: [self.items.append(line.rstrip("\n")) for line in stream],
                                  daemon=True)
        self.t.start()

    def wait(self, text: str, timeout: float = 10) -> None:
        try:
            wait_until(lambda: any(text in line for line in self.items), timeout, what=repr(text))
        except AssertionError as e:
            raise AssertionError(f"{e}; output:\n" + "\n".join(self.items)) from None


def test_keyboard_caller_against_the_real_service(site_config, service, tmp_path, artifacts):
    cfg = load_config(site_config)
    kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp_path / "kiosk.sqlite").start()
    for _ in range(2):
        _, ack = kiosk.request("ticket.request", 5, service="ho-tich")
        assert ack and ack.ok
    kiosk.stop()
    png = artifacts / "counter-2-keyboard.png"
    p = qms("--config", str(site_config), "--device", "counter-2", "--keyboard", "--png", str(png),
            "--outbox", str(tmp_path / "c2.sqlite"))
    out = Lines(p.stdout)
    try:
        out.wait("Phím: n gọi tiếp")
        out.wait("Quầy 2 | Chưa phục vụ ai | Đang mở | Kết nối: tốt")
        steps = [
            ("n", ["Mời số 2001 đến quầy 2.", "Quầy 2 | Đang phục vụ: 2001"]),
            ("r", ["Đã gọi lại số 2001."]),
            ("t", ["Chuyển sang lĩnh vực Chứng thực (sao y, chứng thực chữ ký)? (1/12)"]),
            ("t\n", ["Đã chuyển số 2001 sang lĩnh vực Đất đai."]),   # second target, Enter confirms
            (1.6, []),                                                  # past the repeat guard
            ("n", ["Mời số 2002 đến quầy 2."]),
            ("d", ["Đã phục vụ xong số 2002."]),
            ("4", ["Cảm ơn quý khách đã đánh giá: Rất hài lòng."]),
            ("x?q", []),                                # unknown keys are ignored; q quits
        ]
        for keys, expected in steps:
            if isinstance(keys, float):
                time.sleep(keys)
                continue
            p.stdin.write(keys)
            p.stdin.flush()
            for line in expected:
                out.wait(line)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
            type(e).__name__ == "RatingSubmitted" for e in service.store.events(day=service.core.day)):
        time.sleep(0.05)
    rated = [e for e in service.store.events(day=service.core.day) if type(e).__name__ == "RatingSubmitted"]
    assert [(e.counter, e.level) for e in rated] == [(2, 4)]
    assert png.exists()


def test_unknown_device_is_a_clear_error(site_config):
    p = qms("--config", str(site_config), "--device", "kiosk-1", "--keyboard")
    _, err = p.communicate(timeout=20)
    assert p.returncode == 2
    assert "'kiosk-1' is not a counter device (counter devices: counter-1, counter-2" in err


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "config" / "ward-example.toml").read_text(encoding="utf-8")
                   + "\n[counter_terminal]\nrating_secnds = 5\n", encoding="utf-8")
    p = qms("--config", str(bad), "--device", "counter-1", "--keyboard")
    _, err = p.communicate(timeout=20)
    assert p.returncode == 2 and "rating_secnds" in err


def test_no_gpio_on_a_pc_says_use_keyboard(site_config):
    p = qms("--config", str(site_config), "--device", "counter-1")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 2
    assert "cannot use the GPIO pins" in err and "--keyboard" in err
