"""Sound and picture helpers: tone clips for voice packs, counting a colour on a screen."""
from __future__ import annotations

import math
import wave
from array import array

import pygame

from qms.voice.packs import CLIP_NAMES

RATE = 22050
TOKENS = list(CLIP_NAMES)
FREQ = {t: 400 + 100 * i for i, t in enumerate(TOKENS)}       # every clip its own tone


def tone(freq: float, ms: int, amp: int = 8000, rate: int = RATE) -> array:
    return array("h", (int(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(rate * ms // 1000)))


def write_wav(path, samples: array, rate: int = RATE, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def colour_count(surf: pygame.Surface, rect, colour) -> int:
    """Pixels of `colour` (within a small tolerance) inside `rect`."""
    sub = surf.subsurface(rect)
    return pygame.mask.from_threshold(sub, colour, (8, 8, 8, 255)).count()
