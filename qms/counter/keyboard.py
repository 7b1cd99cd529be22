"""Keys from a terminal (staff PCs without buttons, the demo): one character per key,
without Enter, read on a thread and handed to the terminal's main loop."""
from __future__ import annotations

import os
import sys
import termios
import threading
import tty
from collections.abc import Callable


class KeyboardReader:
    def __init__(self, post: Callable[[str], None], stream=None):
        self.post = post
        self.stream = stream or sys.stdin
        self._saved = None
        self._thread: threading.Thread | None = None

    def start(self) -> KeyboardReader:
        fd = self.stream.fileno()
        if os.isatty(fd):
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)            # keys arrive one by one; Ctrl-C still works
        self._thread = threading.Thread(target=self._run, args=(fd,), name="keyboard", daemon=True)
        self._thread.start()
        return self

    def _run(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 64)
            except OSError:
                data = b""
            if not data:                 # end of input (a pipe closed): quit
                self.post("q")
                return
            for ch in data.decode("utf-8", errors="replace"):
                self.post(ch)

    def stop(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None
