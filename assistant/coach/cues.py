"""The words the coach says: numbers spelled out, and the cue of each step.

Numbers go both ways: cues say "seven", and typed "7" matches "seven" (see intents).

The cue of a step depends on the step, the verbosity and the rep.

Cues shorten as a side goes on: full instructions for the first reps, then
"Breathe in, and relax." / "Breathe out, pull. Seven." Every text comes from
the routine's `cues:` mapping, so a user routine can reword them.
"""

from __future__ import annotations

from assistant.coach.routine import VERBOSITIES, Routine, Step, StepKind, fill

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
SPELL_MAX = 10**12 - 1  # far beyond any count or duration a session can reach


def spell(n: int) -> str:
    """`n` (0 to SPELL_MAX) in words: 7 -> "seven", 42 -> "forty two", 1000 -> "one thousand"."""
    if not 0 <= n <= SPELL_MAX:
        raise ValueError(f"cannot spell {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {spell(rest)}" if rest else "")
    scale, word = next((s, w) for s, w in _SCALES if n >= s)
    head, rest = divmod(n, scale)
    return f"{spell(head)} {word}" + (f" {spell(rest)}" if rest else "")


def spell_minutes(seconds: float) -> str:
    """A rough spoken duration: "less than a minute", "one minute", "twelve minutes"."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "less than a minute"
    if minutes == 1:
        return "one minute"
    return f"{spell(min(minutes, SPELL_MAX))} minutes"


def _other(routine: Routine, side: str) -> str:
    first, second = routine.side_order()
    return second if side == first else first


def _fill(routine: Routine, text: str, step: Step) -> str:
    values = {
        "side": step.side,
        "other": _other(routine, step.side),
        "count": spell(step.rep).capitalize() if step.rep else "",
        "set": spell(step.set_no),
        "sets": spell(routine.sets),
        "reps": spell(routine.reps_per_side),
    }
    return fill(text, values)


def step_text(routine: Routine, step: Step, verbosity: str, fresh: bool = False) -> str:
    """The cue that opens `step`.

    `fresh` marks the first step of the session or the first after a resume or a
    skip: a setup then gives the full instructions, and an inhale takes the
    "first breath" wording, since the user may have let go of the knee.
    """
    if verbosity not in VERBOSITIES:
        raise ValueError(f"unknown verbosity {verbosity!r}")
    cues = routine.cues
    coaching = routine.coaching
    parts: list[str] = []
    full = verbosity == "detailed" and step.rep <= coaching.full_reps
    length = "full" if full else ("counts" if verbosity == "counts" else "short")
    if step.kind is StepKind.SETUP:
        first_of_session = step.set_no == 1 and step.side_index == 0
        if first_of_session and fresh:
            parts += [cues["welcome"], cues["set_intro"], cues["setup"], cues["safety"]]
        elif fresh:
            parts += [cues["set_intro"], cues["setup"]]
        else:
            parts += [cues["set_intro"]] if step.side_index == 0 else []
            parts += [cues["switch"]]
    elif step.kind is StepKind.INHALE:
        if step.rep == 1 or fresh:
            parts.append(cues["inhale"]["first"][verbosity])
        else:
            parts.append(cues["inhale"][length])
        if verbosity != "counts" and step.rep in coaching.form_at_reps:
            parts.append(cues["form"])
        if verbosity == "detailed" and step.side_index == 0 and step.rep == coaching.aim_at_rep:
            parts.append(cues["aim"])
    elif step.kind is StepKind.EXHALE:
        parts.append(cues["exhale"][length])
    elif step.kind is StepKind.HOLD:
        parts.append(cues["hold"][length])
    else:
        parts.append(cues["release"])
    return " ".join(_fill(routine, p, step) for p in parts)
