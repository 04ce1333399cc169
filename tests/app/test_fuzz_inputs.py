"""Fuzzing what a user (or a hostile file) can hand the coach: the configuration, a
routine file, a --script, typed commands and WAV files. Any input gives a value or one
of the project's own errors: never another exception, a hang or runaway memory
(tests/kit/fuzz.py). The normal suite runs a few dozen fixed inputs per reader;
`make fuzz` runs thousands of fresh ones.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import yaml
from hypothesis import given
from hypothesis import strategies as st

from assistant.app import offline, settings
from assistant.coach import cues, routine, yamldoc
from assistant.coach.intents import IntentSet
from assistant.coach.routine import VERBOSITIES, Routine, StepKind, plan
from assistant.errors import BackstretchError
from assistant.speak.wav import MAX_RATE_HZ, MIN_RATE_HZ, decode_wav
from tests.kit.fuzz import bounded, fuzz_settings

# -- YAML: the schema's shape with wrong values, hostile fragments, raw text ------------


def _bomb(levels: int) -> str:
    lines = ['l0: &l0 "lol"']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


YAML_FRAGMENTS = [
    "a: &a [*a]\n", "b: &b {c: *b}\n", "<<: {volume: 0.5}\n", "k: !!python/name:os.system x\n",
    "k: !!python/object/apply:os.system [ls]\n", "k: !custom x\n", "? [a, b]\n: 1\n", "? {a: 1}\n: 1\n",
    "k: " + "[" * 40 + "\n", "k: " + "{b: " * 40 + "\n", _bomb(5), "k: " + "9" * 5000 + "\n",
    "k: 0x" + "f" * 4000 + "\n", "k: -" + "1" * 4400 + "\n", "k: 1" + "0" * 400 + ".5\n", "\t",
    "%YAML 1.1\n---\n",
    "---\n", "...\n", "k: 2024-02-30\n", "k: 2024-01-01 10:00:00\n", "k: !!binary aGk=\n", "k: .nan\n",
    "k: -.inf\n", "k: 1:30:00\n", "k: 0b1111\n", "k: 0o17\n", "k: =\n", "k: ~\n", "k: *missing\n",
    "\x00", "\ufeff", "\u2028", "k: '{side.__class__.__mro__}'\n", "k: '{side:>100000000}'\n",
    "k: '{0}'\n", "k: '{'\n", "k: !!set {a, b}\n", "k: !!omap [a: 1]\n", "k: !!str 3\n", "k: !!int x\n",
    "k: !!float x\n", "- x\n", "k: |\n  block\n", "k: >-\n  folded\n", "  indented: x\n", "k: 'unclosed\n",
    "x" * 70_000,
]  # fmt: skip
PLACEHOLDER_TEXTS = [
    "{side}", "{other}", "{count}", "{set}", "{sets}", "{reps}", "{done}", "{total}", "{minutes}",
    "{side.foo}", "{side[0]}", "{side!r}", "{side:>9}", "{}", "{{", "}}", "{", "}", "{inhale}", "a {side} b",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(PLACEHOLDER_TEXTS),
    st.sampled_from(
        ["left", "right", "detailed", "brief", "counts", "auto", "vosk", "pocketsphinx", "coach"]
    ),
)
ANY_VALUE = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)

Spec = dict[str, Any]  # key -> a nested Spec, or None for a value
CONFIG: Spec = {
    "routine": None, "pace": {"inhale_s": None, "exhale_s": None, "hold_s": None}, "reps_per_side": None,
    "sets": None, "first_side": None, "verbosity": None,
    "voice": {"name": None, "speaker": None, "speech_rate": None, "sentence_pause_s": None},
    "volume": None, "audio": {"output_device": None, "input_device": None, "output_rate_hz": None},
    "stt": {"engine": None, "vosk_model": None, "wake_word": None},
}  # fmt: skip
_BREATH: Spec = {"full": None, "short": None, "counts": None}
ROUTINE: Spec = {
    "name": None, "reps_per_side": None, "sets": None, "first_side": None,
    "pace": {"inhale_s": None, "exhale_s": None, "hold_s": None},
    "coaching": {"full_reps": None, "form_at_reps": None, "aim_at_rep": None, "settle_s": None},
    "cues": {
        **{k: None for k in ("welcome", "safety", "setup", "set_intro", "switch", "release", "form", "aim",
                             "finished", "stopped")},
        "inhale": {"first": {v: None for v in VERBOSITIES}, **_BREATH}, "exhale": _BREATH, "hold": _BREATH,
    },
}  # fmt: skip


def shaped(spec: Spec) -> st.SearchStrategy[dict[str, Any]]:
    """Documents with the schema's keys (and a stray one now and then), any values."""
    optional = {k: (shaped(v) if isinstance(v, dict) else ANY_VALUE) for k, v in spec.items()}
    return st.fixed_dictionaries({}, optional={**optional, "stray": ANY_VALUE})


@st.composite
def yaml_text(draw: st.DrawFn, spec: Spec) -> str:
    kind = draw(st.sampled_from(["schema", "mutated", "fragments", "raw"]))
    if kind == "raw":
        return draw(st.text(max_size=400))
    if kind == "fragments":
        return "".join(draw(st.lists(st.sampled_from(YAML_FRAGMENTS), max_size=8)))
    text = yaml.safe_dump(draw(shaped(spec)), allow_unicode=True, sort_keys=False)
    if kind == "mutated":
        lines = text.splitlines(keepends=True)
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(YAML_FRAGMENTS)))
        text = "".join(lines)
        text = text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text
    return text


def _speak_some(mine: Routine) -> None:
    """The texts a routine's cues give: a few steps of each kind, and both summaries."""
    steps = plan(mine, with_hold=mine.pace.hold_s > 0)
    kinds = {s.kind: s for s in steps}
    for step in (steps[0], steps[-1], *kinds.values()):
        for verbosity in VERBOSITIES:
            assert "{" not in cues.step_text(mine, step, verbosity, fresh=step.kind is StepKind.SETUP)
    values = {"sets": "two", "reps": "five", "done": "one", "total": "ten", "minutes": "one minute"}
    for key in ("finished", "stopped"):
        routine.fill(mine.cues[key], values)


# -- the readers -------------------------------------------------------------------


@fuzz_settings()
@given(text=yaml_text(CONFIG))
def test_fuzz_configuration(text: str, knee_hug: Routine) -> None:
    with bounded():
        try:
            config = settings.from_doc(yamldoc.parse(text, "c.yaml"), {})
        except BackstretchError:
            return
        mine = config.apply(knee_hug)
        settings.describe(config, mine, "the built-in routine")
        _speak_some(mine)


@fuzz_settings()
@given(text=yaml_text(ROUTINE), overlay=st.booleans())
def test_fuzz_routine(text: str, overlay: bool, knee_hug: Routine) -> None:
    with bounded():
        try:
            mine = routine.from_doc(yamldoc.parse(text, "r.yaml"), knee_hug if overlay else None)
        except BackstretchError:
            return
        _speak_some(mine)


TIMES = [
    "0", "12.5", "1:30", "1:75", "1:5", "1e9", "-5", "+3", ".5", "5.", "1:2:3", "\u0661\u0662", "9" * 5000,
    "9" * 5000 + ":00", "1." + "9" * 5000, "nan", "inf", "0x10", "1_000", "99999999", "0:59.999",
]  # fmt: skip


@st.composite
def script_text(draw: st.DrawFn, phrases: list[str]) -> str:
    said = st.one_of(st.sampled_from(phrases), st.text(max_size=30), st.sampled_from(["9" * 5000, "", "#"]))
    line = st.one_of(
        st.tuples(st.sampled_from(TIMES) | st.text(max_size=6), st.sampled_from([" ", "\t", "  "]), said).map(
            "".join
        ),
        st.sampled_from(["", "# a comment", "   ", "start", "\x00"]),
        st.text(max_size=60),
    )
    return "\n".join(draw(st.lists(line, max_size=12)))


@fuzz_settings()
@given(data=st.data())
def test_fuzz_script(data: st.DataObject, lang: IntentSet) -> None:
    text = data.draw(script_text(lang.phrases()))
    with bounded():
        try:
            script = offline.parse(text, "s.txt", lang)
        except BackstretchError:
            return
        assert all(u.t >= 0 and lang.match(u.text) is not None for u in script)


@fuzz_settings()
@given(
    text=st.one_of(st.text(max_size=200), st.sampled_from(["9" * 5000, "start back stretch " + "1" * 4301]))
)
def test_fuzz_typed_commands(text: str, lang: IntentSet) -> None:
    with bounded():
        lang.match(text)


# -- WAV files -----------------------------------------------------------------------


@st.composite
def wav_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
    tag = draw(st.sampled_from([1, 3, 0xFFFE]) | u16)
    channels = draw(st.integers(0, 8) | u16)
    rate = draw(st.sampled_from([8000, 16000, 22050, 44100, 48000]) | u32)
    bits = draw(st.sampled_from([8, 16, 24, 32]) | u16)
    fmt = struct.pack("<HHIIHH", tag, channels, rate, draw(u32), draw(u16), bits)
    if tag == 0xFFFE:
        fmt += (
            struct.pack("<HHI", 22, bits, 0)
            + struct.pack("<H", draw(st.sampled_from([1, 3]) | u16))
            + bytes(14)
        )
    fmt = fmt[: draw(st.integers(0, len(fmt)))] if draw(st.integers(0, 5)) == 0 else fmt
    if draw(st.booleans()) and bits == 32 and tag in (3, 0xFFFE):
        count = draw(st.integers(0, 64))
        floats = draw(st.lists(st.floats(width=32), min_size=count, max_size=count))
        data = np.array(floats, dtype="<f4").tobytes()
    else:
        data = draw(st.binary(max_size=512))
    chunks = [(b"fmt ", fmt), (b"data", data)]
    if draw(st.booleans()):
        chunks.insert(
            draw(st.integers(0, 2)), (draw(st.binary(min_size=4, max_size=4)), draw(st.binary(max_size=9)))
        )
    body = b"".join(
        name
        + struct.pack("<I", draw(u32) if draw(st.integers(0, 7)) == 0 else len(c))
        + c
        + b"\0" * (len(c) & 1)
        for name, c in chunks
    )
    blob = b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body
    return blob[: draw(st.integers(0, len(blob)))] if draw(st.integers(0, 4)) == 0 else blob


@fuzz_settings(short=80)
@given(blob=wav_bytes())
def test_fuzz_wav(blob: bytes) -> None:
    with bounded():
        try:
            audio = decode_wav(blob, "x.wav")
        except BackstretchError:
            return
    assert audio.samples.dtype == np.int16 and audio.samples.ndim == 1
    assert MIN_RATE_HZ <= audio.rate_hz <= MAX_RATE_HZ
