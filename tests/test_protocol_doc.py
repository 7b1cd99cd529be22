"""docs/protocol.md's copy-paste examples work as written, with mosquitto_pub/sub."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _commands(doc: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", doc, re.S)
    cmds = []
    for b in blocks:
        b = b.replace("\\\n", " ")
        cmds += [ln.strip() for ln in b.splitlines() if ln.strip().startswith("mosquitto_pub")]
    return cmds


def test_doc_examples_take_a_ticket_and_call_it(service, broker):
    if not shutil.which("mosquitto_pub"):
        pytest.fail("mosquitto-clients missing: run scripts/setup.sh")
    cmds = _commands(DOC.read_text(encoding="utf-8"))
    assert len(cmds) == 2
    answers = []
    for cmd, dev in zip(cmds, ["kiosk-1", "counter-3"]):
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5",
                                "-C", "1", "-W", "10", "-t", f"qms/v1/phuong-an-khanh/ack/{dev}"],
                               stdout=subprocess.PIPE, text=True)
        import time
        time.sleep(0.3)
        subprocess.run(cmd.replace("-h 127.0.0.1", f"-h 127.0.0.1 -p {broker.port}"), shell=True, check=True)
        out, _ = sub.communicate(timeout=15)
        answers.append(json.loads(out))
    ticket, call = answers
    assert ticket["ok"] and ticket["result"]["ticket"]["number"] == 2001
    assert call["ok"] and call["result"]["counter"] == 3
    assert call["result"]["ticket"]["number"] == 2001 and call["result"]["ticket"]["state"] == "called"
