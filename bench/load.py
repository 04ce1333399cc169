"""2. Recogniser load: real-time factor on speech, and share of one core while listening.

Each recogniser is fed 60 s of room noise alone ("silence": white noise of 20 LSB
rms, about -64 dBFS, what a quiet bedroom gives a microphone) and 60 s of speech
(sentences of the routine text and chatter in the bundled voice, back to back,
over the same noise), in its own block size, as a microphone delivers it. The
figure is the process CPU time over the audio time: 0.02 is 2 % of one core, and
for speech it is the real-time factor. Offline feeding counts the recogniser and
our Python around it; a live session adds the capture thread (PortAudio's
callback and a queue), which is not in these figures.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import numpy as np

from assistant.coach.intents import IntentSet
from assistant.hear.sphinx_engine import SphinxRecognizer
from assistant.pcm import RATE_HZ
from bench.context import MISSING, Bench, language, vosk_model
from bench.latency import BASELINE_BLOCK, CHUNK, ROOM_NOISE, listener_feed
from bench.report import Figure, Section
from tests.kit import speech
from tests.kit.corpus import CHATTER, ROUTINE_TEXT

log = logging.getLogger(__name__)
Samples = speech.Samples
Feed = Callable[[Samples, float], object]
TARGET_SILENCE_PCT = 3.0
TARGET_RTF = 0.1


def streams(seconds: float) -> dict[str, Samples]:
    n = round(seconds * RATE_HZ)
    quiet = speech.add_white_noise(speech.silence(seconds), ROOM_NOISE, seed=1)
    parts: list[Samples] = []
    while sum(len(p) for p in parts) < n:
        for text in ROUTINE_TEXT + CHATTER:
            parts += [np.asarray(speech.piper(text)), speech.silence(0.3)]
    talk = speech.add_white_noise(np.concatenate(parts)[:n], ROOM_NOISE, seed=2)
    return {"silence": quiet, "speech": talk}


def cpu_share(feed: Feed, samples: Samples, block: int) -> float:
    """Process CPU seconds per audio second, feeding `samples` in `block`s."""
    started = time.process_time()
    for i in range(0, len(samples), block):
        chunk = samples[i : i + block]
        feed(chunk, (i + len(chunk)) / RATE_HZ)
    return (time.process_time() - started) / (len(samples) / RATE_HZ)


def _engines(lang: IntentSet) -> dict[str, tuple[str, Callable[[], Feed], int]]:
    """name -> (label, a fresh recogniser's feed, block size)."""
    engines: dict[str, tuple[str, Callable[[], Feed], int]] = {
        # Behind the Listener, as in a session: it also decides which commands may end early.
        "pocketsphinx": ("pocketsphinx", lambda: listener_feed(SphinxRecognizer(lang.phrases()), lang), CHUNK)
    }
    path = vosk_model()
    if path is None:
        return engines
    import vosk

    from assistant.hear.vosk_engine import VoskModel, VoskRecognizer

    ours = VoskModel(path)
    grammar = json.loads(ours.grammar(lang.phrases()).json)  # our phrases and [unk]
    vosk.SetLogLevel(-1)
    plain = vosk.Model(str(path))

    def mic_example(grammar: list[str]) -> Callable[[], Feed]:
        """vosk's microphone example, with `grammar` (none when empty)."""

        def make() -> Feed:
            rec = vosk.KaldiRecognizer(
                plain, RATE_HZ, *([json.dumps(grammar, ensure_ascii=False)] * bool(grammar))
            )
            return lambda chunk, end_s: rec.AcceptWaveform(chunk.tobytes()) and rec.Result()

        return make

    engines["vosk"] = ("vosk", lambda: listener_feed(VoskRecognizer(ours, lang.phrases()), lang), CHUNK)
    engines["baseline"] = ("baseline: vosk's example with our grammar", mic_example(grammar), BASELINE_BLOCK)
    engines["example"] = ("vosk's example as is (no grammar)", mic_example([]), BASELINE_BLOCK)
    return engines


def measure(bench: Bench) -> Section:
    seconds = 5.0 if bench.quick else 60.0
    section = Section("load", "2. Recogniser load", __doc__.split("\n\n", 1)[1])
    audio = streams(seconds)
    shares: dict[str, dict[str, float]] = {}
    engines = _engines(language())
    for key, (label, make, block) in engines.items():
        shares[key] = {kind: cpu_share(make(), samples, block) for kind, samples in audio.items()}
        log.info("%s: %s", label, {k: round(v, 4) for k, v in shares[key].items()})
    base = shares.get("baseline")
    for key, (label, _, _) in engines.items():
        ours = key in ("pocketsphinx", "vosk")
        share = shares[key]
        section.add(
            Figure(f"{key}.silence_pct", f"{label}: listening to silence", round(100 * share["silence"], 2),
                   "% of a core", TARGET_SILENCE_PCT if ours else None,
                   baseline=round(100 * base["silence"], 2) if ours and base else None),
            Figure(f"{key}.speech_pct", f"{label}: listening to speech", round(100 * share["speech"], 2),
                   "% of a core", baseline=round(100 * base["speech"], 2) if ours and base else None),
            Figure(f"{key}.rtf", f"{label}: real-time factor on speech", round(share["speech"], 4),
                   "× real time", TARGET_RTF if ours else None,
                   baseline=round(base["speech"], 4) if ours and base else None),
        )  # fmt: skip
    path = vosk_model()
    if path is None:
        section.notes.append(f"vosk: not measured, {MISSING}")
    else:
        size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        section.notes.append(
            f"vosk: vosk-model-small-en-us-0.15 ({size_mb:.0f} MB on disk), behind the Listener with "
            "every command phrase and [unk], as a session runs it."
        )
    return section
