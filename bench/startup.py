"""The coach's cold start counted in instructions: issue 14's estimate of a Raspberry Pi's
time from launch to the first words, which emulation cannot give (qemu's time says
nothing of a Pi's).

    python -m bench.startup                  count under callgrind, print the estimate
    python -m bench.startup --child ENGINE REPORT voice|mute [VOSK_MODEL]   (the counted process)

The child does what `backstretch run` does before its first words on an empty cue
cache, one callgrind region per part (bench/callgrind.py; every thread counted):
the program's imports (`assistant.app.cli`, as the `backstretch` command imports it),
the settings, routine and intents, the recogniser with its grammar and the Listener
(the greeting waits for it), the voice, and the greeting's synthesis (the cue worker's
first job). Only the standard library and bench/callgrind.py are imported before the
first region, so the imports region holds numpy's and the rest. Not counted: the
interpreter's own start, opening the audio devices, reading the model files from the
SD card, and the player's buffer.

The Pi figures are an **estimate**, made as bench section 10 makes its own
(bench/instructions.py: x86-64 instructions, times its ISA factor, over one Pi core's
assumed instruction rate): all on one core, though piper's inference uses several.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.callgrind import Regions

PARTS = ("imports", "settings", "recogniser", "voice", "greeting")


def child(engine: str, report: Path, voice: bool, model: str | None) -> None:
    """The start, part by part, each in a region of its own; the voice's parts with `voice`."""
    regions = Regions()
    with regions.measure():
        from assistant.app import cli  # noqa: F401 (what the `backstretch` command imports)
    with regions.measure():
        from assistant.app import settings
        from assistant.coach import intents, routine

        config, lang = settings.Settings(), intents.load()
        routine.load()
    with regions.measure():
        from assistant.hear.engines import open_recognizer
        from assistant.hear.listen import Listener

        Listener(open_recognizer(engine, lang.phrases(), model), lang)
    if not voice:
        report.write_text(json.dumps({"parts": list(PARTS[:3]), "greeting_s": None}))
        return
    with regions.measure():
        from assistant.app import supervisor, wiring

        cache = wiring.open_voice(config)
        cache.synth.load()
    with regions.measure():
        audio = cache.synth.synthesize(lang.say(supervisor.GREETING))
    seconds = len(audio.samples) / audio.rate_hz
    report.write_text(json.dumps({"parts": list(PARTS), "greeting_s": seconds}))


def _counted(engine: str, voice: bool) -> tuple[dict[str, int], float | None, float]:
    """The parts' instructions, the greeting's length, and the child's CPU seconds here."""
    from bench import callgrind
    from tests.kit.models import english_model

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        model = [str(english_model())] if engine == "vosk" else []
        argv = [sys.executable, "-m", "bench.startup", "--child", engine, str(report),
                "voice" if voice else "mute", *model]  # fmt: skip
        # Imports from bytecode, as an installed wheel's (pip compiles it): written to a
        # private folder by one run outside valgrind, then a second run's CPU time is the
        # cross-check (the whole process, the interpreter's start included).
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run(argv, env=env, cwd=root, check=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, env=env, cwd=root, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        counts = callgrind.count(argv, Path(tmp) / "callgrind.out", env=env, cwd=root)
        done = json.loads(report.read_text())
    return dict(zip(done["parts"], counts, strict=True)), done["greeting_s"], cpu_s


def count() -> int:
    """pocketsphinx's start with the voice, vosk's without (the voice's parts are the same)."""
    from bench import instructions

    sphinx, greeting_s, sphinx_cpu_s = _counted("pocketsphinx", voice=True)
    vosk, _, vosk_cpu_s = _counted("vosk", voice=False)
    print(f"the greeting lasts {greeting_s:.2f} s; CPU here, outside valgrind: pocketsphinx's whole "
          f"child {sphinx_cpu_s:.2f} s, vosk's (no voice) {vosk_cpu_s:.2f} s")  # fmt: skip
    vosk |= {part: sphinx[part] for part in PARTS[3:]}
    for engine, parts in (("pocketsphinx", sphinx), ("vosk", vosk)):
        total = sum(parts.values())
        print(f"{engine}:")
        for part, n in parts.items():
            print(f"  {part:12} {n / 1e6:9.0f} M instructions (x86-64)")
        print(f"  {'total':12} {total / 1e6:9.0f} M")
        for core in (instructions.PI4, instructions.PI5):
            low = total * instructions.ISA_FACTOR / core.per_s
            high = total * 2.0 / core.per_s  # the ISA factor's upper bound (vector code)
            print(f"  {core.name}: {low:.1f} s (ISA factor {instructions.ISA_FACTOR}) to {high:.1f} s (2.0)")
    return 0


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], Path(argv[2]), argv[3] == "voice", argv[4] if len(argv) > 4 else None)
        return 0
    return count()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
