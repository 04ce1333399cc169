"""`python -m bench` (`make bench`): every figure of issue 6 into bench/results.md and results.json.

Order matters for the figures' quality, not their correctness:
1. the voice (a cold cue-cache build and warm starts) on an otherwise idle machine;
2. the real-time cue-timing session starts: ten minutes hands-free on PulseAudio, in
   the background;
3. meanwhile, on the other core, accuracy, latency, recogniser load and memory;
4. the real-time session ends and its recording is analysed;
5. instructions counted under callgrind, on both cores (counts do not depend on load).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import accuracy, echo, instructions, latency, load, memory, real, report, timing, voice, wordings
from bench.context import Bench
from bench.report import Section
from tests.kit.pulse import PulseError, PulseServer

log = logging.getLogger("bench")

# The issues' order.
ORDER = (
    "latency",
    "load",
    "timing",
    "voice",
    "memory",
    "accuracy",
    "real",
    "wordings",
    "echo",
    "instructions",
)


def _timed(measure: Callable[[], Section], key: str) -> Section:
    """Run one measurement; a failure is reported in its section, and the others still run."""
    started = time.monotonic()
    try:
        section = measure()
    except Exception as exc:
        log.exception("%s failed", key)
        section = Section(key, f"{ORDER.index(key) + 1}. {key}: failed", f"The measurement failed: {exc!r}.")
    section.wall_s = time.monotonic() - started
    log.info("%s: %.0f s", section.key, section.wall_s)
    return section


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


MODULES = {
    m.__name__.rsplit(".", 1)[1]: m
    for m in (accuracy, latency, load, memory, real, voice, wordings, echo, instructions)
}
REAL_TIME = {"voice"}  # sections that need the private PulseAudio daemon
# Parts of a section measured alone, merged into that section as results.json has it.
PARTS: dict[str, Callable[[Bench, Section | None], Section]] = {
    "instructions.speak": instructions.measure_speak,
    "instructions.hear": instructions.measure_hear,
    "echo.barge": echo.measure_barge,
    "echo.between": echo.measure_between,
    "echo.next": echo.measure_next,
    "echo.nextfalse": echo.measure_next_false,
    "echo.quiet": echo.measure_quiet,
    "echo.session": echo.measure_session,
    "echo.live": echo.measure_live,
}


def _part(bench: Bench, key: str, old: Section | None) -> Section:
    """A part of a section measured alone and merged into `old`; its time is added to old's."""
    spent = old.wall_s if old is not None else 0.0
    section = _timed(lambda: PARTS[key](bench, old), key.split(".")[0])
    section.wall_s += spent
    return section


def _only(out: Path, keys: list[str], quick: bool) -> int:
    """Measure `keys` again; keep every other section of `out`'s results.json."""
    unknown = sorted(set(keys) - set(MODULES) - set(PARTS))
    if unknown:
        known = ", ".join([*MODULES, *PARTS])
        raise SystemExit(f"python -m bench --only: no section {', '.join(unknown)}; choose from {known}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    old = out / "results.json"
    sections, meta = report.from_json(old.read_text()) if old.is_file() else ([], {})
    bench = Bench(Path(tempfile.mkdtemp(prefix="backstretch-bench-")), quick=quick)
    bench.apply_env()
    try:
        if REAL_TIME & set(keys):
            try:
                bench.pulse = PulseServer(rate_hz=22050).start()
            except PulseError as exc:
                log.warning("no real-time figures: %s", exc)
        # Parts of one section merge one after another (each into the section as the last
        # left it: merged each into the section as it was, all but the last were lost).
        measured: dict[str, Section] = {}
        for k in keys:
            name = k.split(".")[0]
            before = measured.get(name) or next((s for s in sections if s.key == name), None)
            measured[name] = (
                _timed(lambda m=MODULES[k]: m.measure(bench), k)  # type: ignore[misc]
                if k in MODULES
                else _part(bench, k, before)
            )
        fresh = list(measured.values())
    finally:
        if bench.pulse is not None:
            bench.pulse.stop()
        shutil.rmtree(bench.work, ignore_errors=True)
    date = time.strftime("%Y-%m-%d %H:%M")
    for section in fresh:
        section.notes.append(f"Measured on {date} by `python -m bench --only {','.join(keys)}`.")
    sections = [s for s in sections if s.key not in {f.key for f in fresh}] + fresh
    sections.sort(key=lambda s: ORDER.index(s.key) if s.key in ORDER else len(ORDER))
    earlier = f"{meta['partial']}; " if meta.get("partial") else ""  # one --only after another
    meta = {**meta, "partial": f"{earlier}{','.join(keys)} measured again on {date}"}
    md, js = report.write(out, sections, meta)
    print(f"wrote {md} and {js}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="where results.* go")
    parser.add_argument("--quick", action="store_true", help="tiny measurements, to test the bench itself")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (audio, recordings)")
    parser.add_argument(
        "--only",
        help="measure only these sections (comma-separated, of: accuracy, latency, load, memory, real, "
        "voice, wordings, echo, instructions; or instructions.speak, piper's count alone; "
        "instructions.hear, the hear path's; or "
        "echo.barge, the barge-in rows of the three cancellers with vosk alone; echo.between, "
        "commands after a cue; echo.next, the same with the next cue 1 s on; echo.nextfalse, "
        "sentences that are no command into the next cue; echo.quiet, quiet "
        "reverberant commands; echo.session, "
        "self-triggers over a session and the canceller's latency; echo.live, echo removed live "
        "with clock drift) and keep "
        "the others from the results already in --out, each with its own date",
    )
    args = parser.parse_args(argv)
    if args.only:
        return _only(args.out, args.only.split(","), args.quick)
    # Started in the background by a shell, SIGINT is ignored and every child inherits that:
    # the real-time session would never end on the SIGINT the bench sends it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="backstretch-bench-"))
    bench = Bench(work, quick=args.quick)
    bench.apply_env()
    try:
        try:
            bench.pulse = PulseServer(rate_hz=22050).start()
        except PulseError as exc:
            log.warning("no real-time figures: %s", exc)
        sections = [_timed(lambda: voice.measure(bench), "voice")]
        realtime = timing.RealTime(bench)
        realtime.start()
        modules = (accuracy, latency, load, memory, real, wordings, echo)
        for key, module in ((m.__name__.rsplit(".", 1)[1], m) for m in modules):
            sections.append(_timed(lambda m=module: m.measure(bench), key))  # type: ignore[misc]
        sections.append(_timed(lambda: timing.measure(bench, realtime), "timing"))
        # After the real-time session: it keeps both cores busy for minutes.
        sections.append(_timed(lambda: instructions.measure(bench), "instructions"))
    finally:
        if bench.pulse is not None:
            bench.pulse.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    sections.sort(key=lambda s: ORDER.index(s.key))
    meta: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": _machine(),
        "quick": args.quick,
        "wall_s": round(time.monotonic() - started),
    }
    md, js = report.write(args.out, sections, meta)
    print(f"wrote {md} and {js} in {meta['wall_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
