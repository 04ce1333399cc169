"""Section 5, memory: the peak RSS of a whole session per recogniser, each in its own process.

A full session is the default routine from "start back stretch" to its end on the
virtual clock, the recogniser listening to a recording as long as the session: room
noise, the command near the start, then the coach's own voice 20 dB down, as a
microphone across the room would hear it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.app import settings
from assistant.app.wiring import open_voice
from assistant.hear.capture import Chunk
from assistant.hear.listen import Listener
from assistant.hear.sphinx_engine import SphinxRecognizer
from assistant.pcm import RATE_HZ, Audio, resample
from assistant.speak.wav import read_wav, write_wav
from bench.context import MISSING, Bench, backstretch_exe, language, vosk_model
from bench.report import Figure, Section, fmt
from bench.voice import routine_file
from tests.kit.speech import CHUNK_S, Samples, add_white_noise, piper, silence

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
TARGET_MB = {"pocketsphinx": 300.0, "vosk": 300.0}  # a live session (issue 12 for vosk English)
LEAD_S = 1.0  # room noise before the command
COACH_GAIN = 0.1  # -20 dB: the coach's speaker, heard across the room
NOISE_RMS = 20.0  # LSB, as tests/speech.py's in_room
SEED = 5  # of the room noise


# Runs argv[2:] as its child and writes the child's peak RSS (KiB) to argv[1]. A child of the
# bench itself would not do: Linux keeps the high-water mark of the memory a process replaces
# at exec, so each child spawned by the bench "peaks" at least at the bench's own peak. This
# small process's child starts from a copy of its few MB instead.
PEAK_RSS = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


class RunError(RuntimeError):
    """A measured run failed; its message ends with the run's stderr."""


@dataclass
class Run:
    peak_mb: float
    wall_s: float


def spawn(bench: Bench, *command: str | Path) -> Run:
    """Run `command` to its end (from the repository, for `python -m bench...`): its own peak
    RSS (ru_maxrss from os.wait4, through `PEAK_RSS`) and wall time."""
    err, peak = bench.work / "memory-stderr.txt", bench.work / "memory-peak.txt"
    peak.unlink(missing_ok=True)
    argv = [sys.executable, "-c", PEAK_RSS, str(peak), *map(str, command)]
    with err.open("wb") as sink:
        started = time.perf_counter()
        done = subprocess.run(argv, env=bench.env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=sink)
        wall_s = time.perf_counter() - started
    if done.returncode != 0 or not peak.exists():
        text = err.read_text(errors="replace")[-800:]
        raise RunError(f"`{' '.join(argv[4:8])} ...` ended with {done.returncode}: {text}")
    run = Run(int(peak.read_text()) / 1024, wall_s)
    log.info("%s: peak %.0f MB in %.1f s", " ".join(argv[4:8]), run.peak_mb, wall_s)
    return run


def fires_at(samples: Samples) -> float | None:
    """When `backstretch run --in` (pocketsphinx) would start the session on `samples`."""
    listener = Listener(SphinxRecognizer(language().phrases()), language())
    step = round(CHUNK_S * RATE_HZ)
    for i in range(0, len(samples), step):
        chunk = samples[i : i + step]
        for command in listener.feed(Chunk(chunk, (i + len(chunk)) / RATE_HZ)):
            if command.text == "start back stretch":
                return command.fired_s
    return None


def microphone(coach_wav: Path, out: Path) -> tuple[float, float]:
    """The recording: "start back stretch" after `LEAD_S`, then the coach's session (from
    `coach_wav`) from where the session starts, 20 dB down, in room noise throughout.
    Returns (where the session starts, the recording's length), in seconds.

    The session starts where pocketsphinx hears the command, so that the coach's voice in
    the recording lines up with what the listener knows the coach is saying."""
    command = piper("start back stretch")
    head = np.concatenate([silence(LEAD_S), command, silence(2.0)])
    start_at = fires_at(add_white_noise(head, NOISE_RMS**2, SEED)) or LEAD_S + len(command) / RATE_HZ + 0.4
    coach = resample(read_wav(coach_wav), RATE_HZ).samples
    lead, offset = round(LEAD_S * RATE_HZ), round(start_at * RATE_HZ)
    mix = np.zeros(offset + len(coach), dtype=np.float64)
    mix[lead : lead + len(command)] += command
    mix[offset:] += coach * COACH_GAIN
    samples = np.clip(np.rint(mix), -32768, 32767).astype(np.int16)
    write_wav(out, Audio(add_white_noise(samples, NOISE_RMS**2, SEED), RATE_HZ))
    return start_at, len(mix) / RATE_HZ


def du_mb(path: Path) -> float:
    """Disk usage of a folder, as du counts it (allocated blocks), in MB."""
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*")) / 2**20


def what_happened(timeline: Path) -> str:
    """What the pocketsphinx session heard and did, from its timeline."""
    events = [json.loads(line) for line in timeline.read_text().splitlines() if line.strip()]
    heard = [e for e in events if e["event"] == "heard" and e["text"]]
    done = max((int(e["done"]) for e in events if e["event"] == "state"), default=0)
    said = f"{done} reps done; {len(heard)} command(s) heard"
    if len(heard) <= 1:
        return said
    return (
        f"{said}: every one after the first came from the coach's own voice in the recording, the "
        f"first {heard[1]['text']!r} at {heard[1]['t']:.0f} s (a barge-in phrase passes the self-hearing "
        "gate while the coach speaks); once the session reacts, the recorded coach no longer matches "
        "it and the rest is heard ungated"
    )


class Memory:
    """The runs of one measurement, each added to `section` as it ends."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.work = bench.work / "memory"
        self.work.mkdir(exist_ok=True)
        self.section = Section("memory", "5. Memory", "")
        routine = routine_file(bench)
        self.routine = ["--routine", str(routine)] if routine else []
        self.audio_s = 0.0
        self.mic = self.work / "mic.wav"
        self.fullsession: list[str | Path] = [sys.executable, "-m", "bench.fullsession", "--in", self.mic]

    def run(self, key: str, name: str, target: float | None, *command: str | Path) -> Run | None:
        """Spawn `command`; add its peak RSS, wall time and real-time factor (or why not)."""
        label = f"{name}: peak RSS of the session"
        try:
            run = spawn(self.bench, *command, *self.routine)
        except RunError as exc:
            self.section.add(Figure(f"memory.{key}.peak_mb", label, None, "MB", target))
            self.section.notes.append(f"{name}: the run failed: {exc}")
            return None
        peak = Figure(f"memory.{key}.peak_mb", label, run.peak_mb, "MB", target)
        self.section.add(
            peak,
            Figure(f"memory.{key}.wall_s", f"{name}: wall time of the session", run.wall_s, "s"),
            Figure(
                f"memory.{key}.rtf", f"{name}: real-time factor (wall / audio)", run.wall_s / self.audio_s
            ),
        )
        if (miss := peak.miss()) is not None:
            self.section.notes.append(f"{miss}.")
        return run

    def vosk(self, start_at: float) -> None:
        """vosk on the English model, by bench/fullsession.py, both ways; then what the model costs."""
        name, model, marks = "vosk", vosk_model(), self.work / "vosk.json"
        if model is None:
            self.section.add(Figure("memory.vosk_live.peak_mb", name, None, "MB", TARGET_MB["vosk"]))
            self.section.notes.append(f"{name}: not measured, {MISSING}.")
            return
        common = [*self.fullsession, "--engine", "vosk", "--start-at", f"{start_at:.3f}", "--report", marks]
        offline = self.run("vosk", f"{name}, --in --out", None, *common, "--out", self.work / "vosk.wav")
        live = self.run("vosk_live", f"{name}, as live", TARGET_MB["vosk"], *common, "--live")
        if offline is None or live is None:
            return
        rss = json.loads(marks.read_text())
        model_mb, disk_mb = rss["rss_after_model_mb"] - rss["rss_before_model_mb"], du_mb(model)
        self.section.add(
            Figure("memory.vosk.model_mb", "of which the vosk model (RSS after load − before)",
                   model_mb, "MB"),
            Figure("memory.vosk.model_disk_mb", "the vosk model on disk (du)", disk_mb, "MB"),
        )  # fmt: skip
        self.section.notes.append(
            f"vosk-model-small-en-us-0.15 takes {fmt(model_mb)} MB resident ({fmt(disk_mb)} MB on disk): "
            "loaded without its n-gram language model (graph/Gr.fst, which only decoding without a grammar "
            "uses; vosk_engine.runtime_model_dir), each grammar compiled against its HCLr."
        )


def read_whole_mb(bench: Bench, wav: Path) -> float:
    """What `read_wav` (wav_chunks, behind `run --in`) adds to a process's peak reading `wav`."""
    load = "import sys; from pathlib import Path; from assistant.speak.wav import read_wav"
    alone = spawn(bench, sys.executable, "-c", load)
    reading = spawn(bench, sys.executable, "-c", load + "; read_wav(Path(sys.argv[1]))", wav)
    return reading.peak_mb - alone.peak_mb


def measure(bench: Bench) -> Section:
    m = Memory(bench)
    script, config, timeline = m.work / "start.txt", m.work / "sphinx.yaml", m.work / "sphinx.jsonl"
    script.write_text("0 start back stretch\n")
    config.write_text("stt:\n  engine: pocketsphinx\n")
    cues = open_voice(settings.Settings()).dir
    cached = len(list(cues.glob("*.wav")))
    render: list[str | Path] = [backstretch_exe(), "run", "--script", script, "--quiet", "--out"]
    first = spawn(bench, *render, m.work / "coach.wav", *m.routine)  # also the coach for the microphone
    spoken = len(list(cues.glob("*.wav"))) - cached  # lines no cache held before the session
    start_at, m.audio_s = microphone(m.work / "coach.wav", m.work / "mic.wav")
    m.section.how = _how(m.audio_s)
    m.section.add(
        Figure("memory.audio_s", "recording listened to (session and lead)", m.audio_s, "s"),
        Figure("memory.first.peak_mb", f"no recogniser, first session ({spoken} line(s) synthesised "
               "on the spot): peak RSS", first.peak_mb, "MB"),
    )  # fmt: skip
    m.run("reference", "no recogniser (--script --out)", None, *render, m.work / "again.wav")
    io: list[str | Path] = ["--in", m.mic, "--out", m.work / "sphinx.wav", "--timeline", timeline, "--quiet"]
    sphinx = [backstretch_exe(), "--config", config, "run", *io]
    offline = m.run("pocketsphinx", "pocketsphinx, --in --out", None, *sphinx)
    if offline is not None:
        m.section.notes.append(f"pocketsphinx session: {what_happened(timeline)}.")
    live = m.run("pocketsphinx_live", "pocketsphinx, as live", TARGET_MB["pocketsphinx"], *m.fullsession,
                 "--engine", "pocketsphinx", "--live")  # fmt: skip
    m.vosk(start_at)
    read_mb = read_whole_mb(bench, m.mic)
    m.section.add(Figure("memory.read_wav_mb", "reading the whole recording (read_wav): peak RSS added",
                         read_mb, "MB"))  # fmt: skip
    if offline is not None and live is not None and offline.peak_mb > live.peak_mb + 50:
        m.section.notes.append(
            "What limits the --in --out path is the recording and the rendering, not the recogniser: "
            f"read_wav (behind wav_chunks) reads the whole {fmt(m.mic.stat().st_size / 2**20)} MB "
            f"recording at once, adding {fmt(read_mb)} MB to the peak, and --out holds "
            f"the whole session's audio to the end. Fed a block at a time with nothing rendered, the "
            f"same pocketsphinx session peaks at {fmt(live.peak_mb)} MB, the figure the targets apply "
            "to (a live session holds neither)."
        )
    return m.section


def _how(audio_s: float) -> str:
    return (
        "Each configuration is a separate process running a whole session of the default routine, "
        "from *start back stretch* to its end, on the virtual clock (as fast as the CPU allows). Its "
        "peak RSS is `ru_maxrss` from `os.wait4`, taken by a small forking parent: Linux carries the "
        "high-water mark of the memory a process replaces at exec into the new program's, so a child "
        "spawned straight from the bench would report at least the bench's own peak. The microphone "
        f"is a {fmt(audio_s)} s recording at 16 kHz: white room noise (20 LSB rms), *start back "
        "stretch* in the bundled piper voice after 1 s, and the coach's session (rendered first) "
        "20 dB down from where pocketsphinx starts it. **No recogniser**: `backstretch run --script "
        "--out` (its first run synthesises the session's lines no cache held; the second is the "
        "reference). **--in --out**: the product's offline path, `backstretch --config C run --in "
        "mic.wav --out session.wav` with `stt.engine: pocketsphinx`, which reads the whole recording "
        "and holds the whole rendering. **As live**: `python -m bench.fullsession --live`, the same "
        "pipeline fed the recording a 30 ms block at a time and rendering nothing, as a live session "
        "holds neither. **vosk**: `bench.fullsession --engine vosk` puts vosk on the English model "
        "(vosk-model-small-en-us-0.15, from `make vosk-model`) in the same pipeline, both ways, starts "
        "the session textually where pocketsphinx started it (so both run the same session whatever "
        "each hears), and reports its RSS before and after loading the model. Wall times ran beside "
        "the real-time session."
    )
