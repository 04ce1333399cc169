"""A spy on the voice, at our seam (`Synthesizer`): real piper, each synthesis noted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from assistant.pcm import Audio
from assistant.speak.tts import Synthesizer


class Spy(Synthesizer):
    """The real voice (already loaded), noting each synthesis as it starts and ends, with
    the thread; the worker's synthesis number `hold_at` waits at its start for `release`."""

    def __init__(self, loaded: Synthesizer, hold_at: int = 0) -> None:
        super().__init__(loaded.voice, loaded.settings)
        loaded.load()
        self._piper = loaded._piper  # one ONNX session for the module: loading takes seconds
        self.log: list[tuple[str, str, str]] = []  # (start or end, text, thread)
        self.hold_at = hold_at
        self.holding, self.release = threading.Event(), threading.Event()
        self._lock = threading.Lock()

    def synthesize(self, text: str, between: Callable[[], None] = lambda: None) -> Audio:
        thread = threading.current_thread().name
        with self._lock:
            self.log.append(("start", text, thread))
            worker_starts = sum(1 for e, _, t in self.log if e == "start" and t == "cues")
        if thread == "cues" and worker_starts == self.hold_at:
            self.holding.set()
            assert self.release.wait(60), "never released"
        audio = super().synthesize(text, between)
        with self._lock:
            self.log.append(("end", text, thread))
        return audio

    def made(self) -> list[str]:
        return [text for event, text, _ in self.log if event == "end"]


def until(done: Callable[[], bool]) -> None:
    """Wait for another thread to reach a state (a guard, not a timing: 60 s means a hang)."""
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0.001)
