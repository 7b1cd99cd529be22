"""Offline numbering, the procedure catalog, and the `qms kiosk` command line."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
from support.site import ROOT, free_port, make_config

from qms.config.site import load_config
from qms.core.queue import QueueCore
from qms.kiosk.catalog import DEFAULT, load_catalog, parse_catalog
from qms.kiosk.offline import BlockExhausted, OfflineNumbers
from qms.mqtt.outbox import Outbox

NOON = 1795496400000          # 2026-11-24 12:00 +07


@pytest.fixture
def cfg(tmp_path):
    return load_config(make_config(tmp_path, free_port(), extra=""))


def test_blocks_never_collide_with_each_other_or_the_service(cfg):
    core = QueueCore(cfg)
    for s in cfg.services:
        blocks = [set(core.offline_block(s.id, k)) for k in cfg.kiosk_ids()]
        assert all(len(b) == cfg.queue.offline_block for b in blocks)
        assert not blocks[0] & blocks[1]
        online = set(range(s.first, core._online_last(s.id) + 1))
        assert not online & (blocks[0] | blocks[1])
        assert s.daily_cap <= len(online)


def test_numbers_count_up_persist_and_run_out(cfg, tmp_path):
    path = tmp_path / "k.sqlite"
    outbox = Outbox(path, "robot-1")
    nums = OfflineNumbers(cfg, "robot-1", outbox.conn)
    got = []
    for i in range(cfg.queue.offline_block):
        n = nums.next_number("ho-tich", NOON)
        outbox.add("t", "ticket.offline", {"number": n}, extra=nums.record("ho-tich", n, f"id-{i:06d}", NOON + i))
        got.append(n)
    assert got == list(range(2900, 2950))            # robot-1 is the 2nd kiosk: 900..949
    with pytest.raises(BlockExhausted):
        nums.next_number("ho-tich", NOON)
    assert nums.next_number("ho-tich", NOON + 86_400_000) == 2900    # a new day, a fresh block
    assert nums.left("ho-tich", NOON) == 0 and nums.left("dat-dai", NOON) == 50
    outbox.close()
    again = OfflineNumbers(cfg, "robot-1", Outbox(path, "robot-1").conn)
    with pytest.raises(BlockExhausted):               # after a restart: still used up
        again.next_number("ho-tich", NOON)


def test_number_and_outbox_row_are_one_transaction(cfg, tmp_path):
    outbox = Outbox(tmp_path / "k.sqlite", "kiosk-1")
    nums = OfflineNumbers(cfg, "kiosk-1", outbox.conn)
    n = nums.next_number("chung-thuc", NOON)
    outbox.add("t", "ticket.offline", {"number": n}, extra=nums.record("chung-thuc", n, "aaaaaaaa", NOON))
    with pytest.raises(sqlite3.IntegrityError):       # the same number twice: refused, and ...
        outbox.add("t", "ticket.offline", {"number": n}, extra=nums.record("chung-thuc", n, "bbbbbbbb", NOON))
    assert outbox.count() == 1                         # ... its outbox row rolled back with it
    assert nums.next_number("chung-thuc", NOON) == n + 1


def test_unknown_device_has_no_block(cfg):
    with pytest.raises(BlockExhausted):
        OfflineNumbers(cfg, "display-1", sqlite3.connect(":memory:")).next_number("ho-tich", NOON)


def test_default_catalog_covers_every_service_in_nfc(cfg):
    cat = load_catalog(None, {s.id for s in cfg.services})
    assert not cat.problems
    for s in cfg.services:
        assert cat.for_service(s.id), s.id
    p = cat.for_service("chung-thuc")[0]
    assert "2.000 đ/trang" in p.fee_vi
    assert p.text("vi").startswith("Chứng thực bản sao từ bản chính. Hồ sơ gồm:")
    assert p.text("en").startswith("Certified copy")


def test_broken_catalog_falls_back_with_a_clear_message(cfg, tmp_path):
    ids = {s.id for s in cfg.services}
    bad = tmp_path / "cat.toml"
    bad.write_text('[[procedures]]\nservice = "ho-tich"\nname_vi = "X"\n', encoding="utf-8")
    cat = load_catalog(bad, ids)
    assert cat.source == str(DEFAULT) and "missing required field" in cat.problems[0]
    assert "procedures[0]" in cat.problems[0] and "bundled catalog" in cat.problems[0]
    bad.write_text("procedures = [", encoding="utf-8")
    assert "not valid TOML" in load_catalog(bad, ids).problems[0]
    assert "cannot read" in load_catalog(tmp_path / "missing.toml", ids).problems[0]
    # a procedure of an unknown service is skipped, the rest kept; decomposed text becomes NFC
    text = DEFAULT.read_text(encoding="utf-8").replace('service = "xay-dung"', 'service = "xay-dungg"')
    text = text.replace("Đăng ký khai sinh", "Đăng ký khai sinh".encode().decode().replace("ă", "a\u0306"))
    odd = tmp_path / "odd.toml"
    odd.write_text(text, encoding="utf-8")
    cat = parse_catalog(odd, ids)
    assert len(cat.problems) == 1 and "xay-dungg" in cat.problems[0]
    assert cat.for_service("xay-dung") == []
    assert cat.for_service("ho-tich")[0].name_vi == "Đăng ký khai sinh"


def qms(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "qms", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={"PATH": "/usr/bin:/bin", "SDL_VIDEODRIVER": "dummy",
                                                           "SDL_AUDIODRIVER": "dummy", "HOME": str(ROOT)})


def test_cli_runs_headless_and_checks_its_inputs(tmp_path):
    path = make_config(tmp_path, free_port())
    t0 = time.monotonic()
    r = qms("kiosk", "--config", str(path), "--headless", "--frames", "2")
    assert r.returncode == 0, r.stderr
    assert "kiosk ready: idle screen drawn" in r.stdout
    assert time.monotonic() - t0 < 30
    r = qms("kiosk", "--config", str(path), "--headless", "--device", "display-1")
    assert r.returncode == 2 and "not a kiosk or robot" in r.stderr
    r = qms("kiosk", "--config", str(path), "--headless", "--size", "big")
    assert r.returncode == 2 and "--size" in r.stderr
    r = qms("kiosk", "check-catalog", "--config", str(path))
    assert r.returncode == 0 and "procedures" in r.stdout
    r = qms("kiosk", "refill", "--config", str(path), "--device", "robot-1")
    assert r.returncode == 1 and "has kiosk 'robot-1' run" in r.stderr
