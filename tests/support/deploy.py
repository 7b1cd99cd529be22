"""A throw-away root for the installer: what `systemd-analyze --root` and `systemctl --root` need."""
from __future__ import annotations

import shutil
from pathlib import Path

HOST_UNITS = Path("/usr/lib/systemd/system")


def make_root(tmp: Path) -> Path:
    """A root that `systemd-analyze --root` and `systemctl --root` accept: the host's unit
    library and an /etc with just root and the mosquitto group."""
    root = tmp / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc"
    (etc / "systemd/system").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nmosquitto:x:120:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nmosquitto:!::\n")
    return root
