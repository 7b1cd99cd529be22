"""Voice: real espeak-ng synthesis, voice packs, and what the mixer actually played
(SDL's disk audio driver writes the mixed output to a raw PCM file)."""
import datetime as dt
import io
import math
import wave
from array import array

import pygame
import pytest
from support.media import FREQ, RATE, tone, write_wav

from qms.config.display import VoiceConfig, VolumeStep
from qms.display.announcer import CallAnnouncer
from qms.voice.chime import wav_bytes
from qms.voice.packs import (
    CLIP_NAMES,
    PREFIX,
    TO_COUNTER,
    EspeakVoice,
    VoiceError,
    VoicePack,
    build_pack,
    call_tokens,
    sentence,
)
from qms.voice.player import Player, volume_at


def wav_info(data: bytes) -> tuple[int, int, array]:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2
        return w.getframerate(), w.getnchannels(), array("h", w.readframes(w.getnframes()))


def rms(samples) -> float:
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))




# ------------------------------------------------------------------ words of a call
def test_call_tokens_and_sentence():
    tokens = call_tokens(1005, 3)
    assert tokens == [PREFIX, "một", "nghìn", "không", "trăm", "linh", "năm", TO_COUNTER, "ba"]
    assert sentence(tokens) == "Xin mời công dân có số thứ tự một nghìn không trăm linh năm đến quầy số ba"
    assert call_tokens(2024, 12, "south") == [PREFIX, "hai", "ngàn", "không", "trăm", "hai", "mươi",
                                               "bốn", TO_COUNTER, "mười", "hai"]
    assert call_tokens(1005, 3, digits=True)[1:5] == ["một", "không", "không", "năm"]


# ------------------------------------------------------------------ real espeak-ng
def test_espeak_synthesizes_a_plausible_call():
    voice = EspeakVoice(timeout=10)
    try:
        wav = voice.render(call_tokens(1005, 3))
        rate, channels, samples = wav_info(wav)
        seconds = len(samples) / rate / channels
        assert 2.0 < seconds < 9.0, seconds            # 17 syllables at ~150 wpm
        assert rms(samples) > 500                       # speech, not silence
        assert max(abs(s) for s in samples) > 4000
        short = wav_info(voice.render(call_tokens(1, 1)))[2]
        assert len(short) < len(samples)                # fewer words, shorter audio
        assert voice.render(call_tokens(1005, 3)) is wav   # cached
    finally:
        voice.close()


def test_espeak_gives_audio_at_the_mixer_rate():
    voice = EspeakVoice(timeout=10)
    try:
        rate, _, samples = wav_info(voice.render(call_tokens(21, 2)))
        assert rate == RATE and rms(samples) > 500
    finally:
        voice.close()


def test_built_pack_speaks_every_number_both_regions(tmp_path):
    written = build_pack(tmp_path / "pack")
    assert len(written) == len(CLIP_NAMES)
    pack = VoicePack(tmp_path / "pack")
    assert pack.check("north") == [] and pack.check("south") == []
    for path in written:                                # each clip is a trimmed spoken word
        rate, _, samples = wav_info(path.read_bytes())
        assert 0.08 < len(samples) / rate < 3.0, path
        assert rms(samples) > 300, path
    rate, _, joined = wav_info(pack.render(call_tokens(1005, 3)))
    assert 2.0 < len(joined) / rate < 10.0


def test_pack_errors_are_clear(tmp_path):
    with pytest.raises(VoiceError, match="does not exist"):
        VoicePack(tmp_path / "nope")
    (tmp_path / "p").mkdir()
    write_wav(tmp_path / "p" / "mot.wav", tone(440, 50))
    pack = VoicePack(tmp_path / "p")
    with pytest.raises(VoiceError, match="lacks .*xin_moi.wav"):
        pack.render(call_tokens(1, 1))
    assert "ba.wav" in pack.check()
    write_wav(tmp_path / "p" / "hai.wav", tone(440, 50, rate=44100), rate=44100)
    with pytest.raises(VoiceError, match="differs from the pack"):
        VoicePack(tmp_path / "p")
    (tmp_path / "p" / "hai.wav").write_bytes(b"not a wav")
    with pytest.raises(VoiceError, match="not a PCM WAV"):
        VoicePack(tmp_path / "p")


def test_volume_by_time_of_day():
    steps = [VolumeStep(at="11:30", volume=0.5), VolumeStep(at="07:00", volume=0.9),
             VolumeStep(at="13:30", volume=0.8)]
    assert volume_at([], 0.7, dt.time(9)) == 0.7
    assert volume_at(steps, 1.0, dt.time(6, 59)) == 0.8       # before the first: yesterday's last
    assert volume_at(steps, 1.0, dt.time(7, 0)) == 0.9
    assert volume_at(steps, 1.0, dt.time(12, 0)) == 0.5
    assert volume_at(steps, 1.0, dt.time(16, 0)) == 0.8


# ------------------------------------------------------------------ what the mixer played
CHIME_HZ = 300
AMP = 8000


@pytest.fixture
def disk_audio(tmp_path, monkeypatch):
    out = tmp_path / "mixer.raw"
    pygame.mixer.quit()
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(out))
    monkeypatch.setenv("SDL_DISKAUDIODELAY", "1")     # ~20x faster than real time
    yield out
    pygame.mixer.quit()


@pytest.fixture
def tone_pack(tmp_path):
    folder = tmp_path / "tones"
    folder.mkdir()
    for token, stem in CLIP_NAMES.items():
        write_wav(folder / f"{stem}.wav", tone(FREQ[token], 60))
    return VoicePack(folder, gap_ms=30)


def decode(raw: bytes) -> tuple[list[str], int]:
    """Split the mixer output at runs of silence and name each tone by its frequency."""
    samples = array("h")
    samples.frombytes(raw[: len(raw) // 2 * 2])
    segments, start, zeros = [], None, 0
    for i, s in enumerate(samples):
        if s == 0:
            zeros += 1
            if start is not None and zeros >= 100:
                segments.append((start, i - zeros + 1))
                start = None
        else:
            if start is None:
                start = i
            zeros = 0
    names = {f: t for t, f in FREQ.items()} | {CHIME_HZ: "chime"}
    out = []
    for a, b in segments:
        seg = samples[a:b]
        crossings = sum(1 for x, y in zip(seg, seg[1:]) if (x < 0) != (y < 0))
        hz = crossings / 2 / (len(seg) / RATE)
        nearest = min(names, key=lambda f: abs(f - hz))
        assert abs(nearest - hz) < 30, (a, hz)
        out.append(names[nearest])
    return out, max((abs(s) for s in samples), default=0)


def test_burst_of_20_calls_is_played_in_order_without_overlap(disk_audio, tone_pack):
    cfg = VoiceConfig(repeat=2, max_pending=20, gap_ms=100)
    player = Player()
    assert pygame.mixer.get_init() == (RATE, -16, 1)
    announcer = CallAnnouncer(tone_pack, player, cfg, chime=_wav(tone(CHIME_HZ, 150)))
    calls = [(1001 + i, 1 + i % 6) for i in range(20)]
    try:
        for number, counter in calls:
            announcer.announce(number, counter)
        assert announcer.wait_idle(60)
    finally:
        announcer.close()
    pygame.mixer.quit()                                   # flush the disk writer
    heard, peak = decode(disk_audio.read_bytes())
    expected = []
    for number, counter in calls:
        tokens = call_tokens(number, counter)
        expected += ["chime"] + tokens + tokens
    assert heard == expected
    assert peak <= AMP * 1.02                             # two sounds at once would add up
    assert announcer.dropped == 0
    done = sorted(announcer.history, key=lambda a: a.started_at)
    assert [(a.number, a.counter) for a in done] == calls
    for earlier, later in zip(done, done[1:]):
        assert earlier.finished_at <= later.started_at


def test_a_backlog_drops_stale_calls_never_the_newest(disk_audio, tone_pack):
    cfg = VoiceConfig(repeat=1, max_pending=3, gap_ms=50)
    announcer = CallAnnouncer(tone_pack, Player(), cfg, chime=_wav(tone(CHIME_HZ, 150)))
    try:
        for i in range(12):
            announcer.announce(2001 + i, 2)
        assert announcer.wait_idle(60)
    finally:
        announcer.close()
    spoken = [a.number for a in sorted((a for a in announcer.history if not a.dropped),
                                       key=lambda a: a.started_at)]
    dropped = [a.number for a in announcer.history if a.dropped]
    assert spoken[-1] == 2012                             # the newest is always spoken
    assert spoken == sorted(spoken)                       # in order
    assert len(dropped) == announcer.dropped >= 12 - 3 - 2
    assert sorted(spoken + dropped) == list(range(2001, 2013))


def test_recall_repeats_the_call(disk_audio, tone_pack):
    cfg = VoiceConfig(repeat=1, gap_ms=50)
    announcer = CallAnnouncer(tone_pack, Player(), cfg, chime=_wav(tone(CHIME_HZ, 150)))
    try:
        announcer.announce(1005, 3)
        announcer.announce(1005, 3, recall=True)
        assert announcer.wait_idle(30)
    finally:
        announcer.close()
    pygame.mixer.quit()
    heard, _ = decode(disk_audio.read_bytes())
    once = ["chime"] + call_tokens(1005, 3)
    assert heard == once + once


def test_a_missing_clip_is_reported_and_the_next_call_still_plays(disk_audio, tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    for token, stem in CLIP_NAMES.items():
        if stem != "chin":
            write_wav(folder / f"{stem}.wav", tone(FREQ[token], 60))
    announcer = CallAnnouncer(VoicePack(folder), Player(), VoiceConfig(repeat=1),
                              chime=_wav(tone(CHIME_HZ, 150)))
    try:
        bad = announcer.announce(1009, 1)
        good = announcer.announce(1008, 1)
        assert announcer.wait_idle(30)
    finally:
        announcer.close()
    assert "chin.wav" in bad.error
    assert good.error is None and good.spoken_at is not None


def _wav(samples: array) -> bytes:
    return wav_bytes(samples, RATE)


def test_voice_cli_say_to_wav_and_check_pack(tmp_path, capsys):
    from qms.cli.main import main
    out = tmp_path / "call.wav"
    assert main(["voice", "say", "2024", "4", "--region", "south", "--wav", str(out)]) == 0
    assert "Xin mời công dân có số thứ tự hai ngàn không trăm hai mươi bốn đến quầy số bốn" \
        in capsys.readouterr().out
    rate, _, samples = wav_info(out.read_bytes())
    assert rms(samples) > 500
    (tmp_path / "p").mkdir()
    write_wav(tmp_path / "p" / "mot.wav", tone(440, 50))
    assert main(["voice", "check-pack", str(tmp_path / "p")]) == 1
    assert "xin_moi.wav" in capsys.readouterr().out
    assert main(["voice", "check-pack", str(tmp_path / "nope")]) == 1


def test_audio_output_absent_at_boot_is_retried_until_it_appears(tmp_path, monkeypatch, tone_pack):
    """SDL's disk output cannot open a file in a folder that does not exist yet: a sound card
    that is not there at boot. The hall must speak once it appears, without a restart."""
    folder = tmp_path / "card"
    pygame.mixer.quit()
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(folder / "mixer.raw"))
    monkeypatch.setenv("SDL_DISKAUDIODELAY", "1")
    player = Player(retry_s=0.1)
    announcer = CallAnnouncer(tone_pack, player, VoiceConfig(repeat=1), chime=_wav(tone(CHIME_HZ, 150)))
    try:
        assert not player.ready.is_set()
        early = announcer.announce(1001, 1)
        assert announcer.wait_idle(10)
        assert early.spoken_at is None and "no audio output" in early.error
        folder.mkdir()                                      # the card appears
        assert player.ready.wait(10)
        late = announcer.announce(1002, 2)
        assert announcer.wait_idle(20)
        assert late.error is None and late.spoken_at is not None
    finally:
        announcer.close()
        player.close()
        pygame.mixer.quit()                                 # the output file is complete now
    played, _ = decode((folder / "mixer.raw").read_bytes())
    assert played == ["chime", *call_tokens(1002, 2)]
