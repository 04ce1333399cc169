"""Cue timing: where each cue starts, offline to the sample and live on a PulseAudio null sink.

Offline, the default session is rendered on the virtual clock and every cue is
looked for in the WAV. Live, `RealTime` runs the product hands-free for ten
minutes in the background (a listener says "start back stretch" into the
microphone) and records the speaker; `measure` then finds every cue's onset in
the recording: its error after a constant offset (latency), and the drift of that error.
Both need `bench.apply_env()`: the clips are read from the bench's private cue cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.app import settings
from assistant.pcm import Audio, Samples, gain, resample
from assistant.speak import voices
from assistant.speak.cache import CueCache
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import read_wav, write_wav
from bench.context import Bench, backstretch_exe
from bench.report import Figure, Section, median, percentile
from tests.kit.onsets import find_samples

log = logging.getLogger(__name__)

Event = dict[str, Any]

SESSION_S = 600.0  # the live session after its first cue; drift is given over this length
QUICK_SESSION_S = 45.0  # past the 27 s setup cue: a few cues, enough for a fit
P99_TARGET_MS = 20.0
DRIFT_TARGET_MS = 1.0
COMMAND = "start back stretch"
TRIES = 3  # the command is said this many times at most,
ANSWER_S = 8.0  # each time waiting this long for the session to start
LISTENING_TIMEOUT_S = 300.0  # loading the voice, the cues and the recogniser on a loaded machine
MIN_SCORE = 0.8  # normalised correlation of a cue found
UNDERRUN = re.compile(r"snd_pcm_recover\) underrun")  # alsa-lib: "(snd_pcm_recover) underrun occurred"
LATE = re.compile(r"clip \d+ ms late")  # the player, at -v: a cue decided after its slot
RECORD = ["parecord", "--device=spk.monitor", "--file-format=wav", "--rate=22050", "--channels=1",
          "--latency-msec=20"]  # fmt: skip


class _Failed(Exception):
    """An expected failure of the live run: no figures, a note."""


def _events(path: Path) -> list[Event]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _cache(cache_home: Path) -> tuple[CueCache, float]:
    """The cue cache of a program run with this XDG_CACHE_HOME (and the bench's empty
    configuration), and its volume. Cues are synthesised with random prosody: only the
    cache a run played from holds its clips."""
    config = settings.load()
    speech = SpeechSettings(config.speaker, config.speech_rate, config.sentence_pause_s)
    synth = Synthesizer(voices.resolve(config.voice), speech)
    return CueCache(synth, cache_home / "backstretch" / "cues"), config.volume


def _tail(lines: list[str], n: int = 5) -> str:
    return " / ".join(line.strip() for line in lines[-n:] if line.strip()) or "(nothing on stderr)"


# -- offline ---------------------------------------------------------------------------------------


@dataclass
class Rendered:
    """The offline figures."""

    cues: int | None = None
    worst: int | None = None  # the largest |onset error|, in samples
    identical: int | None = None  # cues equal to their clip where the timeline puts them
    stray: int | None = None  # non-silent samples outside the cues

    def figures(self) -> list[Figure]:
        return [
            Figure("timing.offline.cues", "offline: cues in the rendered session", self.cues),
            Figure("timing.offline.max_error_samples", "offline: largest onset error", self.worst, "samples",
                   target=0),
            Figure("timing.offline.identical", "offline: cues equal to their clip, sample for sample",
                   self.identical, "cues", target=self.cues, higher_is_better=True),
            Figure("timing.offline.stray_samples", "offline: non-silent samples outside the cues", self.stray,
                   "samples", target=0),
        ]  # fmt: skip


def _expected(events: list[Event], cache: CueCache, volume: float, rate: int) -> list[tuple[int, Samples]]:
    """Each `say` as the renderer's contract places it: at round(t * rate), at the volume
    then in force, shortened by a later `cut`."""
    clips: list[tuple[int, Samples]] = []
    for event in events:
        at = round(float(event["t"]) * rate)
        if event["event"] == "say":
            clips.append((at, gain(resample(cache.get(str(event["text"])), rate).samples, volume)))
        elif event["event"] == "cut":
            clips = [(start, clip[: max(at - start, 0)]) for start, clip in clips]
        elif event["event"] == "volume":
            volume = float(event["volume"])
    return [(start, clip) for start, clip in clips if len(clip)]


def offline(bench: Bench) -> tuple[Rendered, list[str]]:
    """Render the default session; find every cue in the WAV, to the sample."""
    folder = bench.work / "timing"
    folder.mkdir(parents=True, exist_ok=True)
    (script := folder / "script.txt").write_text(f"0 {COMMAND}\n")
    wav, timeline = folder / "session.wav", folder / "session.jsonl"
    command = [backstretch_exe(), "run", "--script", str(script), "--out", str(wav),
               "--timeline", str(timeline), "--quiet"]  # fmt: skip
    result = subprocess.run(command, env=bench.env(), capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        return Rendered(), [
            f"offline: backstretch exited {result.returncode}: {_tail(result.stderr.splitlines())}"
        ]
    audio = read_wav(wav)
    clips = _expected(_events(timeline), *_cache(bench.cache_home), audio.rate_hz)
    errors, identical, lost = [], 0, 0
    covered = np.zeros(len(audio.samples), dtype=bool)
    for start, clip in clips:
        found, score = find_samples(audio.samples, clip[: audio.rate_hz], start, audio.rate_hz)
        if score < MIN_SCORE:
            lost += 1
        else:
            errors.append(abs(found - start))
        identical += bool(np.array_equal(audio.samples[start : start + len(clip)], clip))
        covered[start : start + len(clip)] = True
    worst = None if lost else max(errors, default=None)
    rendered = Rendered(len(clips), worst, identical, int(np.count_nonzero(audio.samples[~covered])))
    return rendered, [f"offline: {lost} cues not found within 1 s of their place."] if lost else []


# -- real time -------------------------------------------------------------------------------------


class RealTime:
    """The hands-free session on PulseAudio, driven from a thread: `start` returns at once,
    `join` waits for its end (and raises what went wrong in the bench's own code)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.folder = bench.work / "timing-realtime"
        self.timeline = self.folder / "session.jsonl"
        self.recording = self.folder / "speaker.wav"
        self.cache_home = self.folder / "cache"
        self.session_s = QUICK_SESSION_S if bench.quick else SESSION_S
        self.stderr: list[str] = []
        self.failure: str | None = (
            None if bench.pulse else "no PulseAudio daemon (pulseaudio is not installed)"
        )
        self.first_cue_s = 0.0  # where the first cue lies in the recording, to a second or two
        self.session_from = 0  # stderr lines before it listened (loading)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.failure is None:
            self._thread = threading.Thread(target=self._run, name="bench-timing", daemon=True)
            self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            self._drive()
        except _Failed as exc:
            self.failure = str(exc)
            log.warning("real-time timing: %s", exc)
        except BaseException as exc:  # a bug in the bench: join() raises it
            self._error = exc

    def _drive(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        cues = self.bench.cache_home / "backstretch" / "cues"
        if cues.is_dir():  # a copy of its own: no other run can rewrite a cue it plays (see _cache)
            shutil.copytree(cues, self.cache_home / "backstretch" / "cues", dirs_exist_ok=True)
        env = {**self.bench.env(pulse=True), "XDG_CACHE_HOME": str(self.cache_home),
               "XDG_STATE_HOME": str(self.folder / "state")}  # and no earlier session to offer  # fmt: skip
        command = [backstretch_exe(), "-v", "run", "--timeline", str(self.timeline), "--quiet"]
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        reader.start()
        recorder = None
        try:
            listening = lambda: any(line.startswith("Listening") for line in self.stderr)  # noqa: E731
            self._wait(proc, listening, LISTENING_TIMEOUT_S, "it never said Listening")
            self.session_from = len(self.stderr)
            recorder = subprocess.Popen([*RECORD, str(self.recording)], env=env, stderr=subprocess.DEVNULL)
            recording_from = time.monotonic()
            first_seen = self._start_session(proc, env)
            self.first_cue_s = first_seen - recording_from
            log.info("real-time timing: the session is under way; %.0f s to go", self.session_s)
            while time.monotonic() < first_seen + self.session_s and proc.poll() is None:
                time.sleep(0.5)  # a real-time session, left to run
            states = [e["state"] for e in _events(self.timeline) if e["event"] == "state"]
            if proc.poll() is not None and states[-1:] != ["finished"]:
                raise _Failed(f"backstretch exited {proc.returncode} mid-session: {_tail(self.stderr)}")
            proc.send_signal(signal.SIGINT)  # the session keeps its place; the program ends cleanly
            try:
                if proc.wait(timeout=60) != 0:
                    raise _Failed(f"backstretch exited {proc.returncode}: {_tail(self.stderr)}")
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack to stderr
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                time.sleep(0.5)
                stacks = "".join(self.stderr[-80:])
                log.warning("backstretch hung after SIGINT; its threads:\n%s", stacks)
                raise _Failed(f"backstretch still ran 60 s after SIGINT: {_tail(self.stderr)}") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if recorder is not None:
                time.sleep(0.5)  # the recorder's own buffer: let the last words reach the file
                recorder.terminate()
                recorder.wait()
            reader.join(timeout=5)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.stderr.append(line)

    def _wait(
        self, proc: subprocess.Popen[str], done: Callable[[], bool], timeout_s: float, what: str
    ) -> None:
        """Poll until `done()`; the program ending first, or the time running out, is a failure."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if proc.poll() is not None:
                raise _Failed(f"backstretch exited {proc.returncode} early: {_tail(self.stderr)}")
            if time.monotonic() > deadline:
                raise _Failed(f"{what} within {timeout_s:.0f} s: {_tail(self.stderr)}")
            time.sleep(0.1)  # a real-time process, watched from outside

    def _start_session(self, proc: subprocess.Popen[str], env: dict[str, str]) -> float:
        """Say the command into the room until the session runs; when that was seen."""
        from tests.kit.speech import piper  # loads a voice: here, in the thread, not in start()

        wav = self.folder / "command.wav"
        write_wav(wav, Audio(np.asarray(piper(COMMAND)), 16000))

        def running() -> bool:
            return any(e["event"] == "state" and e["state"] == "running" for e in _events(self.timeline))

        for _ in range(TRIES):
            played = subprocess.run(["paplay", "--device=micsink", str(wav)], env=env, capture_output=True,
                                    text=True, timeout=30)  # fmt: skip
            if played.returncode != 0:
                raise _Failed(f"paplay failed: {played.stderr.strip()}")
            try:
                self._wait(proc, running, ANSWER_S, "no cue")
                return time.monotonic()
            except _Failed:
                if proc.poll() is not None:
                    raise
        raise _Failed(f"no session after saying {COMMAND!r} {TRIES} times: {_tail(self.stderr)}")


# -- analysis of the live run ---------------------------------------------------------------------


@dataclass
class Onsets:
    """The real-time figures, in ms of audio time (errors less the constant offset)."""

    cues: int | None = None
    median_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    drift_ms: float | None = None  # the fitted slope times SESSION_S, signed
    covered_s: float | None = None
    late: int | None = None
    underruns: int | None = None

    def figures(self) -> list[Figure]:
        drift = None if self.drift_ms is None else abs(self.drift_ms)
        span = f"{SESSION_S / 60:.0f} min"
        return [
            Figure("timing.realtime.cues", "real time: cues measured", self.cues),
            Figure("timing.realtime.median_ms", "real time: onset error, median (absolute)", self.median_ms,
                   "ms"),
            Figure("timing.realtime.p99_ms", "real time: onset error, p99 (absolute)", self.p99_ms, "ms",
                   target=P99_TARGET_MS),
            Figure("timing.realtime.max_ms", "real time: onset error, largest (absolute)", self.max_ms, "ms"),
            Figure("timing.realtime.drift_ms", f"real time: drift over {span} (absolute)", drift, "ms",
                   target=DRIFT_TARGET_MS),
            Figure("timing.realtime.covered_s", "real time: session covered (first to last cue measured)",
                   self.covered_s, "s"),
            Figure("timing.realtime.late_clips", "real time: cues scheduled too late (program log)",
                   self.late, "cues"),
            Figure("timing.realtime.underruns", "real time: output underruns (ALSA, on stderr)",
                   self.underruns),
        ]  # fmt: skip


def _theil_sen(x: list[float], y: list[float]) -> float:
    """The median of the slopes between every pair of points: one late cue does not tilt it."""
    xs, ys = np.asarray(x), np.asarray(y)
    i, j = np.triu_indices(len(xs), 1)
    dx = xs[j] - xs[i]
    return float(np.median((ys[j] - ys[i])[dx > 0] / dx[dx > 0]))


def analyse(run: RealTime) -> tuple[Onsets, list[str]]:
    """Every cue's onset in the recording, against its session time."""
    events = _events(run.timeline)
    says = [e for e in events if e["event"] == "say"]
    cuts = [float(e["t"]) for e in events if e["event"] == "cut"]
    heard = read_wav(run.recording)
    rate = heard.rate_hz
    cache, _ = _cache(run.cache_home)

    def probe(event: Event) -> Samples:  # a cue's first second, at the recording's rate
        return resample(cache.get(str(event["text"])), rate).samples[:rate]

    at, score = find_samples(heard.samples, probe(says[0]), round(run.first_cue_s * rate), 5 * rate)
    if score < MIN_SCORE:
        return Onsets(), [f"real time: the first cue is not in the recording (best match {score:.2f})."]
    offset = at - round(float(says[0]["t"]) * rate)  # in samples; followed from cue to cue, so a
    times, offsets, lost = [], [], []  # step (a lost block) would not lose the cues after it
    for event in says:
        t, start, length = float(event["t"]), round(float(event["t"]) * rate), len(probe(event))
        if start + offset + length > len(heard.samples) or any(t <= c < t + length / rate for c in cuts):
            continue  # after the recording stopped, or cut within its first second
        at, score = find_samples(heard.samples, probe(event), start + offset, rate // 2)
        if score < MIN_SCORE:
            lost.append(f"{t:.1f} s")
            continue
        offset = at - start  # the player starts a cue at round(t * rate)
        times.append(t)
        offsets.append(offset)
    constant = median(offsets)
    assert constant is not None  # the first cue, at least
    errors = [(o - constant) / rate for o in offsets]
    abs_ms = [abs(e) * 1000 for e in errors]
    slope = _theil_sen(times, errors) if len(times) > 2 else None
    session_log, loading_log = run.stderr[run.session_from :], run.stderr[: run.session_from]
    onsets = Onsets(
        cues=len(times), median_ms=median(abs_ms), p99_ms=percentile(abs_ms, 99), max_ms=max(abs_ms),
        drift_ms=None if slope is None else slope * SESSION_S * 1000,
        covered_s=times[-1] - times[0], late=sum(bool(LATE.search(line)) for line in session_log),
        underruns=sum(bool(UNDERRUN.search(line)) for line in session_log),
    )  # fmt: skip
    notes = []
    if lost:
        notes.append(f"real time: {len(lost)} cues not found near their place: at {', '.join(lost[:10])}.")
    if slope is not None:
        least_squares = float(np.polyfit(times, errors, 1)[0]) * SESSION_S * 1000
        notes.append(f"real time: drift {slope * SESSION_S * 1000:+.3f} ms over {SESSION_S / 60:.0f} min, "
                     f"signed, fitted over {times[-1] - times[0]:.0f} s of session (least squares: "
                     f"{least_squares:+.3f} ms).")  # fmt: skip
    notes.append("real time: underruns are alsa-lib's `snd_pcm_recover` lines on the program's stderr after "
                 f"it listened ({sum(bool(UNDERRUN.search(s)) for s in loading_log)} before, while "
                 "it loaded); the player logs each underrun it measures and steps over (\"output "
                 "underrun at ...\"), which this count leaves out.")  # fmt: skip
    notes += [f"real time: {s.strip()}." for s in run.stderr if re.search(r"output .* at \d+ Hz, latency", s)]
    return onsets, notes


HOW = f"""\
**Offline (exact, in samples).** `backstretch run --script S --out W.wav --timeline T.jsonl --quiet`
renders the whole default session (S: `0 {COMMAND}`) on the virtual clock. Each `say` event's clip (the
cue from the cue cache, times the volume in force, shortened by a later `cut`) is looked for in W.wav by
normalised cross-correlation within 1 s of `round(t * rate)` (a 1-sample shift moves the peak by one
sample), and compared sample for sample there; everything outside the cues must be digital silence.

**Real time, hands-free.** `backstretch -v run --timeline T.jsonl --quiet`, as a user runs it, on a
private PulseAudio daemon whose null sinks run at 22050 Hz: it speaks on sink `spk` and listens to the
monitor of sink `micsink`. Once it says *Listening*, `parecord` records `spk.monitor` (22050 Hz mono,
20 ms latency) and the bundled voice says "{COMMAND}" into `micsink` with `paplay` (again after
{ANSWER_S:.0f} s without a session, {TRIES} times at most). The session runs {SESSION_S:.0f} s after its
first cue, then gets SIGINT. Each cue's onset is found by cross-correlating the first second of its clip
with the recording where the timeline puts it, to the sample (0.045 ms). The median offset between
recording and session time is a constant (when the recorder started, and the device's latency), not a
timing error: the errors are the onsets less it. Drift is the slope of a line fitted to error against
session time (Theil–Sen, the median of the slopes between every pair of cues, so one late cue does not
tilt it), times {SESSION_S / 60:.0f} min. The session clock counts the frames handed to the device and the
recorder is clocked by the same sink, so the target is no drift at all: the {DRIFT_TARGET_MS:g} ms allowed
over the session (22 samples) is room for the fit only. "Late" cues are those the player logs as decided
after their slot (played at once, that much late). Meanwhile the rest of the bench keeps one of the two
cores busy.
"""


def measure(bench: Bench, realtime: RealTime) -> Section:
    """The offline figures, then the live run's (waiting for it to end)."""
    section = Section("timing", "3. Cue timing", HOW)
    rendered, notes = offline(bench)
    section.add(*rendered.figures())
    section.notes += notes
    realtime.join()
    onsets, notes = Onsets(), []
    if realtime.failure is not None:
        notes = [f"real time: not measured: {realtime.failure}."]
        if bench.pulse is None:
            notes.append(
                "For these figures install PulseAudio: `apt-get install pulseaudio pulseaudio-utils`."
            )
    else:
        onsets, notes = analyse(realtime)
    section.add(*onsets.figures())
    section.notes += notes
    return section
