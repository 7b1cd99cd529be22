"""`CallAnnouncer`: chime, then the call spoken `repeat` times, one announcement at a time.

Calls wait in a short queue and are spoken in order. A hall that calls faster than the
voice can speak must not fall minutes behind: past `max_pending` the oldest waiting
announcements are dropped, never the newest (the board still shows every call).
The chime starts as soon as a call is taken, and the phrase is synthesized while it rings.
With no audio output yet (the player retries until one appears) a call is not spoken and
says why in `Announcement.error`; the first call after the output appears is.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from qms.config.display import VoiceConfig
from qms.voice.chime import chime_wav
from qms.voice.packs import VoiceError, VoiceSource, call_tokens, sentence
from qms.voice.player import AudioUnavailable, Player, volume_at

log = logging.getLogger("qms.voice")


@dataclass
class Announcement:
    number: int
    counter: int
    recall: bool = False
    printed_number: int | None = None    # a renumbered ticket: the paper's number is said too
    text: str = ""                       # the phrase as spoken (for logs and tests)
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None      # first chime sample handed to the mixer
    spoken_at: float | None = None       # first phrase sample handed to the mixer
    finished_at: float | None = None
    dropped: bool = False
    error: str | None = None


class CallAnnouncer:
    def __init__(self, voice: VoiceSource, player: Player, cfg: VoiceConfig | None = None,
                 chime: bytes | None = None,
                 local_time: Callable[[], dt.time] = lambda: dt.datetime.now().time(),
                 on_event: Callable[[str, Announcement], None] | None = None,
                 history: int = 200):
        self.voice, self.player = voice, player
        self.cfg = cfg or VoiceConfig()
        self.local_time = local_time
        self.on_event = on_event
        self._chime_wav = chime
        self._sounds: tuple | None = None                # chime, pause, gap: once audio is there
        self._pending: deque[Announcement] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self.history: deque[Announcement] = deque(maxlen=history)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="announcer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ API
    def announce(self, number: int, counter: int, recall: bool = False,
                 printed_number: int | None = None) -> Announcement:
        a = Announcement(number, counter, recall, printed_number)
        with self._cv:
            self._pending.append(a)
            while len(self._pending) > self.cfg.max_pending:
                stale = self._pending.popleft()       # the newest is at the right: never dropped
                stale.dropped = True
                self.dropped += 1
                self.history.append(stale)
                log.warning("voice falls behind: dropped the call of %d to counter %d",
                            stale.number, stale.counter)
            self._cv.notify_all()
        return a

    def pending(self) -> int:
        with self._cv:
            return len(self._pending)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once nothing is waiting or playing (for tests, demos and the CLI)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self) -> None:
        with self._cv:
            self._stopping = True
            self._pending.clear()
            self._cv.notify_all()
        self._thread.join(5)
        self.player.stop()

    # ------------------------------------------------------------ worker
    _busy = False

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                a = self._pending.popleft()
                self._busy = True
            try:
                self._speak(a)
            except Exception as e:  # noqa: BLE001 - one bad call must not silence the hall
                a.error = str(e)
                log.exception("announcement of %d to counter %d failed", a.number, a.counter)
            finally:
                a.finished_at = time.monotonic()
                self.history.append(a)
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
                self._emit("finished", a)

    def _prepared(self) -> tuple:
        if self._sounds is None:
            p = self.player
            self._sounds = (p.sound(self._chime_wav or chime_wav(p.rate)),
                            p.silence(300),                  # after the chime
                            p.silence(self.cfg.gap_ms))      # between repeats
        return self._sounds

    def _speak(self, a: Announcement) -> None:
        volume = volume_at(self.cfg.volume_schedule, self.cfg.volume, self.local_time())
        try:
            chime, pause, gap = self._prepared()
        except AudioUnavailable as e:
            a.error = str(e)
            log.warning("call of %d to counter %d not spoken: %s", a.number, a.counter, e)
            return
        self.player.wait_idle()
        self.player.start(chime, volume)
        a.started_at = time.monotonic()
        self._emit("chime", a)
        digits = self.cfg.reading == "digits"
        tokens = call_tokens(a.number, a.counter, self.cfg.region, digits, a.printed_number)
        try:
            try:
                wav = self.voice.render(tokens)
            except VoiceError as e:
                if a.printed_number is None:
                    raise
                # a voice pack recorded before renumbered calls (no "vé in số" clip): the
                # call itself still goes out; the board shows the paper's number
                log.warning("call of %d said without its printed number %d: %s", a.number, a.printed_number, e)
                tokens = call_tokens(a.number, a.counter, self.cfg.region, digits)
                wav = self.voice.render(tokens)
            a.text = sentence(tokens)
            phrase = self.player.sound(wav)
        except VoiceError as e:
            a.error = str(e)
            log.error("cannot speak the call of %d: %s", a.number, e)
            self.player.wait_idle()
            return
        self.player.then(pause)
        for i in range(self.cfg.repeat):
            self.player.then(phrase)
            if i == 0:
                a.spoken_at = time.monotonic()
                self._emit("phrase", a)
            self.player.then(gap if i < self.cfg.repeat - 1 else pause)
        self.player.wait_idle()

    def _emit(self, kind: str, a: Announcement) -> None:
        if self.on_event:
            try:
                self.on_event(kind, a)
            except Exception:  # noqa: BLE001
                log.exception("announcement listener failed")
