"""docs/protocol.md's copy-paste examples work as written, with mosquitto_pub: every answer
is the one the doc shows, and the doc's table of error codes is exactly the set of codes
the service can answer with."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.mqtt import Recorder

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"
SITE = "phuong-an-khanh"
# codes no demo service shows at any hour, and where they are tested instead
TESTED_ELSEWHERE = {"closed_day": "test_queue_core.py", "not_open": "test_queue_core.py",
                    "past_cutoff": "test_queue_core.py", "daily_cap": "test_queue_core.py",
                    "internal_error": "test_exactly_once.py"}


def examples(doc: str) -> list[tuple[str, dict]]:
    """(mosquitto_pub command, the answer shown after it) in the order of the doc."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", doc, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        for i, ln in enumerate(lines):
            if ln.strip().startswith("mosquitto_pub"):
                nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
                assert nxt.startswith("# → "), f"no answer shown after {ln[:80]}"
                out.append((ln.strip(), json.loads(nxt[4:])))
    return out


def subset(shown, real) -> bool:
    if isinstance(shown, dict):
        return isinstance(real, dict) and all(k in real and subset(v, real[k]) for k, v in shown.items())
    return shown == real


def codes_in_code() -> set[str]:
    text = (ROOT / "qms" / "core" / "refusals.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'Refused\(\s*"([a-z_]+)"', text))
    for f in [*(ROOT / "qms" / "core").glob("*.py"), *(ROOT / "qms" / "service").glob("*.py")]:
        codes |= {f"unknown_{w}" for w in re.findall(r'R\.unknown\(\s*"([a-z]+)"', f.read_text(encoding="utf-8"))}
    return codes


def codes_in_doc(doc: str) -> set[str]:
    table = doc.split("Error codes (`ok: false`)")[1].split("\n\n")[1]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M)) - {"error"}     # minus the header


def test_the_doc_lists_exactly_the_error_codes_the_service_uses():
    doc = DOC.read_text(encoding="utf-8")
    assert codes_in_doc(doc) == codes_in_code()
    shown = {ack.get("error") for _, ack in examples(doc)} - {None}
    assert shown | set(TESTED_ELSEWHERE) == codes_in_code()
    for code, test_file in TESTED_ELSEWHERE.items():
        assert f'"{code}"' in (ROOT / "tests" / test_file).read_text(encoding="utf-8")


def test_doc_examples_answer_as_shown(service, broker):
    if not shutil.which("mosquitto_pub"):
        pytest.fail("mosquitto-clients missing: run scripts/setup.sh")
    rec = Recorder(broker.port, f"qms/v1/{SITE}/ack/#", client_id="doc-reader")
    try:
        for cmd, shown in examples(DOC.read_text(encoding="utf-8")):
            subprocess.run(cmd.replace("-h 127.0.0.1", f"-h 127.0.0.1 -p {broker.port}"), shell=True, check=True)
            assert rec.wait_for(lambda i=shown["id"]: any(a.get("id") == i for a in rec.json(f"qms/v1/{SITE}/ack/"))), cmd
            real = next(a for a in rec.json(f"qms/v1/{SITE}/ack/") if a.get("id") == shown["id"])
            assert subset(shown, real), (shown, real)
            if not real["ok"]:
                assert real["message_vi"] and real["message_en"]
    finally:
        rec.close()
