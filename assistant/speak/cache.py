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
import itertools
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
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


class _Stopped(Exception):
    """The worker gives up the text it is making: the cache is closing."""


def _go_on() -> None:
    pass


URGENT, BATCH = 0, 1  # the worker's queue: what the session will ask for next, then the batch


class CueCache:
    """Audio for texts in one voice with one set of speech settings.

    Threads: the main path asks with `get` (synthesising on demand) while one worker
    thread prepares the batch (`prepare`) and the likely next lines (`prefetch`) in the
    background. One synthesis runs at a time (piper's phonemiser, espeak-ng, is not
    thread-safe, and the cores it does not use are the audio's); the main path goes
    first: the worker waits, between cues and between the sentences of a cue, while `get`
    wants a turn. A text being made by one thread is waited for by another, never
    synthesised twice.
    """

    def __init__(self, synth: Synthesizer, root: Path | None = None) -> None:
        self.synth = synth
        identity = f"{synth.voice.fingerprint()}|{synth.settings.key()}|piper={_piper_version()}"
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.dir = (root or default_dir()) / f"{synth.voice.name}-{key}"
        self._memory: dict[str, Audio] = {}
        self._lock = threading.Condition()  # guards everything below; never held while synthesising
        self._making: dict[str, threading.Event] = {}  # text -> set once it is in memory (or failed)
        self._synthesising = False  # one synthesis at a time
        self._wanted = 0  # callers of `get` waiting for their turn: the worker lets them go first
        self._queue: queue.PriorityQueue[tuple[int, int, str | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._worker: threading.Thread | None = None
        self._closed = False  # the worker is stopped, for good
        self._batch: set[str] = set()  # texts of `prepare` not in memory yet
        self._advance: Callable[[int], None] = lambda left: None
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
            if text in self._memory:
                return True
        audio = self._load(text)
        if audio is not None:
            self._keep(text, audio)
        return audio is not None

    def get(self, text: str) -> Audio:
        """The audio for `text`, synthesising and storing it on a miss, ahead of the worker."""
        audio = self._fetch(text, urgent=True)
        assert audio is not None  # only the worker gives up, when stopping
        return audio

    def prefetch(self, texts: Iterable[str]) -> None:
        """Synthesise `texts` in the background, ahead of their slot and of the batch (the
        resume line while the user is paused, say)."""
        self._enqueue(texts, URGENT)

    def unfiled(self, texts: Iterable[str]) -> list[str]:
        """The texts with no file in the cache, nor in memory (a glob each: no file is read)."""
        with self._lock:
            return [t for t in dict.fromkeys(texts) if t not in self._memory and not self.files_for(t)]

    def prepare(self, texts: Iterable[str], advance: Callable[[int], None] = lambda left: None) -> None:
        """Make sure every text is cached, in the background and in the given order (the
        order the session will want them). Of the ones with no file yet (`unfiled`),
        each one cached, by the worker or by `get` on demand, calls `advance` with how
        many are left (on the thread that made it)."""
        texts = list(dict.fromkeys(texts))
        todo = self.unfiled(texts)
        with self._lock:
            self._batch |= set(todo)
            self._advance = advance
        self._enqueue(texts, BATCH)

    def pending(self) -> int:
        """How many texts of `prepare` are not cached yet."""
        with self._lock:
            return len(self._batch)

    def close(self) -> None:
        """Stop the worker for good, after the synthesis under way: piper must not be cut
        off in the middle of a run by the interpreter shutting down (it aborts). What it had
        not made is made on demand by `get`, or by the next run."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()  # a worker waiting for its turn gives up
            worker = self._worker
        with contextlib.suppress(queue.Empty):  # drop what is waiting; the worker may take one
            while True:
                self._queue.get_nowait()
        if worker is None:
            return
        self._queue.put((-1, -1, None))
        worker.join(timeout=60)
        if worker.is_alive():
            log.warning("the cue worker did not stop within 60 s")
        with self._lock:
            self._worker = None
            if self._batch:
                log.info("cue cache: %d cue(s) left for on demand or the next run", len(self._batch))

    def _enqueue(self, texts: Iterable[str], priority: int) -> None:
        with self._lock:
            if self._closed:
                return
            wanted = [t for t in texts if t not in self._memory]
            if wanted and self._worker is None:
                self._worker = threading.Thread(target=self._work, name="cues", daemon=True)
                self._worker.start()
        for text in wanted:
            self._queue.put((priority, next(self._order), text))

    def _work(self) -> None:
        while (text := self._queue.get()[2]) is not None:
            try:
                self._fetch(text, urgent=False)
            except Exception:  # a hint: the slot itself will try again, and report
                log.exception("preparing the cue %r", text)

    def _fetch(self, text: str, urgent: bool) -> Audio | None:
        """The audio for `text`: from memory, from its file, or synthesised; made by one
        thread at a time (another asking meanwhile waits for it). None when the worker
        is told to stop before it had its turn."""
        while True:
            with self._lock:
                audio = self._memory.get(text)
                if audio is not None:
                    self.hits += urgent  # the worker finding it done serves no one
                    return audio
                other = self._making.get(text)
                if other is None:
                    mine = self._making[text] = threading.Event()
                    break
            other.wait()  # in memory when it is set, unless that thread failed: then try here
        try:
            audio = self._load(text)
            if audio is not None:
                with self._lock:
                    self.hits += urgent
            else:
                with self._turn(urgent) as go:
                    if not go:
                        return None
                    between = _go_on if urgent else self._step_aside
                    try:
                        audio = self.synth.synthesize(text, between)
                    except _Stopped:
                        return None
                self._store(text, audio)
                with self._lock:
                    self.misses += 1
            self._keep(text, audio)
            return audio
        finally:
            with self._lock:
                del self._making[text]
            mine.set()

    @contextlib.contextmanager
    def _turn(self, urgent: bool) -> Iterator[bool]:
        """The one synthesis at a time; `get` (urgent) before the worker. Yields False to
        the worker when it is to stop instead."""
        with self._lock:
            self._wanted += urgent
            while self._synthesising or (not urgent and self._wanted and not self._closed):
                self._lock.wait()
            self._wanted -= urgent
            go = urgent or not self._closed
            self._synthesising = go
        if not go:
            yield False
            return
        try:
            yield True
        finally:
            with self._lock:
                self._synthesising = False
                self._lock.notify_all()

    def _step_aside(self) -> None:
        """Between two sentences of the worker's text: `get` waiting for a turn takes it
        (a long cue makes no one wait for all of it); `close` ends the text here."""
        with self._lock:
            if self._wanted and not self._closed:
                self._synthesising = False
                self._lock.notify_all()
                while self._synthesising or (self._wanted and not self._closed):
                    self._lock.wait()
                self._synthesising = True
            if self._closed:
                raise _Stopped

    def _keep(self, text: str, audio: Audio) -> None:
        """`text` is cached: in memory, and counted if the batch wanted it."""
        with self._lock:
            self._memory[text] = audio
            if text in self._batch:
                self._batch.discard(text)
                self._advance(len(self._batch))

    def _load(self, text: str) -> Audio | None:
        """The cue for `text` from its file, if that passes its check."""
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

    def load_voice(self) -> None:
        """Load the voice now, in a synthesis turn (a second or two on a Pi)."""
        with self._turn(urgent=True):
            self.synth.load()

    def duration_s(self, text: str) -> float:
        return self.get(text).duration_s

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The texts of `texts` not cached yet, in a stable order."""
        return sorted({t for t in texts if not self.has(t)})

    def warm(self, texts: Iterable[str], advance: Callable[[], None] = lambda: None) -> int:
        """Make sure every text is cached, and the voice loaded for what comes up on the
        spot; `advance()` after each synthesis. Returns how many had to be synthesised."""
        self.load_voice()
        missing = self.missing(texts)
        for text in missing:
            self.get(text)
            advance()
        log.info("cue cache %s: %d synthesised", self.dir, len(missing))
        return len(missing)
