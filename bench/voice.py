"""Section 4, the voice: a cold cue-cache build, warm starts of `backstretch run`, and what
synthesising each cue on demand (the naive pipeline's way) would cost a cue's timing.

The cold build fills the bench's own cue cache (under `bench.cache_home`) with every
foreseeable cue of the default routine: every later run of the bench starts warm.
"""

from __future__ import annotations

import logging
import os
import re
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

STARTS = 3  # cold and warm starts timed, each (quick: 1)
START_TIMEOUT_S = 120.0
SETTLE_S = 0.5  # after "Listening", before SIGINT: a SIGINT during that very print exits 130
FIRST_WORDS_S = 3.0  # issue 14: launch to the first word, and to listening, cold cache included
# --quick: few reps and short cues, so the cache holds about 30 cues (the fixed replies are
# most of them), not about 60.
QUICK_ROUTINE = SHORT_ROUTINE
# Moments of a start, by the -v log line that marks each (its arrival on our pipe); the
# first speech is the time that line carries (time.monotonic() is the system's clock).
MILESTONES = (
    ("output", "output device open", "assistant.speak.playback: output"),
    ("voice", "voice loaded (piper, ONNX; on the cue worker)", "loaded voice"),
    ("first_sound", "first speech handed to the device", "first speech handed to the device at monotonic"),
    ("listening", "listening (recogniser loaded, microphone open)", "Listening"),
)
FIRST_SOUND = re.compile(r"first speech handed to the device at monotonic ([\d.]+) s")


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


def timed_start(bench: Bench, routine: Path | None, cache_home: Path | None = None) -> dict[str, float]:
    """Spawn a hands-free `backstretch -v run` (with its cue cache in `cache_home`, default
    the bench's); seconds from launch to each milestone. Ends it with SIGINT once it has
    spoken and listens."""
    command = [backstretch_exe(), "-v", "run", "--quiet"] + (["--routine", str(routine)] if routine else [])
    env = bench.env(pulse=True)
    # As installed: pip compiles a wheel's modules to bytecode, so a user's start reads .pyc
    # files; a shell that forbids writing them makes every start compile the program again
    # (0.17 CPU-s of the 0.5 s of imports, measured here).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if cache_home is not None:
        env["XDG_CACHE_HOME"] = str(cache_home)
    lines: list[tuple[float, float | None, str]] = []
    ready = threading.Event()
    launched = time.monotonic()
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)

    def read() -> None:
        assert proc.stderr is not None
        seen = set()
        for line in proc.stderr:
            lines.append((time.monotonic() - launched, cpu_s(proc.pid), line.rstrip()))
            seen |= {"listening"} if line.startswith("Listening") else set()
            seen |= {"spoke"} if FIRST_SOUND.search(line) else set()
            if len(seen) == 2:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError(
                "backstretch run never spoke and listened:\n" + "\n".join(t for *_, t in lines)
            )
        time.sleep(SETTLE_S)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        reader.join(timeout=5)
    if code != 0:
        log.warning("backstretch run ended with %d after SIGINT:\n%s", code, "\n".join(t for *_, t in lines))
    out: dict[str, float] = {"exit": code, "load": os.getloadavg()[0]}
    for key, _, mark in MILESTONES:
        if (at := next(((t, cpu) for t, cpu, text in lines if mark in text), None)) is not None:
            out[key] = at[0]
            if at[1] is not None:  # the first speech: CPU when its line came, just after it
                out[f"{key}_cpu"] = at[1]
    if (found := next((m for *_, text in lines if (m := FIRST_SOUND.search(text))), None)) is not None:
        out["first_sound"] = float(found[1]) - launched
    return out


def cpu_s(pid: int) -> float | None:
    """CPU seconds a running process has used so far, all threads (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


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
        for key in ("cold", "warm"):
            label = f"{key} start: launch to the first speech"
            section.add(Figure(f"voice.start.{key}.first_sound_s", label, None, "s", FIRST_WORDS_S))
        section.notes.append("No start figures: no pulseaudio (apt-get install pulseaudio).")
        return
    routine = routine_file(bench)
    runs = 1 if bench.quick else STARTS
    cold = [timed_start(bench, routine, _empty(bench.work / f"cold-cache-{i}")) for i in range(runs)]
    warm = [timed_start(bench, routine) for _ in range(runs)]
    for key, starts in (("cold", cold), ("warm", warm)):
        if failed := [int(s["exit"]) for s in starts if s["exit"] != 0]:
            section.notes.append(f"`backstretch run` ({key}) ended with {failed} after SIGINT, not 0.")
        for name, label, _ in MILESTONES:
            values = [s[name] for s in starts if name in s]
            target = FIRST_WORDS_S if name in ("first_sound", "listening") else None
            figure = median(values) if values else None
            label = f"{key} start: launch to {label}, median of {len(starts)}"
            section.add(Figure(f"voice.start.{key}.{name}_s", label, figure, "s", target))
        for name in ("first_sound", "listening"):
            cpu = [s[f"{name}_cpu"] for s in starts if f"{name}_cpu" in s]
            what = "the first speech" if name == "first_sound" else "listening"
            section.add(Figure(f"voice.start.{key}.{name}_cpu_s", f"{key} start: CPU used by {what}, "
                               "all threads, median", median(cpu), "s"))  # fmt: skip
    loads = [s["load"] for s in cold + warm]
    section.add(
        Figure("voice.start.load", "load average (1 min) during the starts, median (2 cores)",
               median(loads), ""),
        Figure("voice.start.load_max", "load average (1 min) during the starts, highest", max(loads), ""),
    )  # fmt: skip
    listening = [s["listening"] for s in warm]
    section.add(
        Figure("voice.warm_start_median_s", f"warm start to listening, median of {len(warm)}",
               median(listening), "s", target=2.0),
        Figure("voice.warm_start_max_s", "warm start to listening, slowest", max(listening), "s", target=2.0),
    )  # fmt: skip


def _empty(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _how(bench: Bench, cues: int, routine: Path | None) -> str:
    which = "a short routine (--quick)" if routine else "the default routine"
    return (
        f"**Cold build**: an empty cue cache (the bench's own `XDG_CACHE_HOME`, left warm for the "
        f"rest of the bench) for the default voice and settings, filled in-process with every "
        f"foreseeable cue of {which} ({cues} cues: what a first `backstretch run` prepares), "
        "one `CueCache.get` at a time, each timed. CPU time is the process's, all threads. "
        f"The machine has {os.cpu_count()} cores; piper (ONNX Runtime) gets cores − 1 = "
        f"{max(1, (os.cpu_count() or 2) - 1)} intra-op thread(s), so synthesis leaves a core to audio. "
        "**On demand** (the naive pipeline synthesises each cue when it is due): its first sample "
        "is late by the cue's synthesis time (the baseline column), against a lookup in the warm "
        "cache by a fresh `CueCache` (a file read). **Starts**: `backstretch -v run --quiet`, "
        f"hands-free on the private PulseAudio devices, spawned {1 if bench.quick else STARTS} "
        "time(s) on an empty cue cache (cold: the cues are made in the background as it speaks) "
        "and as many on the warm one; each milestone is timed from the launch (`time.monotonic()` "
        "before `Popen`) to the arrival of its `-v` log line, except the first speech, whose line "
        "carries the monotonic time the player's callback first handed speech to the device (add "
        "the device latency for the first sound: the `output` log line says it). Then SIGINT. "
        "The program runs from bytecode, as a pip-installed wheel does (PYTHONDONTWRITEBYTECODE "
        "is dropped). The load average beside them says how busy the machine was; the CPU "
        "the program had used by each milestone (all its threads, read from /proc as its line "
        "arrived) depends far less on it. "
        f"Target: the first word and listening within {FIRST_WORDS_S:g} s of launch, cold included "
        "(issue 14)."
    )
