"""Speech for the kiosk: "read aloud" of procedures and the robot's greeting.

The kiosk needs only `Speaker.say(text, lang)` (returns at once; a new text replaces one
still waiting and cuts short one being played) and `busy()`.

`VoiceSpeaker` is a small adapter over the hall display's voice stack, so both speak
with the same engine, voice, audio device and volume schedule (`[voice]`):
`qms.voice.packs.EspeakVoice` renders the words (the espeak-ng command, with a
timeout) and `qms.voice.player.Player` plays them (pygame.mixer,
one reserved channel). Before synthesis the text goes through `qms.kiosk.spoken`, which
writes fees, deadlines and form codes out in words ("10.000 đ" → "mười nghìn đồng").
A recorded voice pack only has the words of a call, so free text always uses the
engine. `SilentSpeaker` only records what it was asked to say (tests, `enabled = false`).
"""
from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import unicodedata
from collections.abc import Callable
from typing import Protocol

from qms.kiosk.spoken import spoken

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


class VoiceSpeaker:
    """`voices`: a display VoiceSource per language ("vi" is the fallback); `player`: a
    display Player, or None to render without playing (no sound card)."""

    def __init__(self, voices: dict, player=None, region: str = "north",
                 volume: Callable[[], float] = lambda: 1.0):
        self.voices, self.player, self.region, self.volume = voices, player, region, volume
        self.said: list[str] = []           # the words handed to the engine, in order
        self.last_wav = b""
        self._q: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._speaking = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiosk-voice", daemon=True)
        self._thread.start()

    def say(self, text: str, lang: str = "vi") -> None:
        while True:                             # the newest request replaces queued ones
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._speaking.set()
        self._q.put((text, lang))

    def busy(self) -> bool:
        return self._speaking.is_set()

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(5)
        if self.player is not None:
            self.player.stop()
        for v in self.voices.values():
            v.close()

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
        words = spoken(text, lang, self.region)
        wav = self.voices.get(lang, self.voices["vi"]).render([words])
        self.said.append(words)
        self.last_wav = wav
        if self.player is None:
            return
        self.player.stop()                      # what was playing is replaced by this
        self.player.start(self.player.sound(wav), self.volume())
        while self.player.channel.get_busy():
            if not self._q.empty():             # a newer text is waiting: cut this one short
                self.player.stop()
                return
            self._speaking.wait(0.05)           # (always set here: just a sleep)


def make_speaker(cfg) -> Speaker:
    """The speaker of a site config's `[voice]`: silent when disabled or without audio."""
    voice = cfg.voice
    if not voice.enabled:
        return SilentSpeaker()
    import pygame

    from qms.voice.packs import EspeakVoice
    from qms.voice.player import Player, volume_at
    try:
        player = Player(voice.audio_device)
    except pygame.error as e:
        log.warning("no audio output (%s): the kiosk stays silent", e)
        return SilentSpeaker()
    # a procedure is a paragraph, not a call: give the engine longer than for a call
    timeout = max(voice.tts_timeout, 15.0)
    voices = {"vi": EspeakVoice(voice.tts_voice, voice.tts_rate, timeout),
              "en": EspeakVoice("en", voice.tts_rate, timeout)}
    return VoiceSpeaker(voices, player, voice.region,
                        lambda: volume_at(voice.volume_schedule, voice.volume, dt.datetime.now(cfg.tz).time()))
