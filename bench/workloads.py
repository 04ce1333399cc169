"""The workloads whose instructions bench/instructions.py counts, run in a child process
under callgrind (bench/callgrind.py): setup first, uncounted, then one counted region
per stage and per input.

    python -m bench.workloads hear ENGINE REPORT AUDIO.npy...  (each with AUDIO.played.npy)
    python -m bench.workloads speak REPORT TEXT...

hear: each AUDIO (16 kHz mono int16, as the microphone hands it over) goes through
the stages in turn, each stage over the whole input before the next (the same
instructions as chunk by chunk, and a count per stage): capture (PortAudio's blocks
through `Microphone`'s callback and queue into 30 ms `Chunk`s), the echo canceller
(speexdsp, `SpeexDspCanceller` behind an `EchoStage`, given what the coach played over
the same samples: AUDIO's `NAME.played.npy` beside it), then the listener (endpointer,
recogniser, self-hearing gate, intents). The listener hears the microphone as captured,
not the canceller's output, so its count stays the worst case (the coach's whole voice
reaching the recogniser: no canceller, or one not converged) and the canceller's row is
its own cost, added.

speak: each TEXT synthesised by the bundled piper voice as the cue cache does it (one
warm-up sentence first, in the setup), one region per text.

REPORT (JSON) lists the regions in order: their label and seconds of audio.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.callgrind import Regions

Chunks = list[Any]  # list[assistant.hear.capture.Chunk]; Any keeps the imports in setup


@dataclass(frozen=True)
class _Status:
    """PortAudio's callback flags, as sounddevice passes them."""

    input_overflow: bool = False


def capture(samples: np.ndarray[Any, np.dtype[np.int16]]) -> Chunks:
    """The microphone's side: 30 ms blocks as PortAudio delivers them (frames x 1 channel),
    through `Microphone`'s callback and queue, out as `Chunk`s."""
    from assistant.hear.capture import CHUNK_FRAMES, Microphone

    mic = Microphone(None)
    blocks = [samples[i : i + CHUNK_FRAMES].reshape(-1, 1) for i in range(0, len(samples), CHUNK_FRAMES)]
    for block in blocks:
        mic._callback(block, len(block), None, _Status())
    return list(itertools.islice(mic.chunks(timeout_s=0.0), len(blocks)))


def listen(listener: Any) -> Callable[[Chunks], Chunks]:
    """The listener as a stage: every chunk fed, then flushed; it passes nothing on."""

    def stage(chunks: Chunks) -> Chunks:
        heard = [c for chunk in chunks for c in listener.feed(chunk)]
        if chunks:
            heard += listener.flush(chunks[-1].end_s)
        return []

    return stage


def cancel(canceller: Any, played: np.ndarray[Any, np.dtype[np.int16]]) -> Callable[[Chunks], Chunks]:
    """The echo canceller as a stage: every chunk through an `EchoStage` with the samples
    played over it as the reference. It passes the chunks on as they came (see above)."""
    from assistant.hear.echo import EchoStage

    def stage(chunks: Chunks) -> Chunks:
        echo, at = EchoStage(canceller), 0
        for chunk in chunks:
            n = len(chunk.samples)
            echo.feed(chunk.samples, played[at : at + n])
            at += n
        return chunks

    return stage


def hear_stages(
    canceller: Any, played: np.ndarray[Any, np.dtype[np.int16]], listener: Any
) -> list[tuple[str, Callable[[Chunks], Chunks]]]:
    """The hear path after capture, in order."""
    return [("canceller", cancel(canceller, played)), ("listener", listen(listener))]


def played_path(audio: Path) -> Path:
    """Where the coach's output over `audio` is (the canceller's reference)."""
    return audio.with_name(f"{audio.stem}.played.npy")


def _recognizers(engine: str, count: int) -> list[Any]:
    from assistant.coach import intents

    phrases = intents.load().phrases()
    if engine == "pocketsphinx":
        from assistant.hear.sphinx_engine import SphinxRecognizer

        return [SphinxRecognizer(phrases) for _ in range(count)]
    from assistant.hear.vosk_engine import VoskModel, VoskRecognizer
    from tests.kit.models import english_model

    path = english_model()
    if path is None:
        raise SystemExit("the English vosk model is not fetched: run `make vosk-model`")
    model = VoskModel(path)  # loaded once, as a session does
    return [VoskRecognizer(model, phrases) for _ in range(count)]


def hear(engine: str, inputs: Sequence[Path]) -> list[dict[str, object]]:
    from assistant.coach import intents
    from assistant.hear.echo import SpeexDspCanceller
    from assistant.hear.listen import Listener
    from assistant.pcm import RATE_HZ

    lang = intents.load()
    audio = [np.load(path) for path in inputs]
    played = [np.load(played_path(path)) for path in inputs]
    # Every listener and canceller is made before the first region: a fresh one per input.
    listeners = [Listener(rec, lang) for rec in _recognizers(engine, len(inputs))]
    cancellers = [SpeexDspCanceller() for _ in inputs]
    regions = Regions()
    done: list[dict[str, object]] = []
    for path, samples, listener, canceller, output in zip(
        inputs, audio, listeners, cancellers, played, strict=True
    ):
        seconds = len(samples) / RATE_HZ
        if len(output) != len(samples):
            raise SystemExit(f"{played_path(path)}: {len(output)} samples, {path}: {len(samples)}")
        with regions.measure():
            chunks = capture(samples)
        done.append({"input": path.stem, "stage": "capture", "audio_s": seconds})
        for name, stage in hear_stages(canceller, output, listener):
            with regions.measure():
                chunks = stage(chunks)
            done.append({"input": path.stem, "stage": name, "audio_s": seconds})
    return done


def speak(texts: Sequence[str]) -> list[dict[str, object]]:
    from assistant.app.settings import Settings
    from assistant.speak import voices
    from assistant.speak.tts import SpeechSettings, Synthesizer

    # Fixed prosody: the same audio, and so the same instructions, in every run.
    synth = Synthesizer(voices.resolve(Settings().voice), SpeechSettings(varied=False))
    synth.synthesize("Ready.")  # loads the voice and warms onnxruntime up, as the first cue does
    regions = Regions()
    done: list[dict[str, object]] = []
    for text in texts:
        with regions.measure():
            audio = synth.synthesize(text)
        done.append({"input": text, "stage": "piper", "audio_s": len(audio.samples) / audio.rate_hz})
    return done


def main(argv: Sequence[str]) -> int:
    what, rest = argv[0], list(argv[1:])
    if what == "hear":
        engine, report, inputs = rest[0], Path(rest[1]), [Path(p) for p in rest[2:]]
        done = hear(engine, inputs)
    elif what == "speak":
        report, done = Path(rest[0]), speak(rest[1:])
    else:
        print(f"python -m bench.workloads: no workload {what!r}; choose hear or speak", file=sys.stderr)
        return 2
    report.write_text(json.dumps(done, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
