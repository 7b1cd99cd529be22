"""`qms voice`: say a call, build a default voice pack, check a pack, list audio devices.

    qms voice say 1005 3 [--config site.toml] [--region south] [--digits] [--pack DIR]
    qms voice say 1005 3 --wav out.wav        # write the phrase instead of playing it
    qms voice build-pack DIR                   # clips synthesized by espeak-ng
    qms voice check-pack DIR                   # which clips a recorded pack still lacks
    qms voice devices                          # SDL audio output names for [voice] audio_device
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from qms.config.display import VoiceConfig

log = logging.getLogger("qms.voice")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="voice_command", metavar="ACTION", required=True)
    say = sub.add_parser("say", help="announce one call: chime, then the phrase")
    say.add_argument("number", type=int, help="ticket number, e.g. 1005")
    say.add_argument("counter", type=int, help="counter number, e.g. 3")
    say.add_argument("--config", "-c", help="site config; its [voice] section is used")
    say.add_argument("--region", choices=["north", "south"])
    say.add_argument("--digits", action="store_true", help="read the number digit by digit")
    say.add_argument("--pack", help="use this voice pack folder instead of text to speech")
    say.add_argument("--repeat", type=int, help="times the phrase is spoken")
    say.add_argument("--device", help="SDL audio device name")
    say.add_argument("--wav", help="write the spoken phrase to this WAV file, play nothing")
    build = sub.add_parser("build-pack", help="make a default voice pack with espeak-ng")
    build.add_argument("dir")
    build.add_argument("--voice", default="vi", help="espeak-ng voice (vi, vi-vn-x-south, ...)")
    build.add_argument("--rate", type=int, default=150)
    check = sub.add_parser("check-pack", help="list the clips a voice pack lacks")
    check.add_argument("dir")
    check.add_argument("--region", choices=["north", "south"], default="north")
    sub.add_parser("devices", help="list audio output devices")


def _voice_config(args) -> tuple[VoiceConfig, Path | None]:
    cfg, base = VoiceConfig(), None
    if args.config:
        from qms.config.site import load_config
        site = load_config(args.config)
        cfg, base = site.voice, Path(site.source).resolve().parent
    changes = {}
    if args.region:
        changes["region"] = args.region
    if args.digits:
        changes["reading"] = "digits"
    if args.pack:
        changes.update(source="pack", pack=str(Path(args.pack).resolve()))
    if args.repeat:
        changes["repeat"] = args.repeat
    if args.device:
        changes["audio_device"] = args.device
    if changes:
        import msgspec
        cfg = msgspec.structs.replace(cfg, **changes)
    return cfg, base


def _say(args) -> int:
    from qms.voice.packs import call_tokens, make_voice, sentence
    if not (0 <= args.number <= 99999 and 1 <= args.counter <= 99):
        log.error("number must be 0..99999 and counter 1..99")
        return 2
    cfg, base = _voice_config(args)
    voice = make_voice(cfg, base)
    tokens = call_tokens(args.number, args.counter, cfg.region, cfg.reading == "digits")
    print(sentence(tokens))
    try:
        if args.wav:
            Path(args.wav).write_bytes(voice.render(tokens))
            print(f"wrote {args.wav}")
            return 0
        from qms.display.announcer import CallAnnouncer
        from qms.voice.player import Player
        chime = Path(cfg.chime).read_bytes() if cfg.chime else None
        announcer = CallAnnouncer(voice, Player(cfg.audio_device), cfg, chime=chime)
        a = announcer.announce(args.number, args.counter)
        announcer.wait_idle(120)
        announcer.close()
        if a.error:
            log.error("%s", a.error)
            return 1
        return 0
    finally:
        voice.close()


def run(args) -> int:
    from qms.voice.packs import VoiceError
    try:
        if args.voice_command == "say":
            return _say(args)
        if args.voice_command == "build-pack":
            from qms.voice.packs import build_pack
            written = build_pack(args.dir, args.voice, args.rate)
            print(f"wrote {len(written)} clips to {args.dir}")
            return 0
        if args.voice_command == "check-pack":
            from qms.voice.packs import VoicePack
            missing = VoicePack(args.dir).check(args.region)
            if missing:
                print("missing clips: " + ", ".join(missing))
                return 1
            print(f"{args.dir}: complete for the {args.region} reading")
            return 0
        if args.voice_command == "devices":
            import pygame

            from qms.voice.player import output_devices
            pygame.mixer.init()
            for name in output_devices():
                print(name)
            return 0
    except (VoiceError, OSError) as e:
        log.error("%s", e)
        return 1
    return 2
