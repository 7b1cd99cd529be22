"""Config sections of the hall display and the voice announcer."""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class DisplayConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # 1920x1080 or 1280x720; swap them for a TV mounted in portrait
    width: Annotated[int, msgspec.Meta(ge=320, le=7680)] = 1920
    height: Annotated[int, msgspec.Meta(ge=240, le=7680)] = 1080
    fullscreen: bool = True
    last_calls: Annotated[int, msgspec.Meta(ge=0, le=20)] = 6
    blink_seconds: Annotated[float, msgspec.Meta(ge=0, le=300)] = 10.0
    blink_period: Annotated[float, msgspec.Meta(ge=0.2, le=5)] = 0.5   # seconds per on/off half
    ticker: str = ""                    # default ticker text; state/notice overrides it
    ticker_speed: Annotated[float, msgspec.Meta(ge=10, le=1000)] = 120.0   # pixels per second
    ticker_fps: Annotated[int, msgspec.Meta(ge=1, le=60)] = 20   # only the ticker strip is redrawn
    clock_seconds: bool = False          # HH:MM:SS redraws the clock every second, HH:MM every minute
    english: bool = True                 # English labels under the Vietnamese ones
    font: str = ""                       # TTF path; default Noto Sans or DejaVu Sans
    font_bold: str = ""
    device: str = ""                     # MQTT device id; default the first "display" device


class VolumeStep(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    at: HHMM                             # from this local time on ...
    volume: Annotated[float, msgspec.Meta(ge=0, le=1)]   # ... play at this volume


class VoiceConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    repeat: Annotated[int, msgspec.Meta(ge=1, le=5)] = 2
    region: Literal["north", "south"] = "north"     # linh/lẻ, nghìn/ngàn, tư/bốn
    reading: Literal["number", "digits"] = "number"  # 1005 as a number or digit by digit
    source: Literal["tts", "pack"] = "tts"          # the espeak-ng command, or recorded clips
    pack: str = ""                       # voice pack folder (source = "pack")
    # "espeak-ng": the command, rate and voice given with every phrase (default, measured
    # reliable); "pyttsx3": the same voices through pyttsx3 (docs/voice.md says when)
    tts_engine: Literal["espeak-ng", "pyttsx3"] = "espeak-ng"
    tts_voice: str = "vi"                # espeak-ng voice: vi, vi-vn-x-central, vi-vn-x-south
    tts_rate: Annotated[int, msgspec.Meta(ge=60, le=400)] = 150
    tts_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0   # seconds for espeak-ng to say one phrase
    max_pending: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5     # older waiting calls are dropped
    gap_ms: Annotated[int, msgspec.Meta(ge=0, le=5000)] = 500       # silence between repeats
    chime: str = ""                      # WAV file; default a synthesized ding-dong
    audio_device: str = ""               # SDL audio device name (HDMI, USB DAC); "" = default
    volume: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    volume_schedule: list[VolumeStep] = []   # e.g. quieter at lunch; sorted by `at`
