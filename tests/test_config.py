"""The site config: the example is valid; every kind of mistake is named with key and file."""
from pathlib import Path

import pytest

from qms.cli.main import main
from qms.config.site import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "ward-example.toml"


def test_example_config_is_valid_and_realistic():
    cfg = load_config(EXAMPLE)
    assert len(cfg.counters) == 6
    names = {s.name_vi for s in cfg.services}
    assert "Đất đai" in names and "Xây dựng" in names and "Hộ kinh doanh" in names
    assert any(n.startswith("Chứng thực") for n in names)
    assert cfg.site.timezone == "Asia/Ho_Chi_Minh"
    assert [p.id for p in cfg.priority_classes][:3] == ["nguoi-cao-tuoi", "nguoi-khuyet-tat", "phu-nu-mang-thai"]


def _broken(old: str, new: str) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("old,new,expected", [
    ("cutoff_minutes = 15", "cutoff_minutes = 15\ncutof = 3", "unknown field `cutof`"),
    ("code = 3", 'code = "3"', "`services[2].code`"),
    ("code = 3", "code = 12", "`services[2].code`"),
    ("daily_cap = 60", "daily_cap = 0", "`services[2].daily_cap`"),
    ('timezone = "Asia/Ho_Chi_Minh"', 'timezone = "Asia/Hanoi_City"', "`site.timezone`"),
    ('open = "07:30"', 'open = "7h30"', "`hours.open`"),
    ('open = "07:30"', 'open = "18:00"', "`hours.open` must be before `hours.close`"),
    ('services = ["dat-dai", "xay-dung"]', 'services = ["dat-dai", "xay-dungg"]', "`counters[3].services[1]`"),
    ("number = 6", "number = 5", "duplicate counter number 5"),
    ("code = 9", "code = 1", "service code 1 used twice"),
    ("daily_cap = 400", "daily_cap = 950", "`services[0].daily_cap` = 950 does not fit"),
    ('priority_mode = "interleave"', 'priority_mode = "fair"', "`queue.priority_mode`"),
    ("counter = 6", "counter = 16", "unknown counter 16 at `devices[9].counter`"),
    ('id = "kiosk-1"', 'id = "Kiosk 1"', "`devices[1].id`"),
])
def test_bad_values_are_named_with_key_and_file(old, new, expected):
    with pytest.raises(ConfigError) as e:
        parse_config(_broken(old, new), "site.toml")
    assert str(e.value).startswith("site.toml: ")
    assert expected in str(e.value)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[site\n", "x.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_text_is_normalized_to_nfc():
    decomposed = "Chu\u031b\u0301ng thu\u031b\u0323c"     # "Chứng thực" in NFD
    cfg = parse_config(_broken('name_vi = "Đất đai"', f'name_vi = "{decomposed}"'), "x.toml")
    assert cfg.service("dat-dai").name_vi == "Chứng thực"


def test_cli_config_check(capsys, tmp_path):
    assert main(["config", "check", str(EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(_broken("code = 3", "code = 0"), encoding="utf-8")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "`services[2].code`" in err


def test_a_setting_no_longer_used_loads_with_a_warning(caplog):
    text = EXAMPLE.read_text(encoding="utf-8").replace("[queue]\n", "[queue]\nservice_time_alpha = 0.3\n", 1)
    assert "service_time_alpha" in text
    with caplog.at_level("WARNING", logger="qms.config"):
        parse_config(text, "site.toml")
    assert any("site.toml: queue.service_time_alpha is no longer used" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="qms.config"):
        load_config(EXAMPLE)
    assert not caplog.records
