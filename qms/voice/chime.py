"""The call chime: a two-tone "ding-dong" synthesized at start-up (no binary asset to ship).

Two bell-like notes, E5 then C5, each a few harmonics with an exponential decay, so the
sound cuts through hall noise without being harsh.
"""
from __future__ import annotations

import io
import math
import wave
from array import array

RATE = 22050


def _note(freq: float, seconds: float, rate: int) -> list[float]:
    n = int(seconds * rate)
    partials = ((1.0, 1.0), (2.0, 0.35), (3.0, 0.12))   # (multiple, weight): a soft bell
    attack = int(0.005 * rate)                          # no click at the start
    out = []
    for i in range(n):
        t = i / rate
        env = math.exp(-3.2 * t) * min(1.0, i / attack if attack else 1.0)
        out.append(env * sum(w * math.sin(2 * math.pi * freq * k * t) for k, w in partials))
    return out


def chime_samples(rate: int = RATE) -> array:
    ding = _note(659.25, 0.65, rate)
    dong = _note(523.25, 1.0, rate)
    mixed = ding + [0.0] * len(dong)
    offset = int(0.45 * rate)                 # the second note starts while the first rings
    for i, s in enumerate(dong):
        mixed[offset + i] += s
    mixed = mixed[: offset + len(dong)]
    peak = max(abs(s) for s in mixed) or 1.0
    return array("h", (int(s / peak * 0.7 * 32767) for s in mixed))


def wav_bytes(samples: array, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def chime_wav(rate: int = RATE) -> bytes:
    return wav_bytes(chime_samples(rate), rate)
