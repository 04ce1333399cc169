"""Section 4, the voice: a cold cue-cache build, warm starts of `backstretch run`, and what
synthesising each cue on demand (the naive pipeline's way) would cost a cue's timing.

The cold build fills the bench's own cue cache (under `bench.cache_home`) with every
foreseeable cue of the default routine: every later run of the bench starts warm.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from assistant.app import settings
from assistant.app.wiring import open_voice
from assistant.coach.dialogue import Dialogue, foreseeable_texts, simulate
from assistant.coach.events import Say
from assistant.coach.routine import Routine
from assistant.speak.cache import CueCache
from bench.context import Bench, backstretch_exe, language
from bench.report import Figure, Section, median, percentile
from tests.kit.sessions import SHORT_ROUTINE

log = logging.getLogger(__name__)

STARTS = 3  # warm starts timed (quick: 1)
START_TIMEOUT_S = 120.0
SETTLE_S = 0.5  # after "Listening", before SIGINT: a SIGINT during that very print exits 130
# --quick: few reps and short cues, so the cache holds about 30 cues (the fixed replies are
# most of them), not about 60.
QUICK_ROUTINE = SHORT_ROUTINE
# Stages of a start, by the -v log line that ends each (its arrival on our pipe).
STAGES = (
    (
        "startup",
        "start-up: interpreter, imports, settings, output device",
        "assistant.speak.playback: output",
    ),
    ("voice", "voice load (piper, ONNX)", "loaded voice"),
    ("cache", "cue cache check", "assistant.speak.cache: cue cache"),
    ("recogniser", "recogniser load, microphone open", "Listening"),
)


def routine_file(bench: Bench) -> Path | None:
    """The routine of the bench's sessions: None (the built-in one), or with --quick a short one."""
    if not bench.quick:
        return None
    path = bench.work / "quick-routine.yaml"
    path.write_text(QUICK_ROUTINE)
    return path


@dataclass
class Build:
    """A cold cache build: per-cue synthesis wall times (ms), in the cache's order."""

    load_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    audio_s: float = 0.0
    synth_ms: dict[str, float] = field(default_factory=dict)


def _routine(bench: Bench) -> tuple[settings.Settings, Routine]:
    path = routine_file(bench)
    config = settings.Settings(routine=str(path) if path else None)
    return config, config.load_routine()


def _welcome(config: settings.Settings, routine: Routine) -> str:
    """The first line of a session: what a listener waits for after "start back stretch"."""
    start = language().match("start back stretch")
    assert start is not None
    dialogue = Dialogue(routine, language(), config.verbosity)
    return next(a.text for a in simulate(dialogue, [(0.0, start)]) if isinstance(a, Say))


def cold_build(cache: CueCache, texts: list[str]) -> Build:
    """Synthesise every text into an empty cache, one at a time, timing each."""
    if cache.dir.exists():
        shutil.rmtree(cache.dir)  # the bench's private cache: cold means empty
    build = Build()
    wall, cpu = time.perf_counter(), time.process_time()
    cache.synth.load()
    build.load_s = time.perf_counter() - wall
    for text in texts:
        started = time.perf_counter()
        build.audio_s += cache.get(text).duration_s
        build.synth_ms[text] = (time.perf_counter() - started) * 1000
    build.wall_s, build.cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    return build


def lookups_ms(config: settings.Settings, texts: list[str]) -> dict[str, float]:
    """Each text fetched from the warm cache by a fresh CueCache (a new process's view)."""
    cache = open_voice(config)
    out = {}
    for text in texts:
        started = time.perf_counter()
        cache.get(text)
        out[text] = (time.perf_counter() - started) * 1000
    assert cache.misses == 0, "the warm cache missed"
    return out


def warm_start(bench: Bench, routine: Path | None) -> dict[str, float]:
    """Spawn a hands-free `backstretch -v run`; seconds from Popen to each stage's log line.
    Ends it with SIGINT once it listens."""
    command = [backstretch_exe(), "-v", "run", "--quiet"] + (["--routine", str(routine)] if routine else [])
    lines: list[tuple[float, str]] = []
    listening = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=bench.env(pulse=True), stderr=subprocess.PIPE, text=True)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.perf_counter() - started, line.rstrip()))
            if line.startswith("Listening"):
                listening.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not listening.wait(START_TIMEOUT_S):
            raise RuntimeError("backstretch run never listened:\n" + "\n".join(t for _, t in lines))
        time.sleep(SETTLE_S)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        reader.join(timeout=5)
    if code != 0:
        log.warning("backstretch run ended with %d after SIGINT:\n%s", code, "\n".join(t for _, t in lines))
    at = {key: next((t for t, text in lines if mark in text), None) for key, _, mark in STAGES}
    out, before = {}, 0.0
    for key, _, _ in STAGES:
        if (t := at[key]) is not None:
            out[key], before = t - before, t
    out["total"], out["exit"] = before, code
    return out


def _ms_figures(key: str, label: str, values: list[float], baseline: list[float] | None) -> list[Figure]:
    stats = (("median", median), ("p95", lambda v: percentile(v, 95)), ("max", max))
    return [Figure(f"{key}_{name}_ms", f"{label}, {name}", stat(values), "ms",
                   baseline=stat(baseline) if baseline else None) for name, stat in stats]  # fmt: skip


def measure(bench: Bench) -> Section:
    config, routine = _routine(bench)
    texts = sorted(foreseeable_texts(routine, language(), config.verbosity))
    build = cold_build(open_voice(config), texts)
    log.info("cold cache: %d cues, %.1f s of audio in %.1f s", len(texts), build.audio_s, build.wall_s)
    lookup, welcome = lookups_ms(config, texts), _welcome(config, routine)
    synth = list(build.synth_ms.values())
    section = Section("voice", "4. Voice", _how(bench, len(texts), routine_file(bench)))
    section.add(
        Figure("voice.cold.cues", "cold build: cues (every foreseeable cue)", len(texts)),
        Figure("voice.cold.audio_s", "cold build: audio synthesised", build.audio_s, "s"),
        Figure("voice.cold.voice_load_s", "cold build: voice load", build.load_s, "s"),
        Figure("voice.cold.wall_s", "cold build: wall time (voice load included)", build.wall_s, "s"),
        Figure("voice.cold.cpu_s", "cold build: CPU time, all threads", build.cpu_s, "s"),
        Figure("voice.cold.rtf", "cold build: synthesis real-time factor", sum(synth) / 1000 / build.audio_s),
        *_ms_figures("voice.synth", "synthesis of one cue", synth, None),
        *_ms_figures("voice.cue_delay", "a cue's first sample late by, cached (baseline: on demand)",
                     list(lookup.values()), synth),
        Figure("voice.first_cue_ms", "the welcome line's first sample late by, cached (baseline: on demand)",
               lookup[welcome], "ms", baseline=build.synth_ms[welcome]),
    )  # fmt: skip
    _add_starts(bench, section)
    return section


def _add_starts(bench: Bench, section: Section) -> None:
    if bench.pulse is None:
        section.add(Figure("voice.warm_start_median_s", "warm start to listening, median", None, "s", 2.0))
        section.notes.append("No warm-start figures: no pulseaudio (apt-get install pulseaudio).")
        return
    starts = [warm_start(bench, routine_file(bench)) for _ in range(1 if bench.quick else STARTS)]
    totals = [s["total"] for s in starts]
    if failed := [int(s["exit"]) for s in starts if s["exit"] != 0]:
        section.notes.append(f"`backstretch run` ended with {failed} after SIGINT, not 0 (see the log).")
    section.add(
        Figure("voice.warm_start_median_s", f"warm start to listening, median of {len(starts)}",
               median(totals), "s", target=2.0),
        Figure("voice.warm_start_max_s", "warm start to listening, slowest", max(totals), "s", target=2.0),
    )  # fmt: skip
    for key, label, _ in STAGES:
        values = [s[key] for s in starts if key in s]
        section.add(Figure(f"voice.warm_start.{key}_s", f"of which {label}, median", median(values), "s"))


def _how(bench: Bench, cues: int, routine: Path | None) -> str:
    which = "a short routine (--quick)" if routine else "the default routine"
    return (
        f"**Cold build**: an empty cue cache (the bench's own `XDG_CACHE_HOME`, left warm for the "
        f"rest of the bench) for the default voice and settings, filled in-process with every "
        f"foreseeable cue of {which} ({cues} cues: what `backstretch run` warms before it listens), "
        "one `CueCache.get` at a time, each timed. CPU time is the process's, all threads. "
        f"The machine has {os.cpu_count()} cores; piper (ONNX Runtime) gets cores − 1 = "
        f"{max(1, (os.cpu_count() or 2) - 1)} intra-op thread(s), so synthesis leaves a core to audio. "
        "**On demand** (the naive pipeline synthesises each cue when it is due): its first sample "
        "is late by the cue's synthesis time (the baseline column), against a lookup in the warm "
        "cache by a fresh `CueCache` (a file read). **Warm start**: `backstretch -v run --quiet`, "
        f"hands-free on the private PulseAudio devices, spawned {1 if bench.quick else STARTS} "
        "time(s) on the warm cache, timed from `Popen` to its `Listening` line on stderr, then "
        "SIGINT; the stages are the gaps between its `-v` log lines as they arrive."
    )
