"""`python -m bench.fullsession`: a whole session on a recording, for its memory.

The pipeline of `backstretch run --in MIC [--out WAV]` (app/wiring.py), with two options
the CLI lacks:
- `--engine vosk`: vosk on the English model of `make vosk-model` (the CLI finds vosk models
  only where users install them). `--start-at` starts the session textually, so that
  every engine runs the same session; the recogniser still listens to the whole recording.
- `--live`: the recording is read a block at a time and nothing is rendered, as a live
  session holds neither the whole recording nor the whole rendering.

With `--report FILE` it writes JSON: the RSS and peak RSS (MB) before and after loading the
recogniser, so that the model's share can be told apart from the rest of the pipeline.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import wave
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from assistant.app import settings
from assistant.app.offline import run_audio
from assistant.app.wiring import Needs, build
from assistant.coach import intents
from assistant.hear.capture import CHUNK_FRAMES, Chunk, wav_chunks
from assistant.hear.engines import open_recognizer
from assistant.hear.recognizer import Recognizer
from assistant.pcm import RATE_HZ
from bench.context import MISSING, vosk_model

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """This process's peak resident set so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident set now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def streamed(mic: Path) -> Iterator[Chunk]:
    """A 16 kHz mono 16-bit WAV as microphone chunks, read a block at a time, as a live
    microphone delivers them (wav_chunks reads and converts the whole file first)."""
    with wave.open(str(mic), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE_HZ, 1, 2):
            raise SystemExit(f"{mic}: --live takes 16 kHz mono 16-bit WAV only")
        end = 0
        while block := wav.readframes(CHUNK_FRAMES):
            samples = np.frombuffer(block, "<i2").astype(np.int16)
            end += len(samples)
            yield Chunk(samples, end / RATE_HZ)


def recognizer(engine: str) -> Callable[[Sequence[str]], Recognizer]:
    """The bench's recogniser, as the CLI opens it; vosk on the English model of the bench."""
    if engine == "pocketsphinx":
        return lambda phrases: open_recognizer("pocketsphinx", phrases)
    model_dir = vosk_model()
    if model_dir is None:
        raise SystemExit(f"vosk: {MISSING}")
    return lambda phrases: open_recognizer("vosk", phrases, str(model_dir))


def run(args: argparse.Namespace) -> dict[str, float]:
    """The session, as `backstretch run --in` (and `--out`) builds it; returns RSS marks (MB)."""
    config = settings.Settings(routine=args.routine)
    language = intents.load()
    make = recognizer(args.engine)
    marks: dict[str, float] = {}

    def measured(phrases: Sequence[str]) -> Recognizer:
        marks.update(rss_before_model_mb=rss_mb(), peak_before_model_mb=peak_rss_mb())
        made = make(phrases)
        marks.update(rss_after_model_mb=rss_mb(), peak_after_model_mb=peak_rss_mb())
        return made

    needs = Needs(voice=True, listen=True, out=args.out, recognizer=measured)
    pipeline = build(config, config.load_routine(), language, needs)
    session, listener, dialogue = pipeline.session, pipeline.listener, pipeline.dialogue
    assert listener is not None
    if args.start_at is not None and not session.hear("start back stretch", args.start_at):
        raise SystemExit("the session did not start")
    run_audio(session, listener, streamed(args.mic) if args.live else wav_chunks(args.mic))
    log.info("session over: %s, %d reps done", dialogue.state.value, dialogue.done)
    return marks | {"peak_mb": peak_rss_mb(), "reps_done": dialogue.done}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fullsession", description=__doc__.splitlines()[0])
    parser.add_argument("--in", dest="mic", type=Path, required=True, help="the microphone recording")
    parser.add_argument("--out", type=Path, help="render the coach's voice to this WAV")
    parser.add_argument("--engine", choices=("vosk", "pocketsphinx"), default="vosk")
    parser.add_argument("--live", action="store_true", help="read the recording a block at a time")
    parser.add_argument("--start-at", type=float, help="start the session textually at this time (s)")
    parser.add_argument("--routine", help="a routine file (default: the built-in one)")
    parser.add_argument("--report", type=Path, help="write the RSS marks here, as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    marks = run(args)
    if args.report is not None:
        args.report.write_text(json.dumps(marks))
    print(json.dumps(marks), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
