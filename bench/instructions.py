"""10. CPU in instructions: the hear and speak paths per second of audio, and a Raspberry Pi estimate.

Counted by valgrind's callgrind (bench/callgrind.py): each workload runs in a child
process (bench/workloads.py) whose setup (imports, loading the recogniser or the voice)
is not counted; each counted region is opened and closed by valgrind client requests,
so a count holds exactly one stage on one input, every thread included. Instruction
counts do not depend on how busy the machine is, unlike CPU time: each workload runs
twice and the spread between the runs is reported.

- Hear path, per engine, as it runs live (bench/workloads.py): capture (PortAudio's 30 ms
  blocks through `Microphone`'s callback and queue into chunks stamped with ADC times),
  echo (`LiveEcho`: the player's blocks at the voice's 22,050 Hz stamped with DAC times
  and resampled to 16 kHz, the alignment, the echo's delay tracker, speexdsp on 10 ms
  frames, `EchoJudge`) and the listener (endpointer, recogniser, gate, intents) on what
  `LiveEcho` hands on, with the coach's spans (its gate and echo-aware endpointer). Inputs:
  the coach speaking (the microphone hears the coach's own cues, the bundled voice with
  fixed prosody, 0.3 s apart, under room noise of 20 LSB rms) and quiet (that noise
  alone), each after WARM_S of other cues, uncounted, in which the canceller learns the
  echo, as a session's first seconds do; and "heard raw": the coach speaking with no
  warm-up and no canceller, the listener on the microphone as captured (a canceller not
  yet learnt, or none: the coach's whole voice reaches the recogniser). Stage "total"
  adds up capture, echo and listener.
- Speak path: piper synthesising the shortest cues (SPEAK_CUES of them: the bundled
  voice, fixed prosody, 1 intra-op thread, the voice loaded and warmed up first; only
  the synthesis calls are counted), per second of speech produced. Short cues, because
  piper runs about 1000 times slower under callgrind than on the CPU; a short cue is
  the dearest per second (the fixed cost of a call weighs most), so the figure errs high.
  `python -m bench --only instructions.speak` counts it alone, keeping the hear figures.

The Raspberry Pi figures are an **estimate**: x86-64 instructions counted here, times an
assumed ISA factor for AArch64, over an assumed instruction rate of one Pi core (clock
times an assumed sustained IPC; the sources are in the notes). A share above 100 % means
one core cannot keep up in real time.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from assistant.coach import routine
from assistant.coach.dialogue import foreseeable_texts
from assistant.pcm import RATE_HZ
from bench import callgrind, workloads
from bench.context import MISSING, Bench, language, vosk_model
from bench.latency import ROOM_NOISE
from bench.report import Figure, Section
from tests.kit import speech

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
TARGET_PI4_PCT = 10.0  # issue 14: the whole hear path while the coach speaks, of one Pi 4 core
RUNS = 2
SPEECH_S = 3.0  # at least this much of the coach's cues (whole cues): callgrind runs ~100x slower
QUIET_S = 4.0
WARM_S = 15.0  # other cues first, uncounted: the canceller learns the echo there (steady after ~15 s)
OUTPUT_RATE_HZ = 22050  # the bundled voice's rate: what the player hands the device
SOURCES_LABEL = {  # the inputs of the hear workload, as the figures name them
    "speech": "coach speaking",
    "quiet": "quiet",
    "raw": "coach speaking, heard raw",
}
GAP_S = 0.3
# piper under callgrind: onnxruntime takes about 100 CPU-s to load uninstrumented, then
# SPEAK_CUE_MEASURED below; a 4 s cue had not finished after 5 CPU-min.
SPEAK_CUES = 2


@dataclass(frozen=True)
class Core:
    """One CPU core's sustained instruction rate: clock times an assumed IPC."""

    name: str
    clock_hz: float
    ipc: float

    @property
    def per_s(self) -> float:
        return self.clock_hz * self.ipc


# Raspberry Pi 4: BCM2711, 4x Cortex-A72 at 1.5 GHz (1.8 GHz on later boards: 1.5 is the
# worst case). Pi 5: BCM2712, 4x Cortex-A76 at 2.4 GHz. Sustained IPC assumed: 1.0 for the
# A72 (a third of its 3-wide decode; interpreter and DSP code with cache misses), 1.3 for the
# A76 (Arm: about 25 % more integer IPC than the A75, itself above the A72). Cross-check:
# Raspberry Pi rates the Pi 5 at two to three times a Pi 4's CPU performance, and
# 2.4 GHz x 1.3 over 1.5 GHz x 1.0 is 2.1x.
PI4 = Core("Raspberry Pi 4 core (Cortex-A72, 1.5 GHz, IPC 1.0)", 1.5e9, 1.0)
PI5 = Core("Raspberry Pi 5 core (Cortex-A76, 2.4 GHz, IPC 1.3)", 2.4e9, 1.3)
# AArch64 needs more instructions than x86-64 for the same work: no memory operands (loads
# and stores are separate instructions), and 128-bit NEON against the 256-bit AVX2 that
# numpy, Kaldi's BLAS and onnxruntime pick here. Assumed 1.25x overall; vector kernels alone
# could take up to 2x. Counting under qemu-aarch64 (issue 14's arm64 root) would replace it.
ISA_FACTOR = 1.25
SOURCES = (
    "Sources. Pi 4: BCM2711, quad Cortex-A72 at 1.5 GHz, 3-way instruction decode "
    "(sandsoftwaresound.net/raspberry-pi-4-arm-cortex-a72-processor/); 1.8 GHz on later boards "
    "(Zephyr's rpi_4b board page: 'Quad core Cortex-A72 (ARM v8) 64-bit SoC @ 1.8GHz'). Pi 5: "
    "BCM2712, quad Cortex-A76 at 2.4 GHz, 'three microarchitectural generations beyond "
    "Cortex-A72 ... more instructions per clock' (Raspberry Pi's launch text, quoted at "
    "singleboard.org/Raspberry_Pi/pi_5_b/), 'two to three times the CPU performance' of a Pi 4 "
    "(circuitdigest.com/news/the-new-raspberry-pi-5-is-here-faster-than-ever). A76 IPC: Arm "
    "projects ~25 % more integer IPC than the A75 (anandtech.com/show/12785, 'Performance & "
    "Power Projections'). The sustained IPCs 1.0 and 1.3 are our assumptions, not measurements.",
    "7-zip 'MIPS' are not instructions per second: 7-Zip rates them against a reference CPU "
    "(7-cpu.com: 'MIPS values are normalized with Intel Core 2 cpu'), and sbc-bench's Pi 4 B "
    "figures of 5500-6550 (ThomasKaiser/sbc-bench, Results.md, 1.5-1.8 GHz) are for all four "
    "cores: not used here.",
)


def pi_share_pct(per_audio_s: float, core: Core) -> float:
    """Percent of one `core` that `per_audio_s` x86-64 instructions per second of audio take."""
    return 100.0 * per_audio_s * ISA_FACTOR / core.per_s


def spread_pct(values: Sequence[float]) -> float:
    """(max - min) / mean, in percent: how far the runs disagree."""
    mean = statistics.fmean(values)
    return 100.0 * (max(values) - min(values)) / mean if mean else 0.0


Record = dict[str, object]  # a region: input, stage, audio_s, instructions


def _num(record: Record, key: str) -> float:
    value = record[key]
    if not isinstance(value, int | float):
        raise TypeError(f"{key} of {record} is not a number")
    return float(value)


def _rates(run: Sequence[Record]) -> dict[tuple[str, str], float]:
    """(input, stage) -> instructions per second of audio; stage "total" sums the stages."""
    out: dict[tuple[str, str], float] = {}
    for r in run:
        key = (str(r["input"]), str(r["stage"]))
        out[key] = out.get(key, 0.0) + _num(r, "instructions") / _num(r, "audio_s")
        total = (str(r["input"]), "total")
        out[total] = out.get(total, 0.0) + _num(r, "instructions") / _num(r, "audio_s")
    return out


def _per_speech_s(run: Sequence[Record]) -> float:
    instructions = sum(_num(r, "instructions") for r in run)
    return instructions / sum(_num(r, "audio_s") for r in run)


def figures(section: Section, hear: dict[str, list[list[Record]]], speak: list[list[Record]]) -> float:
    """Add the figures of `hear` (engine -> runs) and `speak` (runs) to `section`; returns
    the largest spread between runs, in percent."""
    spreads: list[float] = []
    for engine, runs in hear.items():
        rates = [_rates(run) for run in runs]
        for key in rates[0]:
            values = [r[key] for r in rates]
            spreads.append(spread_pct(values))
            mean = statistics.fmean(values)
            source, stage = key
            label = f"{engine}, {SOURCES_LABEL[source]}, {stage}"
            prefix = f"{engine}.{source}.{stage}"
            section.add(Figure(f"{prefix}.minstr_per_s", f"{label}: instructions (x86-64)",
                               round(mean / 1e6, 1), "M per s of audio"))  # fmt: skip
            if stage == "total":
                target = TARGET_PI4_PCT if source == "speech" else None
                section.add(
                    Figure(f"{prefix}.pi4_pct", f"{label}: Raspberry Pi 4 (estimate)",
                           round(pi_share_pct(mean, PI4), 1), "% of a core", target),
                    Figure(f"{prefix}.pi5_pct", f"{label}: Raspberry Pi 5 (estimate)",
                           round(pi_share_pct(mean, PI5), 1), "% of a core"),
                )  # fmt: skip
    if speak:
        spreads.append(speak_figures(section, speak))
    largest = max(spreads, default=0.0)
    section.add(Figure("spread_pct", f"largest spread between {RUNS} runs", round(largest, 3), "%", 2.0))
    return largest


def speak_figures(section: Section, speak: list[list[Record]]) -> float:
    """Add piper's figures of `speak` (runs) to `section`; returns their spread, in percent."""
    values = [_per_speech_s(run) for run in speak]
    mean = statistics.fmean(values)
    per_cue = [[_num(r, "instructions") for r in run] for run in speak]
    section.add(
        Figure("piper.minstr_per_s", "piper, cue synthesis: instructions (x86-64)",
               round(mean / 1e6, 1), "M per s of speech"),
        Figure("piper.pi4_pct", "piper, cue synthesis: Raspberry Pi 4 (estimate)",
               round(pi_share_pct(mean, PI4), 1), "% of a core per real-time speech"),
        Figure("piper.pi5_pct", "piper, cue synthesis: Raspberry Pi 5 (estimate)",
               round(pi_share_pct(mean, PI5), 1), "% of a core per real-time speech"),
    )  # fmt: skip
    for i, record in enumerate(speak[0]):
        cue = statistics.fmean(run[i] for run in per_cue)
        section.add(
            Figure(f"piper.cue{i + 1}.minstr_per_s", f"piper, {record['input']!r} "
                   f"({_num(record, 'audio_s'):.2f} s): instructions (x86-64)",
                   round(cue / _num(record, "audio_s") / 1e6, 1), "M per s of speech"),
        )  # fmt: skip
    return spread_pct(values)


def speak_texts() -> list[str]:
    """The SPEAK_CUES shortest cues (by text; ties alphabetical)."""
    texts = foreseeable_texts(routine.load(), language(), "detailed")
    return sorted(texts, key=lambda t: (len(t), t))[:SPEAK_CUES]


def _cues(seconds: float, skip: int = 0) -> tuple[list[str], list[speech.Samples]]:
    """The first cues (sorted, after the first `skip`) that together last `seconds`,
    rendered at 16 kHz."""
    texts, clips = [], []
    for text in sorted(foreseeable_texts(routine.load(), language(), "detailed"))[skip:]:
        texts.append(text)
        clips.append(np.asarray(speech.piper(text, varied=False)))
        if sum(len(c) for c in clips) >= seconds * RATE_HZ:
            break
    return texts, clips


def _talk(clips: Sequence[speech.Samples], at_s: float) -> tuple[speech.Samples, list[list[object]]]:
    """The clips GAP_S apart (each followed by a gap), and their spans from `at_s` on."""
    gap = speech.silence(GAP_S)
    spans: list[list[object]] = []
    for clip in clips:
        spans.append([at_s, at_s + len(clip) / RATE_HZ, ""])
        at_s += (len(clip) + len(gap)) / RATE_HZ
    return np.concatenate([part for clip in clips for part in (clip, gap)]), spans


def _heard(output: speech.Samples, n: int) -> speech.Samples:
    """The first `n` samples of `output` (at OUTPUT_RATE_HZ) as a 16 kHz microphone hears
    it: band-limited as the reference `LiveEcho` makes of it, so its echo can be cancelled."""
    heard = np.asarray(soxr.resample(output, OUTPUT_RATE_HZ, RATE_HZ), dtype=np.int16)[:n]
    return np.concatenate([heard, np.zeros(n - len(heard), np.int16)])


def _material(folder: Path, speech_s: float, quiet_s: float, warm_s: float) -> tuple[list[str], list[Path]]:
    """The inputs of the hear workload (bench/workloads.py): the coach speaking and quiet,
    each after a warm-up of other cues (the canceller learns the echo there); and the coach
    speaking heard raw (the listener on the microphone as captured)."""
    texts, clips = _cues(speech_s)
    warm_texts, warm_clips = _cues(warm_s, skip=len(texts))
    warm, warm_spans = _talk(warm_clips, 0.0)
    at_s = len(warm) / RATE_HZ
    talk, spans = _talk(clips, at_s)
    for span, text in zip(warm_spans + spans, warm_texts + texts, strict=True):
        span[2] = text
    quiet = speech.silence(quiet_s)
    # What the coach played, handed to the device at the voice's rate; the microphone hears
    # it as it sounded (the device's own latency is in its DAC times), at 16 kHz, in the
    # room's noise.
    inputs = {
        "quiet": (np.concatenate([warm, quiet]), {"warmup_s": at_s, "spans": warm_spans}),
        "speech": (np.concatenate([warm, talk]), {"warmup_s": at_s, "spans": warm_spans + spans}),
        "raw": (talk, {"warmup_s": 0.0, "spans": _talk(clips, 0.0)[1], "raw": True}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, (name, (played, meta)) in enumerate(inputs.items()):
        path = folder / f"{name}.npy"
        output = soxr.resample(played, RATE_HZ, OUTPUT_RATE_HZ)
        np.save(path, speech.add_white_noise(_heard(output, len(played)), ROOM_NOISE, seed=seed + 1))
        np.save(workloads.played_path(path), output)
        workloads.meta_path(path).write_text(json.dumps({**meta, "played_rate_hz": OUTPUT_RATE_HZ}))
        paths.append(path)
    return texts, paths


def _counted(bench: Bench, folder: Path, args: list[str]) -> list[Record]:
    """One run of `python -m bench.workloads ARGS` under callgrind: its regions, counted."""
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "regions.json"
    env = {**bench.env(), "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    head = args[:2] if args[0] == "hear" else args[:1]  # hear ENGINE REPORT AUDIO... / speak REPORT TEXT...
    argv = [sys.executable, "-m", "bench.workloads", *head, str(report), *args[len(head) :]]
    counts = callgrind.count(argv, folder / "callgrind.out", env=env, cwd=ROOT)
    regions: list[Record] = json.loads(report.read_text())
    if len(counts) != len(regions):
        raise callgrind.CallgrindError(f"{len(regions)} regions but {len(counts)} dumps in {folder}")
    return [{**r, "instructions": n} for r, n in zip(regions, counts, strict=True)]


def _run_jobs(
    bench: Bench, work: Path, jobs: dict[tuple[str, int], list[str]], section: Section
) -> dict[tuple[str, int], list[Record]]:
    """Each job (workload args, by (name, run)) counted under callgrind; a failure is a note."""
    # Counts do not depend on load: both cores, one workload each.
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        futures = {
            key: pool.submit(_counted, bench, work / f"{key[0]}-{key[1]}", args) for key, args in jobs.items()
        }
        done: dict[tuple[str, int], list[Record]] = {}
        for key, future in futures.items():
            try:
                done[key] = future.result()
            except callgrind.CallgrindError as exc:
                log.error("%s run %d: %s", key[0], key[1], exc)
                section.notes.append(f"{key[0]}, run {key[1] + 1}: failed under callgrind: {exc}")
    return done


def _speak_jobs(texts: Sequence[str]) -> dict[tuple[str, int], list[str]]:
    return {("speak", run): ["speak", *texts] for run in range(RUNS)}


def _speak_note(speak: list[list[Record]]) -> str:
    said = "; ".join(f"{r['input']!r} ({_num(r, 'audio_s'):.2f} s)" for r in speak[0])
    return (
        f"Speak path: piper synthesised {said}, {RUNS} runs; counted: the synthesis calls alone "
        "(voice loaded and warmed up on another sentence first). A Pi share is per second of "
        "speech made: 100 % would make speech exactly as fast as it plays."
    )


def _new_section() -> Section:
    return Section(
        "instructions", "10. CPU in instructions (Raspberry Pi estimate)", __doc__.split("\n\n", 1)[1]
    )


def measure(bench: Bench, speak_path: bool = True) -> Section:
    section = _new_section()
    if callgrind.valgrind() is None:
        section.notes.append("Not measured: valgrind is not installed (`make bench` installs it).")
        return section
    work = bench.work / "instructions"
    speech_s, quiet_s, warm_s = (1.0, 1.0, 3.0) if bench.quick else (SPEECH_S, QUIET_S, WARM_S)
    texts, inputs = _material(work / "audio", speech_s, quiet_s, warm_s)
    engines = ["pocketsphinx"] + (["vosk"] if vosk_model() is not None else [])
    texts_said = speak_texts()[: 1 if bench.quick else SPEAK_CUES] if speak_path else []
    jobs = _speak_jobs(texts_said) if texts_said else {}  # the slowest by far: first
    jobs |= {(engine, run): ["hear", engine, *map(str, inputs)] for engine in engines for run in range(RUNS)}
    done = _run_jobs(bench, work, jobs, section)
    hear = {
        e: runs for e in engines if len(runs := [done[(e, r)] for r in range(RUNS) if (e, r) in done]) > 0
    }
    speak = [done[("speak", run)] for run in range(RUNS) if ("speak", run) in done]
    largest = figures(section, hear, speak)
    seconds = {str(r["input"]): _num(r, "audio_s") for runs in hear.values() for r in runs[0]}
    section.notes += [
        f"Material: {seconds.get('speech', 0):.2f} s of the coach speaking "
        + f"({len(texts)} cue{'s' * (len(texts) > 1)}: "
        + "; ".join(repr(t) for t in texts)
        + f"), {seconds.get('quiet', 0):.2f} s quiet.",
        f"Stable: the runs of each workload differ by at most {largest:.3f} %.",
        *([_speak_note(speak)] if speak else []),
        f"Pi estimate: {PI4.name} = {PI4.per_s / 1e9:.2f} G instructions/s, {PI5.name} = "
        f"{PI5.per_s / 1e9:.2f} G/s; x86-64 counts times {ISA_FACTOR} for AArch64 (assumed: loads "
        "and stores apart, 128-bit NEON against 256-bit AVX2; vector kernels alone could need 2x).",
        *SOURCES,
    ]
    if "vosk" not in engines:
        section.notes.append(f"vosk: not measured, {MISSING}")
    return section


def measure_hear(bench: Bench, old: Section | None) -> Section:
    """The hear path alone (`python -m bench --only instructions.hear`): piper's figures and
    note are kept from `old` (the section already in results.json)."""
    section = measure(bench, speak_path=False)
    if old is None:
        return section
    piper = [f for f in old.figures if f.key.startswith("piper.")]
    at = next((i for i, f in enumerate(section.figures) if f.key == "spread_pct"), len(section.figures))
    section.figures[at:at] = piper
    notes = [n for n in old.notes if n.startswith("Speak path")]
    section.notes[min(2, len(section.notes)) : min(2, len(section.notes))] = notes
    section.wall_s += old.wall_s
    return section


def measure_speak(bench: Bench, old: Section | None) -> Section:
    """The speak path alone (`python -m bench --only instructions.speak`): piper's figures and
    note replace those of `old` (the section already in results.json); the hear figures stay."""
    section = old if old is not None else _new_section()
    if callgrind.valgrind() is None:
        section.notes.append("Speak path: not measured: valgrind is not installed.")
        return section
    texts = speak_texts()[: 1 if bench.quick else SPEAK_CUES]
    failed = Section(section.key, section.title, "")
    done = _run_jobs(bench, bench.work / "instructions", _speak_jobs(texts), failed)
    speak = [done[("speak", run)] for run in range(RUNS) if ("speak", run) in done]
    section.notes += failed.notes
    return merge_speak(section, speak) if speak else section


def merge_speak(section: Section, speak: list[list[Record]]) -> Section:
    """`section` with piper's figures and note from `speak` (runs) in place of its own; the
    spread figure becomes the larger of the hear paths' and piper's."""
    fresh = Section(section.key, section.title, "")
    spread = speak_figures(fresh, speak)
    figures = [f for f in section.figures if not f.key.startswith("piper.")]
    at = next((i for i, f in enumerate(figures) if f.key == "spread_pct"), len(figures))
    figures[at:at] = fresh.figures
    for figure in figures:
        if figure.key == "spread_pct" and isinstance(figure.value, int | float):
            figure.value = round(max(figure.value, spread), 3)
    notes = [n for n in section.notes if not n.startswith("Speak path")]
    notes.insert(min(2, len(notes)), _speak_note(speak) + f" Its runs differ by {spread:.3f} %.")
    return Section(section.key, section.title, _new_section().how, figures, notes, section.wall_s)
