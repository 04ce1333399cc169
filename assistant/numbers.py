"""Numbers as spoken words, both ways: cues say "seven", and typed "7" matches "seven"."""

from __future__ import annotations

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(n: int) -> str:
    """`n` (0 to 999) in words: 7 -> "seven", 42 -> "forty two"."""
    if not 0 <= n <= 999:
        raise ValueError(f"cannot spell {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    hundreds, rest = divmod(n, 100)
    return f"{_ONES[hundreds]} hundred" + (f" {spell(rest)}" if rest else "")


def spell_minutes(seconds: float) -> str:
    """A rough spoken duration: "less than a minute", "one minute", "twelve minutes"."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "less than a minute"
    if minutes == 1:
        return "one minute"
    return f"{spell(min(minutes, 999))} minutes"
