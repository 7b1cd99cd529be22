"""Speech for the kiosk: "read aloud" of procedures and the robot's greeting.

The kiosk needs only `Speaker.say(text)` (returns at once; speech happens on a worker
thread, a new text replaces what is still queued) and `busy()`. The hall display's
voice engine (display/, voice branch) can be plugged in behind the same two methods.
Until then: `EspeakSpeaker` synthesizes with the espeak-ng CLI (Vietnamese voice) to a
WAV and plays it with pygame.mixer (pyttsx3's `say()` shells out to aplay and blocks);
`SilentSpeaker` only records what it was asked to say (no sound card, or tests).
"""
from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import unicodedata
from pathlib import Path
from typing import Protocol

log = logging.getLogger("qms.kiosk.voice")


class Speaker(Protocol):
    def say(self, text: str, lang: str = "vi") -> None: ...
    def busy(self) -> bool: ...
    def close(self) -> None: ...


class SilentSpeaker:
    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, text: str, lang: str = "vi") -> None:
        self.said.append(unicodedata.normalize("NFC", text))

    def busy(self) -> bool:
        return False

    def close(self) -> None:
        pass


class EspeakSpeaker:
    def __init__(self, voice: str = "vi", rate: int = 140, workdir: str | Path | None = None,
                 play: bool = True, timeout_s: float = 20.0):
        self.exe = shutil.which("espeak-ng")
        if not self.exe:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.voice, self.rate, self.play, self.timeout_s = voice, rate, play, timeout_s
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="qms-voice-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.said: list[str] = []
        self.wavs: list[Path] = []
        self._q: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._speaking = threading.Event()
        self._n = 0
        self._thread = threading.Thread(target=self._run, name="kiosk-voice", daemon=True)
        self._thread.start()

    def say(self, text: str, lang: str = "vi") -> None:
        while True:                             # the newest request replaces queued ones
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._speaking.set()
        self._q.put((unicodedata.normalize("NFC", text), lang))

    def busy(self) -> bool:
        return self._speaking.is_set()

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(2)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            try:
                self._speak(*item)
            except Exception:  # noqa: BLE001 - a voice fault must never stop the kiosk
                log.exception("speech failed")
            finally:
                if self._q.empty():
                    self._speaking.clear()

    def _speak(self, text: str, lang: str) -> None:
        self._n += 1
        wav = self.dir / f"say-{self._n % 8}.wav"
        voice = "en" if lang == "en" else self.voice
        subprocess.run([self.exe, "-v", voice, "-s", str(self.rate), "-w", str(wav), text],
                       check=True, timeout=self.timeout_s, capture_output=True)
        self.said.append(text)
        self.wavs.append(wav)
        if self.play:
            self._play(wav)

    def _play(self, wav: Path) -> None:
        import pygame
        if not pygame.mixer.get_init():
            try:
                pygame.mixer.init()
            except pygame.error as e:
                log.warning("no audio output (%s): speech is not played", e)
                self.play = False
                return
        sound = pygame.mixer.Sound(str(wav))
        channel = sound.play()
        deadline = time.monotonic() + sound.get_length() + 1.0
        while channel is not None and channel.get_busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._q.qsize():                     # a newer text is waiting: cut this one short
            sound.stop()


def make_speaker(enabled: bool, workdir: Path | None = None) -> Speaker:
    if not enabled:
        return SilentSpeaker()
    try:
        return EspeakSpeaker(workdir=workdir)
    except RuntimeError as e:
        log.warning("%s; the kiosk stays silent", e)
        return SilentSpeaker()
