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


# ---------------------------------------------------------------- qms city (the central tier)
def city(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os
    base = {k: v for k, v in os.environ.items() if not k.startswith("QMS_CITY_")}
    return subprocess.run([sys.executable, "-m", "qms", "city", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**base, **(env or {})})


def test_qms_city_runs_the_central_tiers_commands(pg_cluster, tmp_path):
    """`qms city` and `python -m qms.city` are the same commands; the DSN from the
    environment or given before or after the command."""
    dsn = pg_cluster.create_database("cli_city")
    assert city("--dsn", dsn, "init").returncode == 0
    out = city("add-site", "--dsn", dsn, "--site", "an-khanh-2", "--center", "Phường An Khánh")
    assert out.returncode == 0 and len(out.stdout.strip()) >= 40, out.stderr      # the token
    out = city("sites", env={"QMS_CITY_DSN": dsn})
    assert out.returncode == 0 and out.stdout.startswith("Phường An Khánh\tan-khanh-2\t0\t-"), out.stdout
    out = subprocess.run([sys.executable, "-m", "qms.city", "--dsn", dsn, "sites"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "an-khanh-2" in out.stdout
    pw = tmp_path / "pw"
    pw.write_text("secret\n")                 # read and passed on (the test cluster trusts anyway)
    assert city("--dsn", dsn, "--password-file", str(pw), "sites").returncode == 0
    out = city("--dsn", dsn, "--password-file", str(tmp_path / "missing"), "sites")
    assert out.returncode == 2 and "cannot read the password file" in out.stderr
    # a point whose config names another center than it was registered with: said
    import psycopg
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE city_sites SET config = %s WHERE site = 'an-khanh-2'",
                     ('[site]\nid = "an-khanh-2"\nname = "Điểm 2"\ncenter = "Phường An Khánh mới"\n',))
    out = city("--dsn", dsn, "sites")
    assert out.returncode == 0 and "warning: an-khanh-2 is registered with center 'Phường An Khánh' but its " \
        "config says 'Phường An Khánh mới'" in out.stderr, out.stderr


def test_qms_city_says_what_is_wrong_in_one_line(pg_cluster, tmp_path):
    from support.site import free_port
    cases = [
        ((), "error: no database: give --dsn"),
        (("--dsn", f"postgresql://qms:hunter2@127.0.0.1:{free_port()}/city"), "error: cannot reach the database"),
        (("--dsn", pg_cluster.create_database("cli_no_schema")), "has no city schema: run `qms city init` first"),
        (("--dsn", "nonsense=1"), "error: the DSN cannot be used"),
    ]
    for args, message in cases:
        out = city(*args, "sites")
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and "hunter2" not in out.stderr
    dsn = pg_cluster.create_database("cli_dates")
    assert city("--dsn", dsn, "init").returncode == 0
    city("--dsn", dsn, "add-site", "--site", "a", "--center", "C")
    out = city("--dsn", dsn, "report", "--center", "C", "--from", "2026-13-01")
    assert out.returncode == 2 and "dates are YYYY-MM-DD" in out.stderr, out.stderr
    out = city("--dsn", dsn, "add-site", "--site", "a", "--center", "C")
    assert out.returncode == 2 and "already registered" in out.stderr
