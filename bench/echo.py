"""9. Echo cancellation (issue 13): which canceller, measured in the simulated bedroom.

Material: the coach is the bundled piper voice saying the routine's real cues, back to
back as a session says them; the user is espeak-ng voices saying "pause" and "stop"
and real people saying "stop" (Speech Commands, tests/kit/real.py), split TUNE/HELD by
the fixed sha256 rule (espeak voices by name, people by speaker). Nothing was tuned:
every canceller runs on its defaults (WebRTC AEC3 without noise suppression, high-pass
or gain control; speexdsp with a 300 ms filter and its residual-echo preprocessor, in
two builds: `speexdsp`, the system's libspeexdsp1 through ctypes, the product's, and
`speex`, pyaec's), so both sides are reported, HELD first.

Room (tests/kit/room.py): 4 x 3.5 x 2.6 m, RT60 0.4 s, speaker 5 cm from the
microphone, user 1.5 m away at -38 dBFS; device latency 60 ms against a delay hint of
40 ms unless said otherwise.

- Echo removed (ERLE): the coach alone in the microphone, after 3 s of convergence,
  10 log10(echo power in / power out), at +10/+20/+30 dB echo over the user; at device
  latencies of 20 and 150 ms (the hint stays 40 ms); with +-200 ppm clock drift; with a
  mild speaker non-linearity (tanh, drive 1). The same live (`--only echo.live`): 64 s of
  cues through `LiveEcho` as the player and the microphone hand it their stamped blocks,
  with no drift and +-200 ppm, from 30 s on (the drift is found from the echo's place).
- User attenuation in double talk: the user's command said over a cue; the output's
  least-squares gain on the user's own signal (residual echo, uncorrelated with it, does
  not count), in dB, median over trials.
- Heard over a cue: "pause"/"stop" said 0.8 s into a cue, after 30 s of earlier cues
  (the canceller has converged, as it has in a session; 4 s in quick mode), at +20 dB
  echo, through the project's `Listener` on vosk and pocketsphinx, counted when the
  intent fires from speech ending after the user began; `none`: no canceller; `alone`
  (the baseline column): the user in the room without any echo. `vosk barge-in`: the
  Listener knows when the coach spoke, so vosk decodes what overlaps it with the
  barge-in phrases alone, brought up in level (vosk_engine.py, LEVEL_DBFS); the
  others are heard as if the coach were silent.
  Self-triggers: intents fired from the cues before the user spoke.
- Commands between cues (`--only echo.between`): pause, stop, resume, slower, faster,
  repeat and "where am i" (chosen before tuning) by the 8 espeak voices, and the 12 real
  speakers' "stop", said 0.5 s after a cue's last sound at +20 dB (after 30 s of cues),
  through speexdsp (the default) and, as the baseline, the user alone in the room; vosk
  and pocketsphinx each through the `Listener` with the session's track, as in a session.
  vosk's echo-aware endpointer threshold and its gain were tuned on TUNE only.
  The same with the next cue's first sound 1.0 s after the cue's last (`--only echo.next`;
  a session's median gap is 1.14 s): the user's word, or its room tail, runs into the next
  cue. Nothing was tuned on this set (the decoding it tests was built on a helper's scenes).
  And the risk of that decoding (`--only echo.nextfalse`): the 44 sentences that are no
  command (below) said the same way, through speexdsp and with the echo not cancelled;
  every command heard is false.
- Quiet reverberant commands (`--only echo.quiet`): the same commands and "start back
  stretch", by the bundled voice at 6 speeds (deterministic prosody; split by
  "piper <speed>") and the 8 espeak voices, said 1.5 m away at RT60 0.5 s, at -26, -38
  and -45 dBFS with the coach silent, through speexdsp (its reference silent); right
  when exactly the intent fires. False intents: the routine's text and chatter (bundled
  voice and espeak en-us) at the same levels.
- Self-triggers over a session (`--only echo.session`): the default routine, started by
  a typed command, in a closed loop with the room (tests/kit/room.py `ClosedLoopMic`),
  the echo 30 dB over a silent user, heard by `run --in`'s pipeline (speexdsp); every
  command understood after the start is the coach obeying itself. Latency: a burst
  train through `EchoStage(SpeexDspCanceller())` in 30 ms chunks, cross-correlated.
- CPU: the canceller's process time per audio second (a ratio; pyaec's includes its
  ctypes list conversions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from assistant.coach import routine as routines
from assistant.coach.dialogue import in_order_of_use
from assistant.coach.events import Say, SayKind, Understood
from assistant.coach.intents import IntentSet
from assistant.coach.track import SpeechTrack
from assistant.hear.echo import FRAME_SAMPLES, Canceller, SpeexCanceller, SpeexDspCanceller, WebRtcCanceller
from assistant.hear.recognizer import Recognizer
from assistant.pcm import RATE_HZ, Samples
from bench.context import Bench, language, vosk_model
from bench.report import Figure, Section
from tests.kit import real, room, speech
from tests.kit.sessions import Events

log = logging.getLogger(__name__)

ENGINES: dict[str, Callable[[], Canceller] | None] = {
    "none": None,
    "webrtc": lambda: WebRtcCanceller(delay_hint_ms=HINT_MS),
    "speex": lambda: SpeexCanceller(),
    "speexdsp": lambda: SpeexDspCanceller(),
}
HINT_MS = 40
RECOGNISERS = ("vosk", "vosk barge-in", "pocketsphinx")
BEFORE_S = 30.0  # cues played before the one the user speaks over (4 s in quick mode)
REAL_STOPS = 12  # real speakers' "stop" clips in the double-talk trials
BASE = room.Conditions(echo_db=20.0, user_dbfs=-38.0, latency_ms=60.0)
GEOMETRY = room.Geometry(rt60_s=0.4, user_m=1.5)
CONVERGE_S = 3.0
ESPEAK = ("en-us", "en-us+f3", "en-us+m3", "en-gb", "en-gb+f2", "en-us+f4", "en-gb-scotland", "en-029")
ERLE_CASES: dict[str, room.Conditions] = {
    "+10 dB": replace(BASE, echo_db=10.0),
    "+20 dB": BASE,
    "+30 dB": replace(BASE, echo_db=30.0),
    "latency 20 ms": replace(BASE, latency_ms=20.0),
    "latency 150 ms": replace(BASE, latency_ms=150.0),
    "drift +200 ppm": replace(BASE, drift_ppm=200.0),
    "drift -200 ppm": replace(BASE, drift_ppm=-200.0),
    "non-linear speaker": replace(BASE, drive=1.0),
}


def cues(n: int | None = None) -> list[Samples]:
    """The routine's cues in the order a session says them, in the bundled voice."""
    lang = language()
    texts = [t for t in in_order_of_use(routines.load(), lang, "detailed") if len(t) > 20]
    return [speech.piper(t, varied=False) for t in texts[:n]]


def coach_track(clips: Sequence[Samples], gap_s: float = 0.4) -> Samples:
    parts: list[Samples] = []
    for c in clips:
        parts += [np.asarray(c, np.int16), speech.silence(gap_s)]
    return np.concatenate(parts)


def cancel(engine: str, mic: Samples, reference: Samples, cpu: list[float] | None = None) -> Samples:
    """`mic` through a fresh canceller `engine` fed `reference` (the played signal) frame
    by frame; `none` returns `mic`."""
    make = ENGINES[engine]
    if make is None:
        return mic
    canceller = make()
    n = len(mic) // FRAME_SAMPLES * FRAME_SAMPLES
    out = np.zeros(len(mic), np.int16)
    started = time.process_time()
    for i in range(0, n, FRAME_SAMPLES):
        out[i : i + FRAME_SAMPLES] = canceller.process(
            mic[i : i + FRAME_SAMPLES], reference[i : i + FRAME_SAMPLES]
        )
    if cpu is not None:
        cpu.append((time.process_time() - started) / (n / RATE_HZ))
    return out


def erle_db(echo: Samples, out: Samples) -> float:
    skip = round(CONVERGE_S * RATE_HZ)
    e, o = echo[skip:].astype(np.float64), out[skip:].astype(np.float64)
    return float(10 * np.log10(np.sum(e**2) / max(np.sum(o**2), 1.0)))


@dataclass(frozen=True)
class Trial:
    who: str  # espeak voice or real speaker
    held: bool
    intent: str
    dry: Samples  # the user's command, dry


def trials(quick: bool) -> list[Trial]:
    out = [
        Trial(f"espeak {v}", real.held_out(v), word, speech.espeak(word, v))
        for v in ESPEAK
        for word in ("pause", "stop")
    ]
    if real.available():
        stops = [c for c in real.clips() if c.intent == "stop"]
        out += [Trial(f"real {c.speaker}", c.held, "stop", real.samples(c.file)) for c in stops[:REAL_STOPS]]
    return out[:4] if quick else out


def hear(
    recognizer: Recognizer, lang: IntentSet, audio: Samples, coach: SpeechTrack[Say] | None = None
) -> list[tuple[str, float]]:
    """(intent, speech end in s) of every command the project's `Listener` takes from `audio`."""
    return [
        (m.name, c.speech_end_s)
        for c in real.commands(recognizer, lang, audio, coach)
        if (m := lang.match(c.text))
    ]


def coach_spoke(played: Samples) -> SpeechTrack[Say]:
    """The coach's speech in `played` as the session's track has it: one span per stretch
    of sound (cues and their 0.4 s gaps are separate spans)."""
    track: SpeechTrack[Say] = SpeechTrack()
    whole = played[: len(played) // FRAME_SAMPLES * FRAME_SAMPLES]
    loud = np.abs(whole.reshape(-1, FRAME_SAMPLES)).max(axis=1) > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        start, end = a * FRAME_SAMPLES / RATE_HZ, b * FRAME_SAMPLES / RATE_HZ
        track.add(start, end, Say(start, "a cue", end - start, SayKind.SETUP))
    return track


def _scene(
    trial: Trial, before: Samples, cue: Samples, conditions: room.Conditions
) -> tuple[room.Mic, Samples, int]:
    """The coach plays `before`, then `cue`; the user speaks 0.8 s into `cue`."""
    played = np.concatenate([before, cue, speech.silence(2.0)])
    at = len(before) + round(0.8 * RATE_HZ)
    user = np.zeros(len(played))
    user[at : at + len(trial.dry)] = trial.dry
    r = room.Room(GEOMETRY, conditions, room.active_power(cue))
    return r.mic(played, user), played, at


def measure(bench: Bench) -> Section:
    section = Section("echo", "9. Echo cancellation", __doc__.split("\n\n", 1)[1].strip())
    clips = cues(6 if bench.quick else 14)
    track = coach_track(clips)[: round((10 if bench.quick else 30) * RATE_HZ)]
    power = room.active_power(track)
    engines = [e for e in ENGINES if e != "none"]
    cpu: dict[str, list[float]] = {e: [] for e in engines}
    # Echo removed.
    for case, conditions in ERLE_CASES.items():
        mic = room.Room(GEOMETRY, conditions, power).mic(track, None)
        for engine in engines:
            out = cancel(engine, mic.samples, track, cpu[engine])
            value = round(erle_db(mic.samples, out), 1)
            log.info("ERLE %s %s: %.1f dB", engine, case, value)
            target = 30.0 if case == "+20 dB" else None
            label = f"{engine}: echo removed, {case}"
            section.add(
                Figure(f"echo.{engine}.erle.{_key(case)}", label, value, "dB", target, higher_is_better=True)
            )
    live_rows(section, clips)
    # Double talk and recognition.
    double_talk(bench, section, clips, ("alone", *ENGINES), RECOGNISERS, cpu)
    for engine in engines:
        section.add(
            Figure(
                f"echo.{engine}.cpu",
                f"{engine}: CPU per audio second",
                round(float(np.median(cpu[engine])), 4),
            )
        )
    section.notes.append(f"Echo removed on {len(track) / RATE_HZ:.0f} s of cues.")
    return section


def double_talk(
    bench: Bench,
    section: Section,
    clips: Sequence[Samples],
    engines: Sequence[str],
    recognisers: Sequence[str],
    cpu: dict[str, list[float]],
) -> None:
    """The barge-in rows: every trial's command said over a cue, through each of `engines`
    (of ENGINES, or `alone`), heard by each of `recognisers`; figures added to `section`."""
    lang = language()
    makers = {e: real.maker(e.split()[0], lang, vosk_model()) for e in recognisers}
    long_cues = sorted(clips, key=len)[-4:]
    if bench.quick:
        before = coach_track(clips[:3])[: round(4.0 * RATE_HZ)]
    else:
        before = coach_track(clips)[: round(BEFORE_S * RATE_HZ)]
    results: dict[tuple[str, str, bool], list[bool]] = {}
    selftrig: dict[tuple[str, str], int] = {}
    gains: dict[tuple[str, bool], list[float]] = {}
    chosen = trials(bench.quick)
    for n, trial in enumerate(chosen):
        cue = long_cues[n % len(long_cues)]
        conditions = replace(BASE, seed=n)
        mic, played, at = _scene(trial, before, cue, conditions)
        spoke = coach_spoke(played)
        for engine in engines:
            if engine == "alone":  # the control: the user in the room, no echo, no canceller
                out = room.to_int16(mic.user + mic.noise)
            else:
                out = cancel(engine, mic.samples, played, cpu.get(engine))
            if engine not in ("none", "alone"):
                gains.setdefault((engine, trial.held), []).append(
                    room.user_gain_db(out, mic.user, at, at + len(trial.dry))
                )
            for rec, make in makers.items():
                if make is None:
                    continue
                commands = hear(make(), lang, out, spoke if rec.endswith("barge-in") else None)
                # Heard: the intent, from speech that ended after the user began (the coach's
                # own cue can fire one before: that is a self-trigger, not a hit).
                user_s = at / RATE_HZ
                results.setdefault((engine, rec, trial.held), []).append(
                    any(name == trial.intent and end > user_s for name, end in commands)
                )
                if engine != "alone":
                    selftrig[(engine, rec)] = selftrig.get((engine, rec), 0) + sum(
                        end <= user_s for _, end in commands
                    )
                log.info("trial %d/%d %s %s, %s, %s: heard %s", n + 1, len(chosen), trial.who,
                         "HELD" if trial.held else "TUNE", engine, rec, commands)  # fmt: skip
    for (engine, rec, held), hits in sorted(results.items(), key=lambda kv: (not kv[0][2], kv[0][:2])):
        side = "HELD" if held else "TUNE"
        pct = round(100.0 * sum(hits) / len(hits), 1)
        base = results.get(("alone", rec, held))
        label = f"{engine}, {rec}: pause/stop over a cue at +20 dB, {side} ({sum(hits)}/{len(hits)})"
        section.add(Figure(f"echo.{engine}.{rec}.{side.lower()}.barge_in_pct", label,
                           pct, "%", target=90.0 if held and engine not in ("none", "alone") else None,
                           higher_is_better=True,
                           baseline=round(100.0 * sum(base) / len(base), 1) if base else None))  # fmt: skip
    for (engine, held), values in sorted(gains.items(), key=lambda kv: (not kv[0][1], kv[0][0])):
        side = "HELD" if held else "TUNE"
        section.add(Figure(f"echo.{engine}.{side.lower()}.user_gain_db",
                           f"{engine}: user's gain in double talk, median, {side} (min {min(values):.1f})",
                           round(float(np.median(values)), 1), "dB"))  # fmt: skip
    coach_s = len(chosen) * len(before) / RATE_HZ
    for engine in (e for e in engines if e != "alone"):
        for rec in makers:
            if makers[rec] is not None:
                section.add(Figure(f"echo.{engine}.{rec}.self_triggers", f"{engine}, {rec}: self-triggers in "
                                   f"{coach_s:.0f} s of cues before the user spoke, +20 dB",
                                   selftrig.get((engine, rec), 0), target=0))  # fmt: skip
    section.notes.append(f"{len(chosen)} double-talk trials.")


BETWEEN_WORDS = ("pause", "stop", "resume", "slower", "faster", "repeat", "where am i")  # fixed before tuning
AFTER_S = 0.5  # the user speaks this long after the cue's last sound
NEXT_S = 1.0  # echo.next: the next cue begins this long after the last sound (a session's median gap 1.14 s)


def between_trials(quick: bool) -> list[Trial]:
    """Every espeak voice saying each of BETWEEN_WORDS, and the real speakers' "stop"."""
    lang = language()
    out = []
    for v in ESPEAK:
        for word in BETWEEN_WORDS:
            intent = lang.match(word)
            assert intent is not None, word
            out.append(Trial(f"espeak {v}", real.held_out(v), intent.name, speech.espeak(word, v)))
    if real.available():
        stops = [c for c in real.clips() if c.intent == "stop"]
        out += [Trial(f"real {c.speaker}", c.held, "stop", real.samples(c.file)) for c in stops[:REAL_STOPS]]
    return out[:: len(out) // 6] if quick else out


def measure_between(bench: Bench, old: Section | None) -> Section:
    """Commands said AFTER_S after a cue ended, at +20 dB (`python -m bench --only
    echo.between`): the default canceller (speexdsp) and the user alone, vosk and
    pocketsphinx each with the session's track (the Listener's gate, vosk's barge-in
    decoding and the echo-aware endpointer all as in a session)."""
    return _between(bench, old, None)


def measure_next(bench: Bench, old: Section | None) -> Section:
    """The same commands with the next cue NEXT_S after the cue's last sound (`python -m
    bench --only echo.next`): a command still being said, or its room tail still sounding,
    when the next cue begins."""
    return _between(bench, old, NEXT_S)


def _after_cues(
    bench: Bench,
) -> tuple[IntentSet, list[Samples], Samples, dict[str, Callable[[], Recognizer] | None]]:
    """What the user speaks after: the language, the 4 longest cues (one is the cue the user
    speaks after), BEFORE_S of cues played before it, and the two engines' recognisers."""
    lang = language()
    clips = cues(6 if bench.quick else 14)
    before = coach_track(clips[:3] if bench.quick else clips)[
        : round((4.0 if bench.quick else BEFORE_S) * RATE_HZ)
    ]
    makers = {e: real.maker(e, lang, vosk_model()) for e in ("vosk", "pocketsphinx")}
    return lang, sorted(clips, key=len)[-4:], before, makers


def _after_cue(
    before: Samples, long_cues: Sequence[Samples], n: int, next_s: float | None
) -> tuple[Samples, Samples, int]:
    """Trial `n`'s cue, what is played (`before`, the cue, then 3 s of silence, or the next
    cue's first sound `next_s` after the cue's last), and the sample the user starts at:
    AFTER_S after the cue's last sound."""
    cue = long_cues[n % len(long_cues)]
    cue_end = len(before) + int(np.flatnonzero(cue)[-1]) + 1
    at = cue_end + round(AFTER_S * RATE_HZ)
    if next_s is None:
        return cue, np.concatenate([before, cue, speech.silence(3.0)]), at
    # (The cue cut at its last sound and the next from its first: their own silences would
    # lengthen the gap.)
    following = long_cues[(n + 1) % len(long_cues)]
    following = following[int(np.flatnonzero(following)[0]) :]
    parts = [before, cue[: cue_end - len(before)], speech.silence(next_s), following, speech.silence(1.0)]
    return cue, np.concatenate(parts), at


def _between(bench: Bench, old: Section | None, next_s: float | None) -> Section:
    """Commands AFTER_S after a cue, its silence running on (`next_s` None) or the next cue
    beginning `next_s` after the cue's last sound."""
    fresh = Section("echo", "9. Echo cancellation", __doc__.split("\n\n", 1)[1].strip())
    lang, long_cues, before, makers = _after_cues(bench)
    results: dict[tuple[str, str, bool], list[bool]] = {}
    chosen = between_trials(bench.quick)
    what = "between" if next_s is None else "next_cue"
    nxt = "" if next_s is None else f", the next cue {next_s} s after it"
    for n, trial in enumerate(chosen):
        cue, played, at = _after_cue(before, long_cues, n, next_s)
        user = np.zeros(len(played))
        user[at : at + len(trial.dry)] = trial.dry
        mic = room.Room(GEOMETRY, replace(BASE, seed=n), room.active_power(cue)).mic(played, user)
        spoke = coach_spoke(played)
        for engine in ("speexdsp", "alone"):
            out = (
                room.to_int16(mic.user + mic.noise)
                if engine == "alone"
                else cancel(engine, mic.samples, played)
            )
            for rec, make in makers.items():
                if make is None:
                    continue
                commands = hear(make(), lang, out, spoke)
                hit = any(name == trial.intent and end > at / RATE_HZ for name, end in commands)
                results.setdefault((engine, rec, trial.held), []).append(hit)
                log.info(
                    "%s %d/%d %s %s %s, %s, %s: heard %s",
                    what,
                    n + 1,
                    len(chosen),
                    trial.who,
                    trial.intent,
                    "HELD" if trial.held else "TUNE",
                    engine,
                    rec,
                    commands,
                )
    for (engine, rec, held), hits in sorted(results.items(), key=lambda kv: (not kv[0][2], kv[0][:2])):
        if engine == "alone":
            continue
        side = "HELD" if held else "TUNE"
        base = results.get(("alone", rec, held), [])
        label = (
            f"{engine}, {rec}: commands between cues ({AFTER_S} s after one{nxt}) at +20 dB, {side} "
            f"({sum(hits)}/{len(hits)}; the user alone {sum(base)}/{len(base)})"
        )
        fresh.add(
            Figure(
                f"echo.{engine}.{rec}.{side.lower()}.{what}_pct",
                label,
                round(100.0 * sum(hits) / len(hits), 1),
                "%",
                target=95.0 if held else None,
                higher_is_better=True,
                baseline=round(100.0 * sum(base) / len(base), 1) if base else None,
            )
        )
    note = (
        f"Commands {'between cues' if next_s is None else 'before the next cue'}: {len(chosen)} trials "
        f"({', '.join(BETWEEN_WORDS)} by {len(ESPEAK)} espeak voices, real speakers' stop), said "
        f"{AFTER_S} s after a cue{nxt}, measured alone."
    )
    return _merge(old, fresh, note)


def measure_next_false(bench: Bench, old: Section | None) -> Section:
    """False commands into the next cue (`python -m bench --only echo.nextfalse`): the
    sentences that are no command (`no_commands`) said AFTER_S after a cue, the next cue
    NEXT_S after its last sound, +20 dB, through speexdsp and with the echo not cancelled
    (the canceller not learnt yet); every command heard from the user's start on is false.
    The head of a sentence cut where the coach began (vosk_engine.py `_before_coach`) is the
    risk: a pocketsphinx rule that did so fired 5 in 44 (2 "stop"s) and was withdrawn."""
    fresh = Section("echo", "9. Echo cancellation", __doc__.split("\n\n", 1)[1].strip())
    lang, long_cues, before, makers = _after_cues(bench)
    chosen = no_commands(bench.quick)
    false: dict[tuple[str, str], int] = {}
    for n, trial in enumerate(chosen):
        cue, played, at = _after_cue(before, long_cues, n, NEXT_S)
        said = trial.dry[: len(played) - at]
        user = np.zeros(len(played))
        user[at : at + len(said)] = said
        mic = room.Room(GEOMETRY, replace(BASE, seed=n), room.active_power(cue)).mic(played, user)
        spoke = coach_spoke(played)
        for mode in ("speexdsp", "not cancelled"):
            out = cancel("speexdsp", mic.samples, played) if mode == "speexdsp" else mic.samples
            for rec, make in makers.items():
                if make is None:
                    continue
                heard = [(c, t) for c, t in hear(make(), lang, out, spoke) if t > at / RATE_HZ - 0.2]
                false[(mode, rec)] = false.get((mode, rec), 0) + len(heard)
                if heard:
                    log.info(
                        "next false %d/%d %s, %s, %s: heard %s",
                        n + 1,
                        len(chosen),
                        trial.who,
                        mode,
                        rec,
                        heard,
                    )
    for (mode, rec), count in sorted(false.items()):
        fresh.add(
            Figure(
                f"echo.{_key(mode)}.{rec}.next_false",
                f"{mode}, {rec}: false commands from {len(chosen)} sentences that are no command, "
                f"said {AFTER_S} s after a cue, the next cue {NEXT_S} s after it, +20 dB",
                count,
                target=0,
            )
        )
    note = (
        f"False commands into the next cue: {len(chosen)} sentences (the routine's text and chatter, "
        f"bundled voice and espeak en-us), measured alone."
    )
    return _merge(old, fresh, note)


QUIET_GEOMETRY = room.Geometry(rt60_s=0.5, user_m=1.5)
QUIET_WORDS = (*BETWEEN_WORDS, "start back stretch")
QUIET_DBFS = (-26.0, -38.0, -45.0)
PIPER_SCALES = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3)  # the bundled voice's speeds, split by "piper <scale>"


def quiet_trials(quick: bool) -> list[Trial]:
    """QUIET_WORDS by the bundled voice at PIPER_SCALES (deterministic prosody) and by the
    espeak voices; each voice on its side of the fixed split."""
    lang = language()
    out = []
    for word in QUIET_WORDS:
        intent = lang.match(word)
        assert intent is not None, word
        for scale in PIPER_SCALES:
            out.append(
                Trial(
                    f"piper {scale}",
                    real.held_out(f"piper {scale}"),
                    intent.name,
                    speech.piper(word, scale, varied=False),
                )
            )
        out += [Trial(f"espeak {v}", real.held_out(v), intent.name, speech.espeak(word, v)) for v in ESPEAK]
    return out[:: len(out) // 6] if quick else out


def no_commands(quick: bool) -> list[Trial]:
    """The routine's text and chatter (tests/kit/corpus.py), bundled voice and espeak en-us:
    speech that must fire nothing."""
    from tests.kit.corpus import CHATTER, ROUTINE_TEXT

    texts = (ROUTINE_TEXT + CHATTER)[: 3 if quick else None]
    return [Trial("piper", False, "", speech.piper(t, varied=False)) for t in texts] + [
        Trial("espeak en-us", False, "", speech.espeak(t, "en-us")) for t in texts
    ]


def measure_quiet(bench: Bench, old: Section | None) -> Section:
    """Quiet, reverberant commands (`python -m bench --only echo.quiet`): the coach silent,
    the user 1.5 m away at RT60 0.5 s, at QUIET_DBFS, heard through the default canceller
    (speexdsp, its reference silent, as in a session between cues) by vosk and
    pocketsphinx; false intents from speech that is no command at the same levels."""
    fresh = Section("echo", "9. Echo cancellation", __doc__.split("\n\n", 1)[1].strip())
    lang = language()
    makers = {e: real.maker(e, lang, vosk_model()) for e in ("vosk", "pocketsphinx")}
    chosen, nothing = quiet_trials(bench.quick), no_commands(bench.quick)
    hits: dict[tuple[str, float, str, bool], list[bool]] = {}
    false: dict[tuple[str, float], list[int]] = {}
    for n, trial in enumerate(chosen + nothing):
        for dbfs_ in QUIET_DBFS:
            lead = round(1.0 * RATE_HZ)
            user = np.concatenate([np.zeros(lead), trial.dry, np.zeros(round(1.5 * RATE_HZ))])
            conditions = replace(BASE, user_dbfs=dbfs_, seed=n)
            mic = room.Room(QUIET_GEOMETRY, conditions, 1.0).mic(np.zeros(len(user)), user)
            out = cancel("speexdsp", mic.samples, np.zeros(len(user), np.int16))
            for rec, make in makers.items():
                if make is None:
                    continue
                fired = [name for name, _ in hear(make(), lang, out)]
                if trial.intent:
                    hits.setdefault((rec, dbfs_, trial.who.split()[0], trial.held), []).append(
                        fired == [trial.intent]
                    )
                else:
                    false.setdefault((rec, dbfs_), []).append(len(fired))
                log.info(
                    "quiet %d/%d %s %r %.0f dBFS, %s: heard %s",
                    n + 1,
                    len(chosen) + len(nothing),
                    trial.who,
                    trial.intent,
                    dbfs_,
                    rec,
                    fired,
                )
    for (rec, dbfs_, voice, held), got in sorted(hits.items(), key=lambda kv: (not kv[0][3], kv[0][:3])):
        side = "HELD" if held else "TUNE"
        fresh.add(
            Figure(
                f"echo.quiet.{rec}.{voice}.{side.lower()}.{_key(f'{dbfs_:.0f}')}_pct",
                f"{rec}: commands at RT60 0.5 s, 1.5 m, {dbfs_:.0f} dBFS, {voice} voices, {side} "
                f"({sum(got)}/{len(got)})",
                round(100.0 * sum(got) / len(got), 1),
                "%",
                target=90.0 if held and dbfs_ == -38.0 else None,
                higher_is_better=True,
            )
        )
    for (rec, dbfs_), counts in sorted(false.items()):
        fresh.add(
            Figure(
                f"echo.quiet.{rec}.{_key(f'{dbfs_:.0f}')}_false",
                f"{rec}: false intents from "
                f"{len(counts)} sentences that are no command, RT60 0.5 s, {dbfs_:.0f} dBFS",
                sum(counts),
                target=0,
            )
        )
    note = (
        f"Quiet reverberant commands: {len(chosen)} clips ({len(QUIET_WORDS)} commands, the bundled voice "
        f"at {len(PIPER_SCALES)} speeds, {len(ESPEAK)} espeak voices) at {len(QUIET_DBFS)} levels, "
        f"{len(nothing)} sentences that are no command, measured alone."
    )
    return _merge(old, fresh, note)


SESSION = replace(BASE, echo_db=30.0)  # the user silent; the echo 30 dB over their -38 dBFS


def measure_session(bench: Bench, old: Section | None) -> Section:
    """Self-triggers over a whole session (`python -m bench --only echo.session`): the default
    routine, started by a typed command, plays into the simulated bedroom in a closed loop
    (tests/kit/room.py `ClosedLoopMic`, SESSION's conditions) and the pipeline of `run --in`
    hears the microphone through its default canceller; nobody else speaks, so every
    command understood after the start is the coach obeying itself. Then the latency the
    canceller adds (`latency_rows`)."""
    from assistant.app.offline import run_audio
    from assistant.app.settings import Settings
    from assistant.app.wiring import Needs, build
    from assistant.hear.sphinx_engine import SphinxRecognizer
    from assistant.hear.vosk_engine import VoskModel, VoskRecognizer
    from assistant.speak.render import OutputTrack
    from tests.kit.models import english_model

    fresh = Section("echo", "9. Echo cancellation", __doc__.split("\n\n", 1)[1].strip())
    lang, routine, config = language(), routines.load(), Settings()
    path = vosk_model() or english_model()
    makers: dict[str, Callable[[Sequence[str]], Recognizer]] = {"pocketsphinx": SphinxRecognizer}
    if path is not None:
        model = VoskModel(path)
        makers["vosk"] = lambda phrases: VoskRecognizer(model, phrases)
    # How long the session plays, and its level, from a run with nobody listening.
    dry = build(config, routine, lang, Needs(voice=True))
    played = OutputTrack(dry.cache, config.volume, RATE_HZ)  # type: ignore[arg-type]
    events = Events()
    dry.session.sinks += [events, played]
    dry.session.hear("start back stretch", 0.0)
    dry.session.run_until(30.0 if bench.quick else float("inf"))
    end_s = max(e.t + e.duration_s for e in events.events if isinstance(e, Say)) + 2.0
    power = room.active_power(played.samples(0, round(end_s * RATE_HZ)))
    for rec, make in makers.items():
        pipeline = build(config, routine, lang, Needs(voice=True, listen=True, echo=True, recognizer=make))
        events, played = Events(), OutputTrack(pipeline.cache, config.volume, RATE_HZ)  # type: ignore[arg-type]
        pipeline.session.sinks += [events, played]
        pipeline.session.hear("start back stretch", 0.0)
        loop = room.ClosedLoopMic(room.Room(GEOMETRY, SESSION, power), np.zeros(1, np.int16), played, end_s)
        started = time.monotonic()
        run_audio(pipeline.session, pipeline.listener, loop.chunks(), pipeline.echo)  # type: ignore[arg-type]
        heard = [e for e in events.events if isinstance(e, Understood)][1:]  # the typed start first
        cues = sum(isinstance(e, Say) and e.t < end_s for e in events.events)
        log.info(
            "session, %s: %d cues, %.0f s, self-triggers %s (%.0f s)",
            rec,
            cues,
            end_s,
            [(round(e.t, 1), e.name) for e in heard],
            time.monotonic() - started,
        )
        fresh.add(
            Figure(
                f"echo.session.{rec}.self_triggers",
                f"speexdsp, {rec}: self-triggers over a whole "
                f"session ({end_s / 60:.1f} min, {cues} things said) at +30 dB echo",
                len(heard),
                target=0,
            )
        )
    latency_rows(fresh)
    note = (
        f"Self-triggers over a session: the default routine, {end_s:.0f} s, closed loop, echo +30 dB over "
        "a silent user at -38 dBFS, RT60 0.4 s, device latency 60 ms; measured alone."
    )
    return _merge(old, fresh, note)


LIVE_DRIFTS_PPM = (0.0, 200.0, -200.0)
LIVE_S = 64.0  # cues played through LiveEcho; the echo removed is measured from LIVE_FROM_S on
LIVE_FROM_S = 30.0


def live_rows(section: Section, clips: Sequence[Samples]) -> None:
    """Echo removed live (`LiveEcho`, speexdsp: the player's blocks stamped with DAC times,
    the capture's chunks with ADC times, tests/kit/room.py `live_echo`) in BASE's room, with
    the echo drifting against the capture by +-200 ppm (a DAC and a USB microphone): the
    drift is measured from the echo's place and the reference read at its rate (align.py)."""
    one = coach_track(clips)
    track = np.tile(one, int(np.ceil(LIVE_S * RATE_HZ / len(one))))[: round(LIVE_S * RATE_HZ)]
    for ppm in LIVE_DRIFTS_PPM:
        mic, out, echo = room.live_echo(GEOMETRY, track, replace(BASE, drift_ppm=ppm))
        skip = round(LIVE_FROM_S * RATE_HZ)
        before, after = mic[skip:].astype(np.float64), out[skip:].astype(np.float64)
        value = round(float(10 * np.log10(np.sum(before**2) / max(np.sum(after**2), 1.0))), 1)
        found = echo.drift * 1e6
        log.info("live, drift %+.0f ppm: %.1f dB removed, drift found %+.0f ppm", ppm, value, found)
        case = f"drift {ppm:+.0f} ppm" if ppm else "no drift"
        section.add(
            Figure(
                f"echo.live.erle.{_key(case)}",
                f"speexdsp live (LiveEcho): echo removed, {case}, {LIVE_FROM_S:.0f} to {LIVE_S:.0f} s",
                value,
                "dB",
                30.0,
                higher_is_better=True,
            )
        )
        section.add(
            Figure(
                f"echo.live.drift_found.{_key(case)}",
                f"LiveEcho: the drift it found, {case}",
                round(echo.drift * 1e6),
                "ppm",
            )  # fmt: skip
        )


def measure_live(bench: Bench, old: Section | None) -> Section:
    """The live rows alone (`python -m bench --only echo.live`): echo removed through
    LiveEcho, with and without clock drift (`live_rows`)."""
    fresh = Section("echo", "9. Echo cancellation", __doc__.split("\n\n", 1)[1].strip())
    live_rows(fresh, cues(14))
    note = (
        f"Live: {LIVE_S:.0f} s of cues through LiveEcho (speexdsp) at +20 dB, RT60 0.4 s, device "
        f"latency 60 ms, 2 ms of jitter on the stamps; echo removed from {LIVE_FROM_S:.0f} s on; "
        "measured alone."
    )
    return _merge(old, fresh, note)


def latency_rows(section: Section) -> None:
    """The latency the default canceller adds: a click train through `EchoStage(SpeexDspCanceller())`
    in the capture's 30 ms chunks, nothing played (reference silent), the output's lag on
    the input by cross-correlation; and the stage's framing, from its structure."""
    from assistant.hear.capture import CHUNK_FRAMES
    from assistant.hear.echo import EchoStage, SpeexDspCanceller

    rng = np.random.default_rng(5)
    x = np.zeros(4 * RATE_HZ)
    for at in range(RATE_HZ, len(x) - RATE_HZ // 2, RATE_HZ // 2):  # 5 ms bursts of noise, -20 dBFS
        x[at : at + 80] = rng.normal(0, 3277, 80)
    mic = room.to_int16(x + rng.normal(0, 10, len(x)))
    stage = EchoStage(SpeexDspCanceller())
    out = np.concatenate(
        [
            stage.feed(mic[i : i + CHUNK_FRAMES], np.zeros(len(mic[i : i + CHUNK_FRAMES]), np.int16))
            for i in range(0, len(mic), CHUNK_FRAMES)
        ]
    ).astype(np.float64)
    a = mic[RATE_HZ : len(out)].astype(np.float64)
    lags = range(0, 481)
    corr = [float(np.dot(a[: len(a) - 480], out[RATE_HZ + k : RATE_HZ + k + len(a) - 480])) for k in lags]
    lag_ms = 1000.0 * int(np.argmax(corr)) / RATE_HZ
    section.add(
        Figure(
            "echo.speexdsp.latency_ms",
            "speexdsp: latency it adds, a click through it, cross-correlated",
            round(lag_ms, 2),
            "ms",
            target=20.0,
        )
    )
    framing = 1000.0 * (FRAME_SAMPLES - 1) / RATE_HZ
    section.add(
        Figure(
            "echo.stage.framing_ms",
            "EchoStage: the most a sample waits for its 10 ms frame "
            "(none when chunks are whole frames, as capture's 30 ms are)",
            round(framing, 2),
            "ms",
        )
    )


def _merge(old: Section | None, fresh: Section, note: str) -> Section:
    """`fresh`'s figures in place of `old`'s with the same keys; old's others kept."""
    if old is None:
        fresh.notes.append(note)
        return fresh
    keys = {f.key for f in fresh.figures}
    figures = [f for f in old.figures if f.key not in keys] + fresh.figures
    notes = [n for n in old.notes if not n.startswith(note.split(":")[0] + ":")] + [note]
    return Section(old.key, old.title, fresh.how, figures, notes, old.wall_s)


def measure_barge(bench: Bench, old: Section | None) -> Section:
    """The barge-in rows alone (`python -m bench --only echo.barge`), for the three
    cancellers and vosk's barge-in decoding: their figures replace those of `old` (the
    section already in results.json) and the echo-removed figures stay."""
    fresh = Section("echo", "9. Echo cancellation", __doc__.split("\n\n", 1)[1].strip())
    engines = ("webrtc", "speex", "speexdsp")
    double_talk(bench, fresh, cues(6 if bench.quick else 14), engines, ("vosk barge-in",), {})
    if old is None:
        return fresh
    keys = {f.key for f in fresh.figures}
    figures = [f for f in old.figures if f.key not in keys] + fresh.figures
    notes = [
        *old.notes,
        f"Barge-in rows of {', '.join(engines)} with vosk barge-in measured alone "
        f"({fresh.notes[0] if fresh.notes else ''}).",
    ]
    return Section(old.key, old.title, fresh.how, figures, notes, old.wall_s)


def _key(case: str) -> str:
    # (A sign is spelt: "drift +200 ppm" and "drift -200 ppm" once shared a key, and the
    # +200 ppm rows were lost from results.json.)
    case = case.replace("+", " plus ").replace("-", " minus ")
    return "".join(ch if ch.isalnum() else "_" for ch in case).strip("_").lower()
