"""`--script` files: lines `SECONDS TEXT`, "at that session time the user says TEXT".

Blank lines and lines starting with `#` are ignored. SECONDS is a number
(`12.5`) or minutes and seconds (`1:30`). Every TEXT must be a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ScriptError
from assistant.intents import IntentSet

_LINE = re.compile(r"^\s*(?:(\d+):)?(\d+(?:\.\d*)?)\s+(\S.*?)\s*$")


@dataclass(frozen=True)
class Utterance:
    t: float
    text: str


def parse(text: str, name: str, intents: IntentSet) -> list[Utterance]:
    out: list[Utterance] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ScriptError(
                f"{name}:{number}: expected 'SECONDS TEXT' (like '12.5 pause'), got {line.strip()!r}"
            )
        minutes, seconds, said = match.groups()
        t = int(minutes or 0) * 60 + float(seconds)
        if out and t < out[-1].t:
            raise ScriptError(f"{name}:{number}: time {t:g} s comes before the line above ({out[-1].t:g} s)")
        if intents.match(said) is None:
            raise ScriptError(
                f"{name}:{number}: {said!r} is no command; `backstretch phrases` lists what can be said"
            )
        out.append(Utterance(t, said))
    return out


def load(path: Path, intents: IntentSet) -> list[Utterance]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{path}: cannot read the script ({exc}); check the path") from exc
    return parse(text, str(path), intents)
