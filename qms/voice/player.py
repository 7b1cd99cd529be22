"""Audio output through pygame.mixer: one reserved channel, so nothing we play can overlap.

The device is chosen by its SDL name (HDMI, USB DAC; `qms voice devices` lists them).
In tests and `--headless` runs SDL's `disk` driver writes the mixed output to a file.

A sound card that is not there yet at boot (a USB DAC enumerating late, HDMI audio before
the screen is on) does not leave the hall silent until a restart: the player keeps
trying to open the output every `retry_s` and plays once it is there; until then
`ready` is clear and `sound()` raises `AudioUnavailable`.

Waiting for the channel: pygame tells the end of a sound only as an event on its event
queue, which belongs to the display's thread (and needs a video system), and the output
may run faster than real time (SDL's disk driver in tests). So the player looks at the
channel every STEP_S while it waits on its own `threading.Event` (set by `close()`),
instead of spinning every 5 ms as it did.
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import threading
import time

import pygame

from qms.config.display import VolumeStep

log = logging.getLogger("qms.voice")

RATE = 22050


def output_devices() -> list[str]:
    """SDL names of the audio outputs (needs SDL audio initialised, e.g. pygame.mixer.init)."""
    try:
        from pygame._sdl2 import audio as sdl_audio
        return list(sdl_audio.get_audio_device_names(False))
    except (ImportError, pygame.error):
        return []


def volume_at(schedule: list[VolumeStep], default: float, now: dt.time) -> float:
    """The volume of the last schedule step at or before `now` (the day wraps around: before
    the first step the last one still holds)."""
    if not schedule:
        return default
    steps = sorted(schedule, key=lambda s: s.at)
    hhmm = now.strftime("%H:%M")
    current = steps[-1]
    for s in steps:
        if s.at <= hhmm:
            current = s
    return current.volume


class AudioUnavailable(RuntimeError):
    """No audio output (yet): the player is retrying."""


STEP_S = 0.02       # between two looks at the channel (a queued sound is longer than this)


class Player:
    def __init__(self, device: str = "", rate: int = RATE, retry_s: float = 5.0):
        self.device, self.wanted_rate, self.retry_s = device, rate, retry_s
        self.ready = threading.Event()
        self._closed = threading.Event()
        self.rate, self.channels = rate, 1
        self.channel: pygame.mixer.Channel | None = None
        if not self._open():
            threading.Thread(target=self._retry, name="audio-retry", daemon=True).start()

    # ------------------------------------------------------------ the output
    def _open(self) -> bool:
        if pygame.mixer.get_init() is None:
            try:
                self._init(self.device)
            except pygame.error as e:
                if not self.device:
                    log.warning("no audio output yet (%s); retrying every %.0f s", e, self.retry_s)
                    return False
                try:
                    self._init("")
                except pygame.error:
                    log.warning("audio device %r is not available (%s), nor a default one; retrying "
                                "every %.0f s", self.device, e, self.retry_s)
                    return False
                log.error("audio device %r is not available (%s); using the default. Devices: %s",
                          self.device, e, ", ".join(output_devices()) or "none found")
        pygame.mixer.set_reserved(1)
        self.channel = pygame.mixer.Channel(0)
        self.rate, _, self.channels = pygame.mixer.get_init()
        self.ready.set()
        return True

    def _init(self, device: str) -> None:
        pygame.mixer.init(frequency=self.wanted_rate, size=-16, channels=1, buffer=512,
                          devicename=device or None)

    def _retry(self) -> None:
        while not self._closed.wait(self.retry_s):
            if self._open():
                log.info("audio output is available now")
                return

    def _channel(self) -> pygame.mixer.Channel:
        if self.channel is None:
            raise AudioUnavailable("no audio output (the player retries until one appears)")
        return self.channel

    # ------------------------------------------------------------ sounds
    def sound(self, wav: bytes) -> pygame.mixer.Sound:
        self._channel()
        return pygame.mixer.Sound(file=io.BytesIO(wav))

    def silence(self, ms: int) -> pygame.mixer.Sound:
        self._channel()
        return pygame.mixer.Sound(buffer=b"\0\0" * self.channels * max(1, int(self.rate * ms / 1000)))

    def start(self, sound: pygame.mixer.Sound, volume: float) -> None:
        """Play now (the caller made sure the channel is idle)."""
        channel = self._channel()
        channel.set_volume(volume)
        channel.play(sound)

    def then(self, sound: pygame.mixer.Sound) -> None:
        """Play after what is playing, without a gap: waits for the channel's one queue slot
        (free once the sound playing now ends and the queued one starts)."""
        channel = self._channel()
        self._wait(lambda: channel.get_queue() is None, 120.0)
        if channel.get_busy():
            channel.queue(sound)
        else:
            channel.play(sound)

    def wait_idle(self, timeout: float = 120.0) -> bool:
        channel = self.channel
        if channel is None:
            return True
        if self._wait(lambda: not channel.get_busy() and channel.get_queue() is None, timeout):
            return True
        channel.stop()
        return False

    def _wait(self, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            now = time.monotonic()
            if now >= deadline or self._closed.is_set():
                return done()
            self._closed.wait(min(STEP_S, deadline - now))
        return True

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.stop()

    def close(self) -> None:
        self._closed.set()
        self.stop()
