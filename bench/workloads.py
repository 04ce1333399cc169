"""The workloads whose instructions bench/instructions.py counts, run in a child process
under callgrind (bench/callgrind.py): setup first, uncounted, then one counted region
per stage and per input.

    python -m bench.workloads hear ENGINE REPORT AUDIO.npy...  (each with AUDIO.played.npy, AUDIO.json)
    python -m bench.workloads speak REPORT TEXT...

hear: the hear path as it runs live. AUDIO is what the microphone hears (16 kHz mono
int16), AUDIO.played.npy what the player handed the output device over the same time (at
the voice's rate), AUDIO.json when the coach spoke (its spans, for the listener's
self-hearing gate and echo-aware endpointer) and how much of AUDIO is a warm-up: the
warm-up goes through the whole path uncounted (the canceller learns the echo there, as in
the first seconds of a session); the rest is counted a stage at a time, each stage over
the whole counted input before the next (the same instructions as chunk by chunk, and a
count per stage):
- capture: PortAudio's 30 ms blocks through `Microphone`'s callback and queue into `Chunk`s,
  stamped with ADC times;
- echo: `LiveEcho` (the played blocks, stamped with DAC times, resampled to 16 kHz; the
  alignment of the two clocks and the echo's delay tracker; speexdsp's canceller; the
  `EchoJudge`, which hands the listener the cleaned samples once it has learnt the echo);
- listener: endpointer, recogniser, self-hearing gate and intents, on what `LiveEcho` hands it.
With "raw": true in AUDIO.json the echo stage is left out and the listener hears the
microphone as captured: the hear path before the canceller has learnt the echo (or with
none), where the coach's whole voice reaches the recogniser.

speak: each TEXT synthesised by the bundled piper voice as the cue cache does it (one
warm-up sentence first, in the setup), one region per text.

REPORT (JSON) lists the regions in order: their label and seconds of audio.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.callgrind import Regions

Chunks = list[Any]  # list[assistant.hear.capture.Chunk]; Any keeps the imports in setup
EPOCH_S = 1000.0  # the audio clock's time at the input's first sample (PortAudio's stamps)
OUTPUT_BLOCK = 1024  # frames per block the player hands the device (playback.BLOCK_FRAMES)


@dataclass(frozen=True)
class _Status:
    """PortAudio's callback flags, as sounddevice passes them."""

    input_overflow: bool = False


@dataclass(frozen=True)
class _Time:
    """PortAudio's callback times, as sounddevice passes them."""

    inputBufferAdcTime: float  # noqa: N815 (PortAudio's name)


def capture(mic: Any, samples: np.ndarray[Any, np.dtype[np.int16]], first: int) -> Chunks:
    """The microphone's side: 30 ms blocks as PortAudio delivers them (frames x 1 channel),
    the first at sample `first` of the input, through `Microphone`'s callback and queue,
    out as `Chunk`s."""
    from assistant.hear.capture import CHUNK_FRAMES
    from assistant.pcm import RATE_HZ

    starts = range(0, len(samples), CHUNK_FRAMES)
    for i in starts:
        block = samples[i : i + CHUNK_FRAMES].reshape(-1, 1)
        mic.take(block, len(block), _Time(EPOCH_S + (first + i) / RATE_HZ), _Status())
    return [next(mic.chunks(timeout_s=0.0)) for _ in starts]


class Output:
    """The player's side: the played samples handed to `LiveEcho` a block at a time, each
    stamped with the DAC time it sounds at, `playback.LATENCY` ahead of the microphone."""

    def __init__(self, played: np.ndarray[Any, np.dtype[np.int16]], rate_hz: int) -> None:
        self.played, self.rate_hz, self.frame = played, rate_hz, 0

    def hand(self, echo: Any, until_s: float) -> None:
        """Every block that starts sounding before audio time `until_s` (plus the latency)."""
        from assistant.speak.playback import LATENCY

        while self.frame < len(self.played) and self.frame / self.rate_hz < until_s + LATENCY:
            block = self.played[self.frame : self.frame + OUTPUT_BLOCK]
            dac_s = EPOCH_S + self.frame / self.rate_hz
            echo.played(dac_s, dac_s, block, self.rate_hz, self.frame)
            self.frame += len(block)


def cancel(echo: Any, output: Output) -> Callable[[Chunks], Chunks]:
    """`LiveEcho` as a stage: the player's blocks handed as they would be, every chunk cleaned."""

    def stage(chunks: Chunks) -> Chunks:
        cleaned = []
        for chunk in chunks:
            output.hand(echo, chunk.end_s)
            cleaned.append(echo.clean(chunk))
        return cleaned

    return stage


def listen(listener: Any) -> Callable[[Chunks], Chunks]:
    """The listener as a stage: every chunk fed; it passes nothing on."""

    def stage(chunks: Chunks) -> Chunks:
        for chunk in chunks:
            listener.feed(chunk)
        return []

    return stage


def played_path(audio: Path) -> Path:
    """Where the coach's output over `audio` is (the canceller's reference)."""
    return audio.with_name(f"{audio.stem}.played.npy")


def meta_path(audio: Path) -> Path:
    """Where `audio`'s warm-up, the coach's spans and the output's rate are."""
    return audio.with_name(f"{audio.stem}.json")


def _recognizer(engine: str) -> Any:
    from assistant.coach import intents

    phrases = intents.load().phrases()
    if engine == "pocketsphinx":
        from assistant.hear.sphinx_engine import SphinxRecognizer

        return SphinxRecognizer(phrases)
    from assistant.hear.vosk_engine import VoskModel, VoskRecognizer
    from tests.kit.models import english_model

    path = english_model()
    if path is None:
        raise SystemExit("the English vosk model is not fetched: run `make vosk-model`")
    return VoskRecognizer(_model(VoskModel, path), phrases)


_MODELS: dict[Path, Any] = {}


def _model(make: Any, path: Path) -> Any:
    if path not in _MODELS:
        _MODELS[path] = make(path)  # loaded once, as a session does
    return _MODELS[path]


def _track(spans: Sequence[Sequence[Any]]) -> Any:
    from assistant.coach.events import Say, SayKind
    from assistant.coach.track import SpeechTrack

    track: SpeechTrack[Say] = SpeechTrack()
    for start, end, text in spans:
        track.add(start, end, Say(start, text, end - start, SayKind.EXHALE))
    return track


def hear(engine: str, inputs: Sequence[Path]) -> list[dict[str, object]]:
    from assistant.coach import intents
    from assistant.hear.align import LiveEcho
    from assistant.hear.capture import Microphone
    from assistant.hear.echo import SpeexDspCanceller
    from assistant.hear.listen import Listener
    from assistant.pcm import RATE_HZ

    lang = intents.load()
    regions = Regions()
    done: list[dict[str, object]] = []
    for path in inputs:
        samples, played = np.load(path), np.load(played_path(path))
        meta = json.loads(meta_path(path).read_text())
        warm = round(meta["warmup_s"] * RATE_HZ)
        mic = Microphone(None)
        echo = None if meta.get("raw") else LiveEcho(SpeexDspCanceller())
        listener = Listener(_recognizer(engine), lang, _track(meta["spans"]))
        stages: list[tuple[str, Callable[[Chunks], Chunks]]] = [("listener", listen(listener))]
        if echo is not None:
            stages.insert(0, ("echo", cancel(echo, Output(played, meta["played_rate_hz"]))))
        chunks = capture(mic, samples[:warm], 0)  # the warm-up: uncounted
        for _, stage in stages:
            chunks = stage(chunks)
        seconds = (len(samples) - warm) / RATE_HZ
        learnt = echo is not None and echo.judge.learnt
        with regions.measure():
            chunks = capture(mic, samples[warm:], warm)
        done.append({"input": path.stem, "stage": "capture", "audio_s": seconds})
        for name, stage in stages:
            with regions.measure():
                chunks = stage(chunks)
            done.append({"input": path.stem, "stage": name, "audio_s": seconds})
        if echo is not None:  # did the listener hear the cleaned microphone, all through?
            done[-1]["learnt"] = learnt and echo.judge.learnt
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
