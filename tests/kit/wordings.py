"""New wordings: what a person lying down might say that intents/en.yaml does not list.

Written down on 2026-12-02, before the grammar was made to generalise (issue 12), and
checked then to match no phrase of the grammar. They measure generalisation: no
template may ever be written to catch one of them. Both halves are measured:

- `DEV`: may be looked at while designing the templates (what kinds of wording the
  grammar misses), so its figure flatters;
- `HELD_OUT`: never looked at while designing; its figure is the one reported.

A wording here that no longer needs a new template (a filler the grammar now drops,
say) still counts: that is generalisation too.
"""

from __future__ import annotations

DEV: dict[str, tuple[str, ...]] = {
    "start": ("let's get started", "i'm ready to stretch", "time to stretch", "start my knee stretches"),
    "pause": ("hold it", "just a sec", "pause for a bit", "give me a break"),
    "resume": ("let's keep going", "pick it up again", "i'm good to go", "let's resume"),
    "stop": ("that's enough for today", "let's stop here", "stop the workout", "let's call it a day"),
    "slower": ("not so fast", "can you go slower", "a little more slowly"),
    "faster": ("pick up the pace", "can you go faster", "speed it up a bit"),
    "repeat": ("what was that", "could you repeat that", "one more time"),
    "status": ("how many are left", "which set is this", "how far along are we", "where are we"),
    "skip": ("skip this one", "let's switch legs", "switch to the other leg", "let's do the other side"),
    "help": ("what are my options", "how does this work", "what can i tell you"),
    "louder": ("speak louder", "i can't hear", "i can barely hear you"),
    "quieter": ("not so loud", "speak softer", "that's too loud"),
}

HELD_OUT: dict[str, tuple[str, ...]] = {
    "start": (
        "okay let's do this",
        "can we start the stretches",
        "go ahead and start",
        "let's start stretching",
    ),
    "pause": ("hang on a sec", "let me catch my breath", "wait a sec", "can we take a break"),
    "resume": ("go ahead", "back to it", "keep it going", "okay carry on then"),
    "stop": ("i want to finish", "i've had enough", "we can stop now", "i'm all done"),
    "slower": ("slow it down a bit", "take it slower", "slow down please a bit"),
    "faster": ("a bit quicker", "hurry up a little", "speed up a little please"),
    "repeat": ("say it one more time", "sorry what", "repeat the last one"),
    "status": ("what rep are we on", "are we almost done", "how many sets are left"),
    "skip": ("move on", "go to the other leg", "skip ahead"),
    "help": ("i need help", "what commands are there", "help me out"),
    "louder": ("turn it up a bit", "can you speak up", "make it louder"),
    "quieter": ("turn it down a little", "lower your voice", "make it quieter"),
}


def pairs(wordings: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """(intent, wording) for every wording of a set."""
    return [(intent, text) for intent, texts in wordings.items() for text in texts]
