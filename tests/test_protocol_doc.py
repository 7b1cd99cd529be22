"""docs/protocol.md's copy-paste examples work as written, with mosquitto_pub/sub."""
import json
import queue
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from support.wait import wait_until

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _commands(doc: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", doc, re.S)
    cmds = []
    for b in blocks:
        b = b.replace("\\\n", " ")
        cmds += [ln.strip() for ln in b.splitlines() if ln.strip().startswith("mosquitto_pub")]
    return cmds


MARKER = '{"marker": true}'


class Subscriber:
    """mosquitto_sub on one topic, its lines read on a thread. Ready once a marker published
    on the same topic came back: from then on nothing published there is missed."""

    def __init__(self, port: int, topic: str):
        self.port, self.topic = port, topic
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5",
                                      "-t", topic], stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True).start()
        wait_until(self._marker_back, 10, what=f"mosquitto_sub to be subscribed to {topic}", every=0)

    def _marker_back(self) -> bool:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-V", "mqttv5",
                        "-t", self.topic, "-m", MARKER], check=True)
        try:
            while True:
                if self.lines.get(timeout=0.2).strip() == MARKER:
                    return True
        except queue.Empty:
            return False

    def next_message(self, timeout: float = 15) -> dict:
        """The first message after the markers."""
        while True:
            line = self.lines.get(timeout=timeout).strip()
            if line != MARKER:
                return json.loads(line)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def test_doc_examples_take_a_ticket_and_call_it(service, broker):
    if not shutil.which("mosquitto_pub"):
        pytest.fail("mosquitto-clients missing: run scripts/setup.sh")
    cmds = _commands(DOC.read_text(encoding="utf-8"))
    assert len(cmds) == 2
    answers = []
    for cmd, dev in zip(cmds, ["kiosk-1", "counter-3"]):
        sub = Subscriber(broker.port, f"qms/v1/phuong-an-khanh/ack/{dev}")
        try:
            subprocess.run(cmd.replace("-h 127.0.0.1", f"-h 127.0.0.1 -p {broker.port}"), shell=True, check=True)
            answers.append(sub.next_message())
        finally:
            sub.close()
    ticket, call = answers
    assert ticket["ok"] and ticket["result"]["ticket"]["number"] == 2001
    assert call["ok"] and call["result"]["counter"] == 3
    assert call["result"]["ticket"]["number"] == 2001 and call["result"]["ticket"]["state"] == "called"
