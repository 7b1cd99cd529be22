"""Audio output through pygame.mixer: one reserved channel, so nothing we play can overlap.

The device is chosen by its SDL name (HDMI, USB DAC; `qms voice devices` lists them).
In tests and `--headless` runs SDL's `disk` driver writes the mixed output to a file.
"""
from __future__ import annotations

import datetime as dt
import io
import logging
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


class Player:
    def __init__(self, device: str = "", rate: int = RATE):
        if pygame.mixer.get_init() is None:
            try:
                pygame.mixer.init(frequency=rate, size=-16, channels=1, buffer=512,
                                  devicename=device or None)
            except pygame.error as e:
                if not device:
                    raise
                pygame.mixer.init(frequency=rate, size=-16, channels=1, buffer=512)
                log.error("audio device %r is not available (%s); using the default. Devices: %s",
                          device, e, ", ".join(output_devices()) or "none found")
        pygame.mixer.set_reserved(1)
        self.channel = pygame.mixer.Channel(0)
        self.rate, _, self.channels = pygame.mixer.get_init()

    def sound(self, wav: bytes) -> pygame.mixer.Sound:
        return pygame.mixer.Sound(file=io.BytesIO(wav))

    def silence(self, ms: int) -> pygame.mixer.Sound:
        return pygame.mixer.Sound(buffer=b"\0\0" * self.channels * max(1, int(self.rate * ms / 1000)))

    def start(self, sound: pygame.mixer.Sound, volume: float) -> None:
        """Play now (the caller made sure the channel is idle)."""
        self.channel.set_volume(volume)
        self.channel.play(sound)

    def then(self, sound: pygame.mixer.Sound) -> None:
        """Play after what is playing, without a gap: waits for the channel's one queue slot."""
        while self.channel.get_queue() is not None:
            time.sleep(0.005)
        if self.channel.get_busy():
            self.channel.queue(sound)
        else:
            self.channel.play(sound)

    def wait_idle(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.channel.get_busy() or self.channel.get_queue() is not None:
            if time.monotonic() > deadline:
                self.channel.stop()
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        self.channel.stop()
