"""The cue cache: each (voice, speech settings, text) is synthesised once and kept on disk.

Files live in `$XDG_CACHE_HOME/backstretch/cues/<voice>-<key>/<hash of text>.wav`,
where the key covers the voice files, the speech settings and the piper version:
changing any of them starts a new folder, and nothing else is invalidated
(volume and the device rate are applied at playback, so they are not in the key).
A damaged cache file is synthesised again.
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
from assistant.speak.wav import read_wav, write_wav

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

    def path_for(self, text: str) -> Path:
        return self.dir / (hashlib.sha256(text.encode()).hexdigest()[:32] + ".wav")

    def has(self, text: str) -> bool:
        return text in self._memory or self.path_for(text).is_file()

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
        if audio is not None:
            self.hits += 1
            return audio
        path = self.path_for(text)
        if path.is_file():
            try:
                audio = read_wav(path)
                self.hits += 1
            except AudioFileError as exc:
                log.warning("damaged cache file, synthesising again: %s", exc)
        if audio is None:
            audio = self.synth.synthesize(text)
            self.misses += 1
            try:
                write_wav(path, audio)
            except AudioFileError as exc:
                log.warning("cannot keep a cue in the cache: %s", exc)
        self._memory[text] = audio
        return audio

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
