"""The cue cache: each (voice, speech settings, text) is synthesised once and kept on disk.

Files live in `$XDG_CACHE_HOME/backstretch/cues/<voice>-<key>/<hash of text>.<sum>.wav`,
where the key covers the voice files, the speech settings and the piper version:
changing any of them starts a new folder, and nothing else is invalidated
(volume and the device rate are applied at playback, so they are not in the key).
`<sum>` is the SHA-256 of the file's own bytes, checked whenever a cue is loaded: a
file cut short, cut to its header or with a changed header (a rate of 1000 Hz makes a
cue last 40 s) is logged, synthesised again and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from assistant.errors import AudioFileError
from assistant.pcm import Audio
from assistant.speak.tts import Synthesizer
from assistant.speak.wav import decode_wav, encode_wav, write_wav

log = logging.getLogger(__name__)


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backstretch" / "cues"


def _piper_version() -> str:
    try:
        return version("piper-tts")
    except PackageNotFoundError:
        return "unknown"


class CueCache:
    """Audio for texts in one voice with one set of speech settings."""

    def __init__(self, synth: Synthesizer, root: Path | None = None) -> None:
        self.synth = synth
        identity = f"{synth.voice.fingerprint()}|{synth.settings.key()}|piper={_piper_version()}"
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.dir = (root or default_dir()) / f"{synth.voice.name}-{key}"
        self._memory: dict[str, Audio] = {}
        self._lock = threading.Lock()  # one synthesis at a time: prefetch runs in a thread
        self._prefetch: queue.Queue[str | None] | None = None
        self._prefetcher: threading.Thread | None = None
        self.hits = 0  # served from memory or disk
        self.misses = 0  # synthesised

    def _stem(self, text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def files_for(self, text: str) -> list[Path]:
        """The files kept for `text` (normally one; verified only when loaded)."""
        return sorted(self.dir.glob(self._stem(text) + ".*.wav"))

    def has(self, text: str) -> bool:
        """Whether `text` is cached, in memory or in a file that passes its check."""
        with self._lock:
            return text in self._memory or self._load(text) is not None

    def get(self, text: str) -> Audio:
        """The audio for `text`, synthesising and storing it on a miss."""
        with self._lock:
            return self._get(text)

    def prefetch(self, texts: Iterable[str]) -> None:
        """Synthesise `texts` in the background, ahead of their slot (the resume line
        while the user is paused, say)."""
        if self._prefetch is None:
            self._prefetch = queue.Queue()
            self._prefetcher = threading.Thread(target=self._prefetch_loop, name="prefetch", daemon=True)
            self._prefetcher.start()
        for text in texts:
            if text not in self._memory:
                self._prefetch.put(text)

    def close(self) -> None:
        """Stop prefetching, after the synthesis under way: piper must not be cut off
        in the middle of a run by the interpreter shutting down (it aborts)."""
        if self._prefetch is not None and self._prefetcher is not None:
            with contextlib.suppress(queue.Empty):  # drop what is waiting; the thread may take one
                while True:
                    self._prefetch.get_nowait()
            self._prefetch.put(None)
            self._prefetcher.join(timeout=30)

    def _prefetch_loop(self) -> None:
        assert self._prefetch is not None
        while (text := self._prefetch.get()) is not None:
            try:
                self.get(text)
            except Exception:  # a prefetch is a hint: the slot itself will try again and report
                log.exception("prefetching %r", text)

    def _get(self, text: str) -> Audio:
        audio = self._memory.get(text)
        if audio is None:
            audio = self._load(text)
        if audio is not None:
            self.hits += 1
            return audio
        audio = self.synth.synthesize(text)
        self.misses += 1
        self._memory[text] = audio
        self._store(text, audio)
        return audio

    def _load(self, text: str) -> Audio | None:
        """The cue for `text` from its file, if that passes its check (into memory too)."""
        for path in self.files_for(text):
            try:
                blob = path.read_bytes()
            except OSError as exc:
                log.warning("cannot read cached cue %s (%s); synthesising it again", path, exc.strerror)
                continue
            if hashlib.sha256(blob).hexdigest()[:16] != path.name.split(".")[1]:
                log.warning("damaged cached cue %s (cut short or altered); synthesising it again", path)
                continue
            try:
                audio = decode_wav(blob, str(path))
            except AudioFileError as exc:  # a file written whole, but not by us
                log.warning("damaged cached cue, synthesising it again: %s", exc)
                continue
            if audio.rate_hz != self.synth.rate_hz:
                log.warning(
                    "cached cue %s is at %d Hz, not the voice's; synthesising it again", path, audio.rate_hz
                )
                continue
            self._memory[text] = audio
            return audio
        return None

    def _store(self, text: str, audio: Audio) -> None:
        """Keep `audio` as `<stem>.<sum>.wav`, and drop any other file for the text (a
        damaged one, or one from before files carried their sum)."""
        stem = self._stem(text)
        path = self.dir / f"{stem}.{hashlib.sha256(encode_wav(audio)).hexdigest()[:16]}.wav"
        try:
            write_wav(path, audio)
        except AudioFileError as exc:
            log.warning("cannot keep a cue in the cache: %s", exc)
            return
        for old in self.dir.glob(stem + ".*"):
            if old != path:
                old.unlink(missing_ok=True)

    def duration_s(self, text: str) -> float:
        return self.get(text).duration_s

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The texts of `texts` not cached yet, in a stable order."""
        return sorted({t for t in texts if not self.has(t)})

    def warm(self, texts: Iterable[str], advance: Callable[[], None] = lambda: None) -> int:
        """Make sure every text is cached, and the voice loaded for what comes up on the
        spot; `advance()` after each synthesis. Returns how many had to be synthesised."""
        self.synth.load()
        missing = self.missing(texts)
        for text in missing:
            self.get(text)
            advance()
        log.info("cue cache %s: %d synthesised", self.dir, len(missing))
        return len(missing)
