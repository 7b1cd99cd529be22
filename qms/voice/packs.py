"""Voice sources: what turns the words of a call into a WAV.

Both sources take the same tokens (whole phrases and single number words, NFC) and
return the bytes of one WAV file:

- `EspeakVoice`: the `espeak-ng` command, voice `vi`, one process per phrase (cached).
  It used to go through pyttsx3, which queues `rate`/`voice` as commands of its own loop:
  in 2 of 12 process starts the first phrase came out at pyttsx3's default 200 wpm, and
  the cache kept replaying it; some versions also hang in `runAndWait`. The command takes
  `-s RATE -v VOICE` on every call, is deterministic (same text, same bytes), and can be
  killed on a timeout (tests/test_voice_rate.py measures it).
- `VoicePack`: a folder of recorded clips, one per token, joined at run time — centers
  prefer a natural human voice. `build_pack` makes a default pack with espeak-ng.
"""
from __future__ import annotations

import contextlib
import io
import logging
import queue
import shutil
import subprocess
import tempfile
import threading
import unicodedata
import wave
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from qms.voice.numbers import Region, digit_words, number_words

log = logging.getLogger("qms.voice")

PREFIX = "xin mời công dân có số thứ tự"
PRINTED = "vé in số"         # a renumbered ticket: the number on the citizen's paper follows
TO_COUNTER = "đến quầy số"

# token -> clip file stem in a voice pack (ASCII: packs travel on FAT-formatted USB sticks)
CLIP_NAMES: dict[str, str] = {
    PREFIX: "xin_moi", TO_COUNTER: "den_quay_so", PRINTED: "ve_in_so",
    "không": "khong", "một": "mot", "hai": "hai", "ba": "ba", "bốn": "bon", "năm": "nam",
    "sáu": "sau", "bảy": "bay", "tám": "tam", "chín": "chin",
    "mười": "muoi_huyen", "mươi": "muoi", "mốt": "mot_sac", "tư": "tu", "lăm": "lam",
    "trăm": "tram", "linh": "linh", "lẻ": "le", "nghìn": "nghin", "ngàn": "ngan",
    "triệu": "trieu", "tỷ": "ty",
}


class VoiceError(RuntimeError):
    """A voice source cannot speak (missing clip, engine failure); the message says why."""


def call_tokens(number: int, counter: int, region: Region = "north", digits: bool = False,
                printed: int | None = None) -> list[str]:
    """The spoken call: "Xin mời công dân có số thứ tự {số} đến quầy số {quầy}" as tokens.
    Counter numbers are read as cardinals ("quầy số ba"). A renumbered ticket (`printed`:
    the number on the citizen's paper) says both: "… số thứ tự {số} vé in số {số in} đến
    quầy số {quầy}"."""
    def said(n: int) -> list[str]:
        return digit_words(n) if digits else number_words(n, region)
    extra = [PRINTED, *said(printed)] if printed is not None and printed != number else []
    return [PREFIX, *said(number), *extra, TO_COUNTER, *number_words(counter, region)]


def sentence(tokens: list[str]) -> str:
    text = " ".join(tokens)
    return unicodedata.normalize("NFC", text[:1].upper() + text[1:])


class VoiceSource(Protocol):
    def render(self, tokens: list[str]) -> bytes:
        """WAV bytes speaking the tokens in order. Raises VoiceError."""

    def close(self) -> None: ...


# ------------------------------------------------------------------ text to speech
class EspeakVoice:
    def __init__(self, voice: str = "vi", rate: int = 150, timeout: float = 5.0, cache: int = 64):
        self.voice, self.rate, self.timeout = voice, rate, timeout
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache
        self._lock = threading.Lock()
        self._tmp = Path(tempfile.mkdtemp(prefix="qms-tts-"))

    def _via_command(self, text: str) -> bytes:
        exe = shutil.which("espeak-ng")
        if not exe:
            raise VoiceError("espeak-ng is not installed (apt-get install espeak-ng)")
        with tempfile.NamedTemporaryFile(suffix=".wav", dir=self._tmp) as f:
            try:
                # "--" : a phrase is never read as an option
                subprocess.run([exe, "-v", self.voice, "-s", str(self.rate), "-w", f.name, "--", text],
                               check=True, timeout=self.timeout, capture_output=True)
            except subprocess.CalledProcessError as e:
                raise VoiceError(f"espeak-ng failed: {e.stderr.decode(errors='replace').strip() or e}") from e
            except (subprocess.SubprocessError, OSError) as e:
                raise VoiceError(f"espeak-ng failed: {e}") from e
            return Path(f.name).read_bytes()

    def render(self, tokens: list[str]) -> bytes:
        text = sentence(tokens)
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
        wav = self._via_command(text)
        if len(wav) <= 44:
            raise VoiceError(f"text to speech produced no audio for {text!r}")
        with self._lock:
            self._cache[text] = wav
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return wav

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


class Pyttsx3Voice:
    """The same phrases through pyttsx3 (its espeak driver), for `tts_engine = "pyttsx3"`.

    Not the default: pyttsx3 queues `rate` and `voice` as commands of its own loop, and in
    2 of 12 process starts its first phrase came out at its default 200 wpm
    (tests/test_voice_rate.py measures the espeak-ng command instead). Kept for systems
    where another pyttsx3 driver is the only speech there is. A phrase pyttsx3 does not
    deliver within `timeout` is said with the espeak-ng command, and so is every later one.
    """

    def __init__(self, voice: str = "vi", rate: int = 150, timeout: float = 5.0, cache: int = 64):
        self.voice, self.rate, self.timeout = voice, rate, timeout
        self._fallback = EspeakVoice(voice, rate, timeout, cache)
        self._requests: queue.Queue = queue.Queue()
        self._tmp = Path(tempfile.mkdtemp(prefix="qms-pyttsx3-"))
        self._hung = False
        self._thread = threading.Thread(target=self._worker, name="pyttsx3", daemon=True)
        self._thread.start()

    def _worker(self) -> None:               # the engine lives only on this thread
        engine = None
        finished = threading.Event()
        n = 0
        while (item := self._requests.get()) is not None:
            text, done = item
            try:
                if engine is None:
                    import pyttsx3
                    engine = pyttsx3.init("espeak")
                    # the espeak driver writes the file asynchronously and signals its end
                    engine.connect("finished-utterance", lambda **_: finished.set())
                engine.setProperty("voice", self.voice)
                engine.setProperty("rate", self.rate)
                n += 1
                path = self._tmp / f"say-{n}.wav"
                finished.clear()
                engine.save_to_file(text, str(path))
                with contextlib.redirect_stdout(io.StringIO()):   # it prints "Audio saved to"
                    engine.runAndWait()
                    if not finished.wait(self.timeout):
                        continue                  # the caller times out and falls back
                done.put(path.read_bytes())
                path.unlink(missing_ok=True)
            except Exception as e:  # noqa: BLE001 - reported to the caller
                done.put(e)

    def render(self, tokens: list[str]) -> bytes:
        if self._hung:
            return self._fallback.render(tokens)
        done: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put((sentence(tokens), done))
        try:
            out = done.get(timeout=self.timeout)
        except queue.Empty:
            self._hung = True
            log.error("pyttsx3 did not answer in %.1f s; using the espeak-ng command from now on", self.timeout)
            return self._fallback.render(tokens)
        if isinstance(out, Exception) or len(out) <= 44:
            log.warning("pyttsx3 failed (%s); this phrase goes through the espeak-ng command",
                        out if isinstance(out, Exception) else "empty file")
            return self._fallback.render(tokens)
        return out

    def close(self) -> None:
        self._requests.put(None)
        self._fallback.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


# ------------------------------------------------------------------ recorded clips
class VoicePack:
    """A folder of WAV clips named after CLIP_NAMES (e.g. `mot.wav`, `xin_moi.wav`), all with
    the same format; clips are joined with `gap_ms` of silence."""

    def __init__(self, folder: str | Path, gap_ms: int = 60):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise VoiceError(f"voice pack folder {self.folder} does not exist")
        self.gap_ms = gap_ms
        self._clips: dict[str, bytes] = {}
        self._format: tuple[int, int, int] | None = None   # channels, sample width, rate
        for token, stem in CLIP_NAMES.items():
            path = self.folder / f"{stem}.wav"
            if path.exists():
                self._clips[token] = self._load(path)

    def _load(self, path: Path) -> bytes:
        try:
            with wave.open(str(path), "rb") as w:
                fmt = (w.getnchannels(), w.getsampwidth(), w.getframerate())
                frames = w.readframes(w.getnframes())
        except (wave.Error, EOFError, OSError) as e:
            raise VoiceError(f"{path}: not a PCM WAV file ({e})") from None
        if self._format is None:
            self._format = fmt
        elif fmt != self._format:
            raise VoiceError(f"{path}: format {fmt} differs from the pack's {self._format} "
                             "(channels, bytes per sample, rate); convert it, e.g. "
                             "`sox in.wav -r 22050 -c 1 -b 16 out.wav`")
        return frames

    def missing(self, tokens: list[str]) -> list[str]:
        return sorted({f"{CLIP_NAMES.get(t, t)}.wav" for t in tokens if t not in self._clips})

    def check(self, region: Region = "north") -> list[str]:
        """Clip files this pack lacks for reading any number 0-9999 and counters 1-99."""
        needed: set[str] = {PREFIX, TO_COUNTER}
        for n in range(10000):
            needed.update(number_words(n, region))
        return self.missing(sorted(needed))

    def render(self, tokens: list[str]) -> bytes:
        missing = self.missing(tokens)
        if missing:
            raise VoiceError(f"voice pack {self.folder} lacks {', '.join(missing)}")
        channels, width, rate = self._format
        gap = b"\0" * (int(rate * self.gap_ms / 1000) * channels * width)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(width)
            w.setframerate(rate)
            w.writeframes(gap.join(self._clips[t] for t in tokens))
        return buf.getvalue()

    def close(self) -> None:
        pass


def build_pack(folder: str | Path, voice: str = "vi", rate: int = 150) -> list[Path]:
    """Write a default voice pack synthesized by espeak-ng: one clip per token, silence
    trimmed (sox, when installed) so that joined words do not drag."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tts = EspeakVoice(voice=voice, rate=rate)
    sox = shutil.which("sox")
    written = []
    try:
        for token, stem in CLIP_NAMES.items():
            path = folder / f"{stem}.wav"
            raw = tts.render([token])
            if sox:
                src = folder / f".{stem}.raw.wav"
                src.write_bytes(raw)
                # trim leading and trailing silence (espeak pads ~0.1-0.3 s)
                subprocess.run([sox, str(src), str(path), "silence", "1", "0.01", "0.5%",
                                "reverse", "silence", "1", "0.01", "0.5%", "reverse"],
                               check=True, capture_output=True, timeout=30)
                src.unlink()
            else:
                path.write_bytes(raw)
            written.append(path)
    finally:
        tts.close()
    (folder / "README.txt").write_text(
        "Gói giọng đọc mặc định, tổng hợp bằng espeak-ng. Default voice pack made by espeak-ng.\n"
        "Replace the clips with recordings of a human voice: see docs/voice.md.\n", encoding="utf-8")
    return written


def make_voice(cfg, base: Path | None = None) -> VoiceSource:
    """The voice source chosen by the [voice] config section."""
    if cfg.source == "pack":
        folder = Path(cfg.pack)
        if not folder.is_absolute() and base is not None:
            folder = base / folder
        return VoicePack(folder)
    if cfg.tts_engine == "pyttsx3":
        return Pyttsx3Voice(cfg.tts_voice, cfg.tts_rate, cfg.tts_timeout)
    return EspeakVoice(cfg.tts_voice, cfg.tts_rate, cfg.tts_timeout)
