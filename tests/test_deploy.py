"""systemd units and the installer, checked by systemd's own tools in a throw-away root."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest
from support.deploy import make_root

from qms.cli import main as cli
from qms.config.site import load_config
from qms.ops.install import ROLES, UNITS

HOST_UNITS = Path("/usr/lib/systemd/system")
EXEC = re.compile(r"^Exec\w+=[-@:+!]*(/\S+)", re.M)
EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "ward-example.toml"



def stub_executables(root: Path) -> None:
    """verify checks that every Exec*= program exists: give it stubs inside the root."""
    texts = [p.read_text() for p in (root / "etc/systemd/system").glob("*.service")]
    texts.append((root / "usr/lib/systemd/system/mosquitto.service").read_text())
    for path in {p for t in texts for p in EXEC.findall(t)}:
        stub = root / path.lstrip("/")
        if not stub.exists():
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)


def verify(root: Path, unit: str) -> str:
    """systemd-analyze verify: '' when the unit and its drop-ins are clean."""
    # --man=no: the units are checked, not whether this machine has man pages (minbase has none)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", unit],
                          capture_output=True, text=True, timeout=60)
    return (proc.stdout + proc.stderr).strip() or ("" if proc.returncode == 0 else f"rc {proc.returncode}")


def copy_units(root: Path) -> None:
    dest = root / "etc/systemd/system"
    for p in UNITS.iterdir():
        if p.name.endswith(".service"):
            shutil.copy(p, dest / p.name)
        elif p.name.endswith(".service.d"):
            shutil.copytree(p, dest / p.name)


@pytest.fixture
def root(tmp_path):
    if not (HOST_UNITS / "mosquitto.service").exists():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (apt-get install mosquitto)")
    return make_root(tmp_path)


@pytest.mark.parametrize("unit", [f"qms-{r}.service" for r in ROLES] + ["mosquitto.service"])
def test_unit_passes_systemd_analyze_verify(root, unit):
    copy_units(root)
    stub_executables(root)
    assert verify(root, unit) == ""


def test_verify_reports_a_bad_setting_in_the_shared_drop_in(root):
    """The shared qms-.service.d drop-in is really read for every role (else this passes)."""
    copy_units(root)
    stub_executables(root)
    dropin = root / "etc/systemd/system/qms-.service.d/10-qms-common.conf"
    dropin.write_text(dropin.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    assert "Unknown key 'ProtectSytem'" in verify(root, "qms-counter.service")


def test_units_run_qms_subcommands_with_notify_and_watchdog():
    common = (UNITS / "qms-.service.d/10-qms-common.conf").read_text()
    assert re.search(r"^Wants=.*time-sync.target", common, re.M)
    for key in ("Type=notify", "WatchdogSec=", "Restart=always", "RestartSec=", "User=qms",
                "ProtectSystem=strict", "ReadWritePaths=/var/lib/qms", "NoNewPrivileges=yes",
                "PrivateTmp=yes", "ProtectHome=yes", "After=network-online.target",
                "mosquitto.service", "StandardOutput=journal"):
        assert key in common, key
    for role in ROLES:
        text = (UNITS / f"qms-{role}.service").read_text()
        sub = re.search(r"^ExecStart=\S+/qms (\S+)", text, re.M).group(1)
        assert sub == role and sub in cli.SUBCOMMANDS
        assert f"EnvironmentFile=/etc/qms/{role}.env" in text
        assert (UNITS / "env" / f"{role}.env").exists()


# ---------------------------------------------------------------- installer


@pytest.fixture
def secrets(tmp_path):
    out = tmp_path / "secrets"
    assert cli.main(["provision", str(EXAMPLE), str(out), "--tls", "--tls-host", "qms.local"]) == 0
    return out


def install(root: Path, *args: str) -> int:
    import sys
    return cli.main(["install", "--root", str(root), "--venv", str(Path(sys.executable).parent.parent),
                     *args])


def test_install_kiosk_then_again_then_uninstall(root, secrets, capsys):
    etc = root / "etc"
    assert install(root, "--role", "kiosk", "--config", str(EXAMPLE), "--device", "robot-1",
                   "--secrets", str(secrets)) == 0
    first = capsys.readouterr().out
    # user, groups, dirs, secrets
    assert re.search(r"^qms:x:\d+:\d+::/var/lib/qms:/usr/sbin/nologin$", (etc / "passwd").read_text(), re.M)
    for g in ("qms", "video", "render", "input", "dialout", "lp", "gpio", "audio"):
        assert re.search(rf"^{g}:", (etc / "group").read_text(), re.M), g
    # the example's state_dir = "../var" would be /etc/var, read-only for the unit
    installed = (etc / "qms/site.toml").read_text()
    others = lambda text: [ln for ln in text.splitlines() if not ln.startswith("state_dir")]
    assert others(installed) == others(EXAMPLE.read_text())
    assert load_config(etc / "qms/site.toml").state_dir_path() == Path("/var/lib/qms")
    assert (etc / "qms/kiosk.password").read_bytes() == (secrets / "devices/robot-1.password").read_bytes()
    assert (etc / "qms/kiosk.password").stat().st_mode & 0o777 == 0o640
    assert (etc / "qms/tls/device.key").exists() and (etc / "qms/tls/ca.crt").exists()
    env = (etc / "qms/kiosk.env").read_text()
    assert "QMS_DEVICE=robot-1" in env and "QMS_ARGS=--robot" in env and "GPIOZERO_PIN_FACTORY=lgpio" in env
    assert re.search(r"^QMS_MQTT_PASSWORD_FILE=/etc/qms/kiosk.password$", env, re.M)
    assert (root / "var/lib/qms").is_dir()
    # the unit is installed, enabled by systemctl itself, and verifies
    wants = etc / "systemd/system/multi-user.target.wants/qms-kiosk.service"
    assert wants.is_symlink()
    # the units wait for NTP (a Pi has no RTC), for a bounded time
    assert (etc / "systemd/system/sysinit.target.wants/systemd-time-wait-sync.service").is_symlink()
    assert "TimeoutStartSec=60s" in (etc / "systemd/system/systemd-time-wait-sync.service.d/qms.conf").read_text()
    # USB printers through libusb: group lp, e.g. the common 0416:5011
    rules = (etc / "udev/rules.d/60-qms-usb-printers.rules").read_text()
    assert re.search(r'ATTR\{idVendor\}=="0416", ATTR\{idProduct\}=="5011", MODE="0660", GROUP="lp"', rules)
    stub_executables(root)
    assert verify(root, "qms-kiosk.service") == ""
    assert "do  " in first

    # again: nothing to do; an admin's edit of the env file survives
    (etc / "qms/kiosk.env").write_text(env + "SDL_VIDEODRIVER=x11\n")
    assert install(root, "--role", "kiosk", "--config", str(EXAMPLE), "--device", "robot-1",
                   "--secrets", str(secrets)) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert "x11" in (etc / "qms/kiosk.env").read_text()

    # uninstall keeps data and secrets; --purge removes them and the user
    assert cli.main(["uninstall", "--root", str(root)]) == 0
    assert not wants.exists() and not (etc / "systemd/system/qms-kiosk.service").exists()
    assert not os.path.lexists(etc / "systemd/system/sysinit.target.wants/systemd-time-wait-sync.service")
    assert not (etc / "udev/rules.d/60-qms-usb-printers.rules").exists()
    assert (etc / "qms/site.toml").exists() and (root / "var/lib/qms").is_dir()
    assert cli.main(["uninstall", "--root", str(root), "--role", "kiosk"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert cli.main(["uninstall", "--root", str(root), "--role", "kiosk", "--purge"]) == 0
    assert not (etc / "qms").exists() and not (root / "var/lib/qms").exists()
    assert "qms:" not in (etc / "passwd").read_text()


def test_install_service_brings_the_broker_files(root, secrets):
    assert install(root, "--role", "service", "--config", str(EXAMPLE), "--secrets", str(secrets)) == 0
    etc = root / "etc"
    assert (etc / "mosquitto/conf.d/qms.conf").read_bytes() == (secrets / "mosquitto/qms.conf").read_bytes()
    acl = etc / "mosquitto/qms/acl"
    assert acl.exists() and acl.stat().st_gid == 120 and acl.stat().st_mode & 0o777 == 0o640
    assert (etc / "mosquitto/qms/tls/server.key").exists()
    assert not (etc / "mosquitto/qms/tls/ca.key").exists()       # the CA key stays offline
    assert (etc / "systemd/system/mosquitto.service.d/qms.conf").exists()
    stub_executables(root)
    assert verify(root, "qms-service.service") == "" and verify(root, "mosquitto.service") == ""


def test_install_web_beside_the_service_keeps_both_secrets(root, secrets, capsys):
    """`qms web` runs on the service machine with its own MQTT user and password."""
    assert install(root, "--role", "service", "--config", str(EXAMPLE), "--secrets", str(secrets)) == 0
    assert install(root, "--role", "web", "--config", str(EXAMPLE), "--secrets", str(secrets)) == 0
    etc = root / "etc"
    assert (etc / "qms/mqtt.password").read_bytes() == (secrets / "devices/service.password").read_bytes()
    assert (etc / "qms/web.password").read_bytes() == (secrets / "devices/web.password").read_bytes()
    assert (etc / "qms/tls/device.crt").read_bytes() == (secrets / "tls/devices/service.crt").read_bytes()
    env = (etc / "qms/web.env").read_text()
    assert "QMS_MQTT_PASSWORD_FILE=/etc/qms/web.password" in env and "QMS_DEVICE=web" in env
    assert (etc / "systemd/system/multi-user.target.wants/qms-web.service").is_symlink()
    stub_executables(root)
    assert verify(root, "qms-web.service") == ""
    capsys.readouterr()
    # both again: nothing changes, the service's files are not swapped for the web's
    for role in ("service", "web"):
        assert install(root, "--role", role, "--config", str(EXAMPLE), "--secrets", str(secrets)) == 0
        assert "nothing to do" in capsys.readouterr().out
    assert install(root, "--role", "web", "--config", str(EXAMPLE), "--device", "kiosk-1") == 1
    assert "device_id" in capsys.readouterr().err


def test_web_uses_the_password_file_its_unit_names(tmp_path, monkeypatch):
    from qms.config.site import load_config
    from qms.mqtt.client import read_password
    shared, own = tmp_path / "mqtt.password", tmp_path / "web.password"
    shared.write_text("the service's\n")
    own.write_text("the web's\n")
    mqtt = msgspec.structs.replace(load_config(EXAMPLE).mqtt, password_file=str(shared))
    assert read_password(mqtt) == "the service's"
    monkeypatch.setenv("QMS_MQTT_PASSWORD_FILE", str(own))
    assert read_password(mqtt) == "the web's"


def test_dry_run_changes_nothing(root, secrets, capsys):
    before = sorted(p for p in root.rglob("*"))
    assert install(root, "--role", "display", "--config", str(EXAMPLE), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would  system user qms" in out and "would  enable qms-display.service" in out
    assert sorted(p for p in root.rglob("*")) == before


def test_install_refuses_unclear_input_with_a_message(root, capsys):
    assert install(root, "--role", "counter", "--config", str(EXAMPLE)) == 1
    assert "6 counter devices" in capsys.readouterr().err          # which one? say --device
    assert install(root, "--role", "counter", "--config", str(EXAMPLE), "--device", "kiosk-1") == 1
    assert "is not a counter" in capsys.readouterr().err
    assert install(root, "--role", "display", "--config", str(root / "missing.toml")) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("text, kept", [
    ('[site]\nid = "a"\n', False),                                   # no [paths]: added
    ('[paths]\nstate_dir = "../var"\n\n[web]\nport = 1\n', False),   # relative: replaced
    ('[paths] # where\n\n[web]\nport = 1\n', False),                 # [paths] without the key
    ('[paths]\nstate_dir = "/var/lib/qms/point-2"\n', True),          # already writable: kept
])
def test_installed_config_gets_the_units_state_dir(tmp_path, text, kept):
    import tomllib

    from qms.ops.install import installed_config
    src = tmp_path / "site.toml"
    src.write_text(text)
    out = installed_config(src).decode()
    state = tomllib.loads(out)["paths"]["state_dir"]
    assert (out == text) if kept else (state == "/var/lib/qms")
    assert tomllib.loads(out).get("web") == tomllib.loads(text).get("web")


def test_installed_config_it_cannot_rewrite_is_refused_with_a_message(tmp_path):
    from qms.ops.install import InstallError, installed_config
    src = tmp_path / "site.toml"
    src.write_text('paths = { state_dir = "var" }\n')
    with pytest.raises(InstallError, match=r'set it by hand'):
        installed_config(src)


def test_config_check_refuses_an_installed_state_dir_the_units_cannot_write(monkeypatch, tmp_path, capsys):
    import qms.config.site as site
    etc = tmp_path / "etc/qms"
    etc.mkdir(parents=True)
    monkeypatch.setattr(site, "INSTALLED_CONFIG_DIR", etc)
    (etc / "site.toml").write_text(EXAMPLE.read_text())                  # state_dir = "../var"
    assert cli.main(["config", "check", str(etc / "site.toml")]) == 1
    assert "outside /var/lib/qms" in capsys.readouterr().err
    (etc / "site.toml").write_text(EXAMPLE.read_text().replace('"../var"', '"/var/lib/qms"'))
    assert cli.main(["config", "check", str(etc / "site.toml")]) == 0
    assert "state directory /var/lib/qms" in capsys.readouterr().out


def test_each_role_gets_its_extras(monkeypatch):
    """lgpio (the `pi` extra) for the GPIO roles where it can be had, matplotlib (`reports`)
    for the service machine, nothing extra for the display, the web or the uplink (the
    standard library's http.client), the `city` extra for the central server."""
    import platform

    from qms.ops import install as inst
    monkeypatch.setattr(inst, "on_a_pi", lambda: True)
    assert {r: inst.role_extras(r) for r in ROLES} == {
        "service": ["reports"], "kiosk": ["pi"], "counter": ["pi"], "display": [], "web": [],
        "uplink": [], "city": ["city"]}
    monkeypatch.setattr(inst, "on_a_pi", lambda: False)
    assert inst.role_extras("counter") == []
    monkeypatch.undo()
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert inst.on_a_pi()
    import tomllib
    extras = tomllib.loads((UNITS.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, module in inst.EXTRA_MODULE.items():
        assert any(dep.startswith(module) for dep in extras[extra]), extra
    deps = tomllib.loads((UNITS.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(d.startswith(("pytest", "matplotlib", "lgpio")) for d in deps)


def test_dry_run_lists_the_roles_extra(root, capsys):
    assert install(root, "--role", "service", "--config", str(EXAMPLE), "--dry-run") == 0
    assert "the `reports` extra (matplotlib)" in capsys.readouterr().out


def test_gpio_roles_off_a_pi_do_not_ask_for_lgpio(monkeypatch):
    """No `pi` extra off a Pi, so no GPIOZERO_PIN_FACTORY=lgpio either: the counter would
    restart forever on "No module named 'lgpio'"."""
    from qms.ops import install as inst
    on_pi = inst.env_text("counter", "counter-1", False, pi=True).decode()
    off_pi = inst.env_text("counter", "counter-1", False, pi=False).decode()
    assert re.search(r"^GPIOZERO_PIN_FACTORY=lgpio$", on_pi, re.M)
    assert not re.search(r"^GPIOZERO_PIN_FACTORY=", off_pi, re.M) and "#GPIOZERO_PIN_FACTORY=lgpio" in off_pi


def test_roles_on_one_machine_keep_their_own_passwords(root, secrets):
    """A small point runs the service, the web and the display on one Pi: each role's env
    file names its own password file, none overwrites another's."""
    for role, device in (("service", "service"), ("web", "web"), ("display", "display-1"),
                         ("counter", "counter-1")):
        assert install(root, "--role", role, "--config", str(EXAMPLE), "--secrets", str(secrets),
                       "--device", device) == 0
    etc = root / "etc/qms"
    for role, device, name in (("service", "service", "mqtt"), ("web", "web", "web"),
                               ("display", "display-1", "display"), ("counter", "counter-1", "counter")):
        assert (etc / f"{name}.password").read_bytes() == (secrets / f"devices/{device}.password").read_bytes()
        if role != "service":
            assert f"\nQMS_MQTT_PASSWORD_FILE=/etc/qms/{name}.password\n" in (etc / f"{role}.env").read_text()


def test_without_secrets_the_env_file_names_no_password_file(root):
    assert install(root, "--role", "display", "--config", str(EXAMPLE)) == 0
    env = (root / "etc/qms/display.env").read_text()
    assert not re.search(r"^QMS_MQTT_PASSWORD_FILE=", env, re.M)


# ---------------------------------------------------------------- the city roles


def test_install_uplink_on_a_point(root, tmp_path, capsys):
    """A point joins the city: its config, the center's URL and its token (a secret like the
    MQTT passwords: root:qms 0640), the unit enabled and clean for systemd."""
    token = tmp_path / "token"
    token.write_text("  s3cr3t-token-of-the-point \n")
    ca = tmp_path / "city-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert install(root, "--role", "uplink", "--config", str(EXAMPLE), "--center", "https://city.example.vn",
                   "--token-file", str(token), "--center-ca", str(ca)) == 0
    out = capsys.readouterr().out
    assert "qms install --role uplink (site phuong-an-khanh)" in out
    etc = root / "etc"
    assert (etc / "qms/uplink.token").read_text() == "s3cr3t-token-of-the-point\n"
    assert (etc / "qms/uplink.token").stat().st_mode & 0o777 == 0o640
    assert (etc / "qms/tls/city-ca.crt").read_bytes() == ca.read_bytes()
    env = (etc / "qms/uplink.env").read_text()
    assert re.search(r"^QMS_CITY_URL=https://city.example.vn$", env, re.M)
    assert re.search(r"^QMS_UPLINK_TOKEN_FILE=/etc/qms/uplink.token$", env, re.M)
    assert re.search(r"^QMS_ARGS=--ca /etc/qms/tls/city-ca.crt$", env, re.M)
    assert "@" not in env.replace("\n#", "")
    assert load_config(etc / "qms/site.toml").state_dir_path() == Path("/var/lib/qms")   # its log is there
    assert (etc / "systemd/system/multi-user.target.wants/qms-uplink.service").is_symlink()
    stub_executables(root)
    assert verify(root, "qms-uplink.service") == ""
    # again: nothing to do; a new token replaces the old one, the env file stays the admin's
    assert install(root, "--role", "uplink", "--config", str(EXAMPLE), "--center", "https://city.example.vn",
                   "--token-file", str(token), "--center-ca", str(ca)) == 0
    assert "nothing to do" in capsys.readouterr().out
    token.write_text("rotated\n")
    assert install(root, "--role", "uplink", "--token-file", str(token)) == 0
    assert (etc / "qms/uplink.token").read_text() == "rotated\n"
    assert cli.main(["uninstall", "--root", str(root), "--role", "uplink"]) == 0
    assert not (etc / "systemd/system/qms-uplink.service").exists()
    assert (etc / "qms/uplink.token").exists()          # secrets kept without --purge


def test_install_city_on_the_central_server(root, tmp_path, capsys):
    """The central tier needs no site config: a DSN, the database password (root:qms 0640),
    where to listen, its certificate."""
    pw = tmp_path / "pw"
    pw.write_text("db-password\n")
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    cert.write_text("CERT\n"); key.write_text("KEY\n")
    assert install(root, "--role", "city", "--dsn", "postgresql://qms@db.example.vn/city", "--db-password-file",
                   str(pw), "--bind", "0.0.0.0", "--port", "8443", "--tls-cert", str(cert), "--tls-key", str(key)) == 0
    etc = root / "etc"
    assert not (etc / "qms/site.toml").exists()
    assert (etc / "qms/city.password").read_text() == "db-password\n"
    assert (etc / "qms/city.password").stat().st_mode & 0o777 == 0o640
    assert (etc / "qms/tls/city.key").stat().st_mode & 0o777 == 0o640
    env = (etc / "qms/city.env").read_text()
    assert re.search(r"^QMS_CITY_DSN=postgresql://qms@db.example.vn/city$", env, re.M)
    assert re.search(r"^QMS_CITY_PASSWORD_FILE=/etc/qms/city.password$", env, re.M)
    assert re.search(r"^QMS_ARGS=--host 0.0.0.0 --port 8443 --ssl-certfile /etc/qms/tls/city.crt "
                     r"--ssl-keyfile /etc/qms/tls/city.key$", env, re.M)
    unit = (etc / "systemd/system/qms-city.service").read_text()
    assert re.search(r"^ExecStart=\S+/qms city serve \$QMS_ARGS$", unit, re.M)
    assert (etc / "systemd/system/multi-user.target.wants/qms-city.service").is_symlink()
    stub_executables(root)
    assert verify(root, "qms-city.service") == ""
    capsys.readouterr()
    assert install(root, "--role", "city", "--dsn", "postgresql://qms@db.example.vn/city", "--db-password-file",
                   str(pw), "--bind", "0.0.0.0", "--port", "8443", "--tls-cert", str(cert), "--tls-key", str(key)) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_city_with_peer_authentication_names_no_password_file(root):
    assert install(root, "--role", "city", "--dsn", "postgresql:///city?host=/var/run/postgresql") == 0
    env = (root / "etc/qms/city.env").read_text()
    assert not re.search(r"^QMS_CITY_PASSWORD_FILE=", env, re.M)
    assert re.search(r"^QMS_ARGS=--host 127.0.0.1 --port 8090$", env, re.M)


def test_city_roles_refuse_missing_input_with_a_message(root, tmp_path, capsys):
    assert install(root, "--role", "uplink", "--config", str(EXAMPLE), "--token-file", str(tmp_path / "t")) == 1
    assert "--center URL is needed" in capsys.readouterr().err
    assert install(root, "--role", "uplink", "--config", str(EXAMPLE), "--center", "city.example.vn",
                   "--token-file", str(tmp_path / "t")) == 1
    assert "give the URL" in capsys.readouterr().err
    assert install(root, "--role", "uplink", "--config", str(EXAMPLE), "--center", "https://city.example.vn") == 1
    assert "--token-file FILE is needed" in capsys.readouterr().err
    assert install(root, "--role", "uplink", "--config", str(EXAMPLE), "--center", "https://city.example.vn",
                   "--token-file", str(tmp_path / "t")) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "t").write_text("\n")
    assert install(root, "--role", "uplink", "--config", str(EXAMPLE), "--center", "https://city.example.vn",
                   "--token-file", str(tmp_path / "t")) == 1
    assert "is empty" in capsys.readouterr().err
    assert install(root, "--role", "city") == 1
    assert "--dsn is needed" in capsys.readouterr().err
    assert install(root, "--role", "city", "--dsn", "postgresql:///city", "--tls-cert", str(tmp_path / "t")) == 1
    assert "go together" in capsys.readouterr().err
    assert not (root / "etc/qms").exists()          # refused before anything changed
