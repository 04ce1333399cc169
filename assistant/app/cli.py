"""The command line: `backstretch run | say | voices | devices | routine | config | phrases`.

Every user-fixable problem is a `BackstretchError`: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant import __version__
from assistant.app import demo, offline, service, settings, supervisor
from assistant.app.offline import run_audio, run_script
from assistant.app.progress import TerminalProgress
from assistant.app.store import read_history, state_dir
from assistant.app.wiring import Needs, build, open_voice
from assistant.coach import intents
from assistant.coach.cues import spell_minutes
from assistant.coach.dialogue import Dialogue, simulate
from assistant.coach.events import Say
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from assistant.errors import BackstretchError, DeviceError
from assistant.hear.capture import wav_chunks
from assistant.hear.duplex import choose
from assistant.pcm import Audio, gain
from assistant.speak import voices
from assistant.speak.devices import list_devices
from assistant.speak.playback import Player
from assistant.speak.wav import read_wav, write_wav

log = logging.getLogger(__name__)


def _path(option: str) -> Callable[[str], Path]:
    """A file argument; an empty one is refused by name (Path("") would be ".")."""

    def convert(text: str) -> Path:
        if not text.strip():
            raise BackstretchError(f"{option}: the file name is empty; give the path of a file")
        return Path(text)

    return convert


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backstretch",
        description="A hands-free voice coach for the knee-to-chest stretch.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        type=_path("--config"),
        help="configuration file (default: ~/.config/backstretch/config.yaml)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_routine(p: argparse.ArgumentParser) -> None:
        p.add_argument("--routine", help="a routine file of your own (same schema as the built-in one)")
        p.add_argument("--intents", help="an intents file of your own (same schema as intents/en.yaml)")
        p.add_argument("--verbosity", choices=("detailed", "brief", "counts"), help="how much the coach says")

    run = sub.add_parser("run", help="run a session")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--text", action="store_true", help="type commands on stdin, in real time")
    source.add_argument(
        "--script",
        type=_path("--script"),
        metavar="FILE",
        help="lines 'SECONDS TEXT', played on a virtual clock as fast as possible",
    )
    source.add_argument(
        "--in", dest="in_wav", type=_path("--in"), metavar="WAV",
        help="a recording as the microphone, on the virtual clock (any rate, channels, 16/32-bit)",
    )  # fmt: skip
    run.add_argument("--mute", action="store_true", help="print cues instead of speaking them")
    run.add_argument(
        "--no-echo-cancel", dest="echo_cancel", action="store_false",
        help="hear the microphone (or the --in recording) as it is; by default the coach's own voice "
        "is cancelled in it, so that it can be interrupted while it speaks",
    )  # fmt: skip
    run.add_argument(
        "--out",
        type=_path("--out"),
        metavar="WAV",
        help="with --script or --in: render the coach's voice to a WAV",
    )
    run.add_argument(
        "--timeline", type=_path("--timeline"), metavar="FILE", help="write every event as JSON Lines"
    )
    run.add_argument("--quiet", action="store_true", help="print nothing (with --timeline)")
    with_routine(run)

    say = sub.add_parser("say", help="speak one line (or render it with --out)")
    say.add_argument("text", help="what to say")
    say.add_argument("--out", type=_path("--out"), metavar="WAV", help="write a WAV instead of speaking")

    sub.add_parser("devices", help="list the audio devices")
    voice = sub.add_parser("voices", help="list the voices found, or download one")
    voice_sub = voice.add_subparsers(dest="voices_command", metavar="ACTION")
    voice_sub.add_parser("list", help="list the voices found (the default)")
    download = voice_sub.add_parser("download", help="fetch a voice from the piper voice collection")
    download.add_argument("name", help="a voice name, e.g. en_US-lessac-medium")

    models = sub.add_parser("models", help="the vosk speech model")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    models_sub.add_parser("download", help="install vosk-model-small-en-us-0.15 (40 MB)")

    routine = sub.add_parser("routine", help="print the plan and how long it takes")
    with_routine(routine)
    sub.add_parser("config", help="print the effective configuration and where each value came from")
    phrases = sub.add_parser("phrases", help="list every phrase the coach understands, by intent")
    phrases.add_argument(
        "--intents", type=Path, help="an intents file of your own (default: the bundled one)"
    )
    sub.add_parser("history", help="list past sessions: date, duration, reps done")
    service = sub.add_parser("service", help="start the coach at boot (systemd user unit)")
    service_sub = service.add_subparsers(dest="service_command", metavar="ACTION")
    service_install = service_sub.add_parser("install", help="write, enable and start the unit")
    service_install.add_argument("--no-enable", action="store_true", help="only write the unit file")
    demo = sub.add_parser("demo", help="a whole spoken session without microphone or speaker (make demo)")
    demo.add_argument(
        "--dir", type=_path("--dir"), default=Path("demo"), help="where to write the audio (default: demo/)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except BackstretchError as exc:
        print(f"backstretch: {exc}", file=sys.stderr)
        return exc.exit_code
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args)
    except BackstretchError as exc:
        print(f"backstretch: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    """Each command loads only what it needs: `devices`, `history`, `voices` and `phrases`
    work with a broken configuration file (`devices` is what you run to fix it)."""
    match args.command:
        case None:
            _parser().print_help()
            return 0
        case "devices":
            return _devices(args.config)
        case "history":
            return _history()
        case "voices":
            return _voices(args)
        case "phrases":
            return _phrases(intents.load(args.intents))
        case "models":
            return _models(args)
        case "service":
            return _service(args)
        case "demo":
            return _demo(args.dir, intents.load())
    overrides = {name: getattr(args, name, None) for name in ("routine", "intents", "verbosity")}
    config = settings.load(args.config, overrides)
    if args.command == "say":
        return _say(args, config)
    routine = config.load_routine()
    if args.command == "config":
        source = config.sources.get("routine", "default")
        where = "the built-in routine" if source == "default" else f"routine {config.routine}"
        print(f"# configuration file: {settings.default_path() if args.config is None else args.config}")
        print(settings.describe(config, routine, where))
        return 0
    language = config.load_intents()
    if args.command == "routine":
        print(describe_plan(routine, language, config.verbosity))
        return 0
    return _run(args, config, routine, language)


def _phrases(language: IntentSet) -> int:
    for name in language.names:
        print(f"{name}:")
        for phrase in language.surface[name]:
            print(f"  {phrase}")
    return 0


def _models(args: argparse.Namespace) -> int:
    if args.models_command != "download":
        raise BackstretchError("usage: backstretch models download")
    from assistant.app.download import download_model  # http and TLS: not on a session's start

    path = download_model(progress=TerminalProgress())
    print(f"installed {path}; `backstretch run` now listens with vosk")
    return 0


def _service(args: argparse.Namespace) -> int:
    if args.service_command != "install":
        raise BackstretchError("usage: backstretch service install [--no-enable]")
    path = service.install(args.config, enable=not args.no_enable)
    done = "written" if args.no_enable else "enabled and started"
    print(f"{path}: {done}; logs: journalctl --user -u backstretch")
    return 0


def _voices(args: argparse.Namespace) -> int:
    if args.voices_command == "download":
        from assistant.app.download import download_voice

        path = download_voice(args.name, voices.user_voice_dir(), TerminalProgress())
        print(f"installed {args.name} in {path.parent}; use it with voice: {{name: {args.name}}}")
        return 0
    found = voices.find_all()
    print(f"{'name':36} {'language':8} {'quality':8} {'rate':>6}  source")
    for info in found:
        print(f"{info.name:36} {info.language:8} {info.quality:8} {info.sample_rate_hz:6d}  {info.source}")
    print(f"\n{len(voices.names())} more can be downloaded: backstretch voices download NAME")
    return 0


def _say(args: argparse.Namespace, config: settings.Settings) -> int:
    cache = open_voice(config)
    audio = cache.get(args.text)
    if args.out is not None:
        write_wav(args.out, Audio(gain(audio.samples, config.volume), audio.rate_hz))
        print(f"wrote {args.out} ({audio.duration_s:.2f} s)")
        return 0
    player = Player(cache, config.output_device, config.volume, config.output_rate_hz)
    player.open()
    try:
        player.start_session()
        player.schedule(0.1, audio)
    finally:
        player.close()
    return 0


def _devices(path: Path | None) -> int:
    devices = list_devices()
    if not devices:
        raise DeviceError("no audio devices found; check that the sound card or PulseAudio is running")
    print(f"{'#':>3}  {'name':40} {'in':>3} {'out':>4} {'rate':>7}")
    for index, info in enumerate(devices):
        print(
            f"{index:3d}  {info['name'][:40]:40} {info['max_input_channels']:3d} "
            f"{info['max_output_channels']:4d} {info['default_samplerate']:7.0f}"
        )
    print("\nChoose one by name or number in the configuration: audio: {output_device: NAME}")
    try:  # (a broken configuration file must not stop the listing: it is how to fix it)
        config = settings.load(path)
    except BackstretchError as exc:
        print(f"Speaker and microphone: not known until the configuration loads ({exc})")
        return 0
    choice = choose(config.output_device, config.input_device, config.duplex)
    print(f"Speaker and microphone: {choice.describe()}")
    return 0


def _demo(folder: Path, language: IntentSet) -> int:
    """The main job on the embedded defaults: the user's configuration is not read."""
    config = settings.Settings()
    routine = config.load_routine()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackstretchError(
            f"{folder}: cannot create the folder ({exc.strerror}); check the path"
        ) from exc
    session_wav = folder / "session.wav"
    needs = Needs(voice=True, listen=True, out=session_wav, timeline=folder / "timeline.jsonl",
                  transcript=sys.stdout)  # fmt: skip
    pipeline = build(config, routine, language, needs)
    assert pipeline.cache is not None and pipeline.listener is not None
    listener_wav = demo.write_listener(folder, routine, language, pipeline.cache, config.verbosity)
    run_audio(pipeline.session, pipeline.listener, wav_chunks(listener_wav))
    write_wav(folder / "conversation.wav", demo.mix(read_wav(session_wav), read_wav(listener_wav)))
    print(
        f"\nWrote {folder}/: listener.wav (what the user says), session.wav (the coach), "
        f"conversation.wav (both), timeline.jsonl."
    )
    return 0


def _history() -> int:
    sessions = read_history(state_dir())
    if not sessions:
        print("No sessions yet: say start back stretch.")
        return 0
    print(f"{'date':16}  {'duration':>8}  {'reps':>7}  end")
    for past in sessions:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(past.started))
        minutes, seconds = divmod(round(past.duration_s), 60)
        reps = f"{past.done}/{past.total}"
        print(f"{started:16}  {minutes:5d}:{seconds:02d}  {reps:>7}  {past.end}")
    return 0


def describe_plan(routine: Routine, language: IntentSet, verbosity: str) -> str:
    """The plan in words, with the length of an uninterrupted session."""
    first, second = routine.side_order()
    order = ", ".join(f"{routine.reps_per_side} {s}" for _ in range(routine.sets) for s in (first, second))
    pace = routine.pace
    hold = f", stay {pace.hold_s:g} s" if pace.hold_s else ""
    return "\n".join(
        [
            f"{routine.name}: {routine.sets} sets of {routine.reps_per_side} reps on each leg "
            f"({routine.total_reps} in all)",
            f"order: {order}",
            f"pace: breathe in {pace.inhale_s:g} s, out and pull {pace.exhale_s:g} s{hold}",
            f"verbosity: {verbosity}",
            f"takes: {_format_s(session_length_s(routine, language, verbosity))} without pauses",
        ]
    )


def session_length_s(routine: Routine, language: IntentSet, verbosity: str) -> float:
    """The length of an uninterrupted session, by running one on the virtual clock."""
    start = language.match("start")
    assert start is not None
    says = [a for a in simulate(Dialogue(routine, language, verbosity), [(0.0, start)]) if isinstance(a, Say)]
    return max(a.t + a.duration_s for a in says)


def _format_s(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s ({spell_minutes(seconds)})"


def _run(args: argparse.Namespace, config: settings.Settings, routine: Routine, language: IntentSet) -> int:
    if args.out is not None and args.script is None and args.in_wav is None:
        raise BackstretchError("--out renders a --script or --in session; add one of them")
    # --in always, and --script when muted or rendered, run on the virtual clock.
    virtual = args.in_wav is not None or (args.script is not None and (args.mute or args.out is not None))
    utterances = offline.load(args.script, language) if args.script else []
    needs = Needs(
        voice=args.out is not None or not args.mute,
        speaker=not virtual and not args.mute,
        listen=not args.text and args.script is None,
        store=not virtual,  # a live session's place survives a restart; a simulated one leaves no trace
        echo=args.echo_cancel,  # (when the coach has a voice and listens)
        out=args.out,
        timeline=args.timeline,
        transcript=None if args.quiet else sys.stdout,
    )
    pipeline = build(config, routine, language, needs)
    session, listener = pipeline.session, pipeline.listener
    if args.in_wav is not None:
        assert listener is not None
        run_audio(session, listener, wav_chunks(args.in_wav), pipeline.echo)
    elif virtual:
        run_script(session, utterances)
    else:
        try:
            supervisor.run(
                session, pipeline.player, pipeline.store, listener, config.input_device, utterances,
                stdin=sys.stdin if args.text else None, say=lambda text: print(text, file=sys.stderr),
                echo=pipeline.live_echo, microphone=pipeline.microphone,
            )  # fmt: skip
        finally:
            pipeline.close()  # the cue worker, even when the session never began (Ctrl-C)
            if pipeline.store is not None:
                pipeline.store.release()  # the end is saved: another coach may start
    log.info("session over: %s, %d reps done", pipeline.dialogue.state.value, pipeline.dialogue.done)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
