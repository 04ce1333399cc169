"""The whole program on a Raspberry Pi's CPU, under emulation (`make pi-check`, issue 14).

A Debian bookworm arm64 root is built with debootstrap and run with qemu-user-static
(binfmt_misc), the way Raspberry Pi OS (64-bit) bookworm runs: same Debian release, same
Python 3.11, same aarch64 wheels from PyPI. The project is installed there from its wheel,
built here, with its dependencies from PyPI, and then run: `backstretch demo`,
`backstretch run --in` on a recording of spoken commands with each recogniser, the echo
canceller (on noise, then `run --in` on the commands said over the coach's own echo),
and the fast tests that need no audio server. One table says what ran, whether it passed and how
long it took; the exit code is 0 only if every step passed.

Everything made is kept outside the repository, in $XDG_CACHE_HOME/backstretch-dev
(default ~/.cache): the root (`pi-root-bookworm-arm64`, complete once its stamp file is
written), the recording, and the wheel. A second run reuses them: the root is built once
(about 15 minutes here), the venv inside it keeps its packages.

Needs root (debootstrap, chroot, mount), the Debian packages debootstrap, qemu-user-static
and binfmt-support (`make pi-check` installs them with tools/debs), and the English vosk
model (`make vosk-model`). Standard library only; the program itself is run as a
subprocess, on this machine with the Python running this script, in the root with its own.

Emulation is for correctness, not for timing: the durations say how long the check takes,
not how fast a Pi is.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import wave
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
ARCH = "arm64"
MIRROR = "http://deb.debian.org/debian"
# Python and what the wheels load at run time: PortAudio for sounddevice, libatomic for vosk.
ROOT_DEBS = ("python3", "python3-venv", "libportaudio2", "libatomic1", "ca-certificates")
# Installed into a root already built (not in the stamp, so no rebuild): speexdsp, the echo
# canceller of `run --in` (assistant/hear/echo.py).
ADDED_DEBS = ("libspeexdsp1",)
# The root is complete once this file exists; its text names what was asked for, so a
# change of packages builds it again.
STAMP = ".backstretch-pi-root"
STAMP_TEXT = f"{SUITE} {ARCH} {' '.join(ROOT_DEBS)}\n"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Where things go inside the root.
APP = Path("/opt/backstretch")
VENV = APP / "venv"
MODEL_IN_ROOT = Path("/opt/vosk-model")
HOST_CA = Path("/etc/ssl/certs/host-ca-bundle.crt")
# The recording: what a person says, and when (seconds from the start), in the bundled voice.
# Each "pause" comes while the coach speaks (barge-in); the others while it is quiet.
SAID = (
    (1.0, "where am i"),
    (8.0, "start back stretch"),
    (30.0, "pause"),
    (38.0, "keep going"),
    (45.0, "pause"),
    (52.0, "stop"),
)
RECORDING_S = 58.0
EXPECTED_INTENTS = ["status", "start", "pause", "resume", "pause", "stop"]
# Fast tests that open no audio device and need no PulseAudio (186 tests, 9 s on x86;
# all of tests/coach took over 6 minutes emulated).
TESTS = (
    "tests/coach/test_intents.py",
    "tests/coach/test_routine.py",
    "tests/coach/test_session.py",
    "tests/test_pcm.py",
    "tests/speak/test_wav.py",
)
TEST_PACKAGES = ("pytest>=8,<10", "hypothesis>=6.100,<7")
# 32-bit Raspberry Pi OS (armhf): the platform tags a 32-bit ARM wheel can carry.
ARMHF_PLATFORMS = (
    "linux_armv7l",
    "manylinux2014_armv7l",
    "manylinux_2_17_armv7l",
    "manylinux_2_28_armv7l",
    "manylinux_2_31_armv7l",
    "manylinux_2_35_armv7l",
)
# Without these PyPI has nothing for armhf (no wheel, and onnxruntime no source either).
ARMHF_MISSING = ("onnxruntime", "piper-tts")


# The names given whose installed files include compiled code.
PURE_CHECK = (
    "import sys, importlib.metadata as m; "
    "print(*[n for n in sys.argv[1:] if any(str(f).endswith('.so') for f in m.distribution(n).files or [])])"
)


class CheckError(Exception):
    """A step failed; the message says why, in one line."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backstretch-dev"


def pi_root() -> Path:
    return cache_dir() / f"pi-root-{SUITE}-{ARCH}"


def vosk_model() -> Path:
    found = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "vosk_model.py"), "--path"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip().splitlines()[-1])


def run(
    argv: list[str], *, env: dict[str, str] | None = None, timeout_s: float = 3600.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`argv`, its output captured; a non-zero exit is a CheckError with the output's tail."""
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise CheckError(f"{' '.join(argv[:6])}... exit {done.returncode}:\n    " + "\n    ".join(tail))
    return done


# -- the host -----------------------------------------------------------------------


def check_host() -> str:
    if os.geteuid() != 0:
        raise CheckError("needs root (debootstrap, chroot and mount)")
    missing = [
        c for c in ("debootstrap", "chroot", "update-binfmts", "qemu-aarch64-static") if not shutil.which(c)
    ]
    if missing:
        raise CheckError(
            f"missing {', '.join(missing)}: apt-get install debootstrap qemu-user-static binfmt-support"
        )
    return "root, debootstrap, qemu-aarch64-static"


def enable_binfmt() -> str:
    """binfmt_misc mounted and qemu-aarch64 registered, so the kernel runs arm64 programs."""
    if not (BINFMT / "status").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    handler = BINFMT / "qemu-aarch64"
    if not handler.exists() or not handler.read_text().startswith("enabled"):
        run(["update-binfmts", "--enable", "qemu-aarch64"])
    text = handler.read_text() if handler.exists() else ""
    if not text.startswith("enabled"):
        raise CheckError(f"qemu-aarch64 is not registered in {BINFMT}")
    flags = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags")), ""
    )
    return f"qemu-aarch64 enabled, flags {flags}"


def build_root() -> str:
    """The bookworm arm64 root, built once (in a .partial folder, renamed when complete)."""
    target = pi_root()
    if (target / STAMP).is_file() and (target / STAMP).read_text() == STAMP_TEXT:
        return f"reused {target}"
    partial = target.with_name(target.name + ".partial")
    for old in (partial, target):
        if old.exists():
            shutil.rmtree(old)
    partial.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            "debootstrap",
            f"--arch={ARCH}",
            "--variant=minbase",
            f"--include={','.join(ROOT_DEBS)}",
            SUITE,
            str(partial),
            MIRROR,
        ],
        timeout_s=3 * 3600,
    )
    partial.rename(target)
    (target / STAMP).write_text(STAMP_TEXT)
    return f"built {target}"


@contextmanager
def mounted(root: Path, model: Path) -> Iterator[None]:
    """/proc, /dev and the vosk model (read-only) inside the root, unmounted on the way out.
    Not /sys: with the host's /sys there, onnxruntime (its cpuinfo) crashes under qemu
    (SIGSEGV as the voice loads); without it, it warns and runs."""
    done: list[Path] = []
    try:
        for argv, point in (
            (["mount", "-t", "proc", "proc"], root / "proc"),
            (["mount", "--bind", "/dev"], root / "dev"),
            (["mount", "--make-private"], root / "dev"),
            (["mount", "--bind", str(model)], root / MODEL_IN_ROOT.relative_to("/")),
            (["mount", "-o", "remount,bind,ro"], root / MODEL_IN_ROOT.relative_to("/")),
        ):
            point.mkdir(parents=True, exist_ok=True)
            run([*argv, str(point)])
            if point not in done:
                done.append(point)
        yield
    finally:
        for point in reversed(done):
            if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def inside(
    root: Path, argv: list[str], timeout_s: float = 3600.0, cwd: Path = APP, cache: str = "/root/.cache"
) -> str:
    """`argv` run in the root, in a clean environment; its stdout."""
    env = [
        "HOME=/root",
        "LANG=C.UTF-8",
        "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "XDG_CONFIG_HOME=/root/.config",
        f"XDG_CACHE_HOME={cache}",
        "XDG_DATA_HOME=/root/.local/share",
    ]
    if (root / HOST_CA.relative_to("/")).is_file():
        env += [f"PIP_CERT={HOST_CA}", f"SSL_CERT_FILE={HOST_CA}"]
    script = f'cd {cwd} && exec "$@"'
    return run(
        ["chroot", str(root), "/usr/bin/env", "-i", *env, "/bin/sh", "-c", script, "sh", *argv],
        timeout_s=timeout_s,
    ).stdout


# -- the steps ------------------------------------------------------------------------


def root_packages(root: Path) -> str:
    """The root's Debian packages (a root built with an older list gets the new ones)."""
    shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
    # A machine whose HTTPS goes through a proxy with its own authority (this one) names its
    # bundle in PIP_CERT or SSL_CERT_FILE; pip in the root trusts the same one.
    bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if bundle and Path(bundle).is_file():
        shutil.copyfile(bundle, root / HOST_CA.relative_to("/"))
    (root / APP.relative_to("/")).mkdir(parents=True, exist_ok=True)
    wanted = (*ROOT_DEBS, *ADDED_DEBS)
    # dpkg-query exits 1 for a package it has never heard of; its output still lists the rest.
    status = inside(root, ["sh", "-c", 'dpkg-query -W -f="\\${Package} \\${Status}\\n" "$@" || true',
                           "sh", *wanted], cwd=Path("/"))  # fmt: skip
    installed = {line.split()[0] for line in status.splitlines() if line.endswith(" installed")}
    missing = [p for p in wanted if p not in installed]
    if missing:
        inside(root, ["apt-get", "update", "-qq"], cwd=Path("/"))
        inside(
            root,
            [
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                *missing,
            ],
            cwd=Path("/"),
        )
    machine = inside(
        root, ["python3", "-c", "import platform; print(platform.machine(), platform.python_version())"]
    )
    return f"{machine.strip()}; installed {' '.join(missing) or 'nothing new'}"


def install_wheel(root: Path) -> str:
    """The project's wheel built here, installed in a venv in the root with its dependencies
    from PyPI: aarch64 wheels, or source only for pure Python (nothing may compile)."""
    dist = cache_dir() / "pi-wheel"
    shutil.rmtree(dist, ignore_errors=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)])
    (wheel,) = dist.glob("backstretch-*.whl")
    app = root / APP.relative_to("/")
    for old in app.glob("backstretch-*.whl"):
        old.unlink()
    shutil.copy2(wheel, app / wheel.name)
    # The same wheel and requests as last time: nothing to install (pip alone takes minutes here).
    wanted_now = _contents(wheel, " ".join(TEST_PACKAGES))
    stamp = app / "installed.sha256"
    if stamp.is_file() and stamp.read_text() == wanted_now:
        return "the same wheel as last time: " + _versions(root)
    stamp.unlink(missing_ok=True)
    if not (root / VENV.relative_to("/") / "bin" / "python").exists():
        inside(root, ["python3", "-m", "venv", str(VENV)])
    # More retries than pip's 5: emulated TLS is slow, and on a loaded host the proxy here
    # reset every try of one download (livekit's 10 MB wheel) for 19 minutes, then served it.
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--retries", "15"]
    wheelhouse = _host_wheelhouse(app / "wheelhouse")
    inside(
        root,
        [
            *pip,
            "install",
            "--quiet",
            "--only-binary=:all:",
            "--force-reinstall",
            "--no-deps",
            str(APP / wheel.name),
        ],
    )
    report = app / "pip-report.json"
    report.unlink(missing_ok=True)
    found = ["--find-links", str(APP / wheelhouse.name)]
    inside(root, [*pip, "install", "--quiet", "--prefer-binary", "--report", str(APP / report.name),
                  *found, str(APP / wheel.name), *TEST_PACKAGES])  # fmt: skip
    # A package with no wheel (srt, vosk's) is built here: fine only if it is pure Python.
    built = [i["metadata"]["name"] for i in json.loads(report.read_text())["install"]
             if not i["download_info"]["url"].endswith(".whl")]  # fmt: skip
    compiled = inside(root, [str(VENV / "bin" / "python"), "-c", PURE_CHECK, *built]).split()
    if compiled:
        raise CheckError(f"compiled from source, no aarch64 wheel: {', '.join(compiled)}")
    inside(root, [*pip, "check"])
    stamp.write_text(wanted_now)
    return _versions(root)


AARCH64_PLATFORMS = (
    "manylinux_2_28_aarch64",
    "manylinux_2_17_aarch64",
    "manylinux2014_aarch64",
    "linux_aarch64",
)


def _host_wheelhouse(folder: Path) -> Path:
    """The aarch64 wheels of the direct dependencies, downloaded here, natively, for pip in
    the root to find first: emulated pip reads a download so slowly that, on a loaded host,
    the HTTPS proxy here reset every try of a 10 MB wheel (19 min, then the step failed).
    A dependency with no aarch64 wheel is left to pip in the root."""
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [a for p in AARCH64_PLATFORMS for a in ("--platform", p)]
    for name in _dependencies():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             *platforms, "--python-version", "3.11", "--implementation", "cp", "-d", str(folder), name],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    return folder


def _contents(wheel: Path, extra: str) -> str:
    """A digest of the wheel's files (not of the zip, whose timestamps change each build)."""
    digest = hashlib.sha256(extra.encode())
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            digest.update(name.encode() + b"\0" + z.read(name))
    return digest.hexdigest()


def _versions(root: Path) -> str:
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    versions = inside(root, [*pip, "list", "--format=json"])
    found = {p["name"].lower(): p["version"] for p in json.loads(versions)}
    wanted = ("backstretch", "numpy", "onnxruntime", "piper-tts", "pocketsphinx", "vosk", "soxr")
    return ", ".join(f"{name} {found.get(name, 'MISSING')}" for name in wanted)


def recording_path() -> Path:
    return cache_dir() / "pi-recording" / "commands.wav"


def make_recording() -> Path:
    """SAID in the bundled voice, made here by the program itself (`backstretch say --out`),
    over a quiet room's noise; kept in the cache."""
    path = recording_path()
    spec = json.dumps([SAID, RECORDING_S])
    if (
        path.is_file()
        and path.with_suffix(".json").is_file()
        and path.with_suffix(".json").read_text() == spec
    ):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 0
    clips: list[tuple[float, list[int]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = _host_env(Path(tmp))
        for t, text in SAID:
            clip = Path(tmp) / "clip.wav"
            run([sys.executable, "-m", "assistant", "say", text, "--out", str(clip)], env=env, cwd=Path(tmp))
            with wave.open(str(clip), "rb") as w:
                rate = w.getframerate()
                frames = w.readframes(w.getnframes())
            clips.append((t, list(struct.unpack(f"<{len(frames) // 2}h", frames))))
    noise = random.Random(7)
    out = [round(noise.gauss(0.0, 20.0)) for _ in range(round(RECORDING_S * rate))]
    for t, samples in clips:
        start = round(t * rate)
        for i, s in enumerate(samples):
            out[start + i] = max(-32768, min(32767, out[start + i] + s))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(out)}h", *out))
    path.with_suffix(".json").write_text(spec)
    return path


def _host_env(home: Path) -> dict[str, str]:
    """This machine's environment, with the checkout first on the path and a private
    configuration (the user's own must not change what is checked)."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
    }


def intents_of(timeline: str) -> list[str]:
    events = [json.loads(line) for line in timeline.splitlines() if line.strip()]
    return [str(e["name"]) for e in events if e.get("event") == "intent"]


def run_in(root: Path, recording: Path, engine: str) -> str:
    """`backstretch run --in` with `engine`, here (the reference) and in the root; both must
    hear EXPECTED_INTENTS."""
    model = {"vosk": MODEL_IN_ROOT, "pocketsphinx": None}[engine]
    config = f"stt:\n  engine: {engine}\n" + (f"  vosk_model: {model}\n" if model else "")
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        host_model = vosk_model() if model else None
        (here / "c.yaml").write_text(config.replace(str(MODEL_IN_ROOT), str(host_model)))
        run(
            [
                sys.executable,
                "-m",
                "assistant",
                "--config",
                str(here / "c.yaml"),
                "run",
                "--in",
                str(recording),
                "--mute",
                "--quiet",
                "--timeline",
                str(here / "t.jsonl"),
            ],
            env=_host_env(here),
        )
        reference = intents_of((here / "t.jsonl").read_text())
    app = root / APP.relative_to("/")
    shutil.copyfile(recording, app / "commands.wav")
    (app / f"{engine}.yaml").write_text(config)
    timeline = app / f"{engine}.jsonl"
    timeline.unlink(missing_ok=True)
    inside(
        root,
        [
            str(VENV / "bin" / "backstretch"),
            "--config",
            str(APP / f"{engine}.yaml"),
            "run",
            "--in",
            str(APP / "commands.wav"),
            "--mute",
            "--quiet",
            "--timeline",
            str(APP / timeline.name),
        ],
    )
    heard = intents_of(timeline.read_text())
    if heard != EXPECTED_INTENTS or reference != EXPECTED_INTENTS:
        raise CheckError(f"heard {heard} (on this machine: {reference}); expected {EXPECTED_INTENTS}")
    return f"heard {' '.join(heard)} (as on this machine)"


# The cue caches of the demo's two voices (the coach's and the listener's), one line each.
CUE_DIRS = (
    "from assistant.app import demo, settings, wiring; from assistant.speak.cache import CueCache; "
    "from assistant.speak.tts import Synthesizer; coach = wiring.open_voice(settings.Settings()); "
    "print(coach.dir); print(CueCache(Synthesizer(coach.synth.voice, demo.LISTENER)).dir)"
)


def seed_cues(root: Path) -> str:
    """The demo's cues, synthesised here, put in the root's cue caches.

    Piper under emulation takes about two minutes a cue here (100 times slower than on
    this machine), and the demo needs some 70: hours. So the demo runs on cues made on x86
    (the same voice and settings; a cue is a WAV named after its text), and synthesis on
    arm64 is checked apart, on one line (`say`)."""
    seed = cache_dir() / "pi-cues"
    if not (seed / "done").is_file():
        shutil.rmtree(seed, ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            env = {**_host_env(Path(tmp)), "XDG_CACHE_HOME": str(seed)}
            run([sys.executable, "-m", "assistant", "demo", "--dir", str(Path(tmp) / "demo")], env=env)
        (seed / "done").write_text("")
    return f"{_copy_cues(root)} cues copied into the root's two caches"


def _copy_cues(root: Path) -> int:
    """The WAVs of the x86 cue caches (pi-cues) not yet in the root's caches, copied there."""
    seed = cache_dir() / "pi-cues"
    here = run([sys.executable, "-c", CUE_DIRS], env={**_host_env(seed), "XDG_CACHE_HOME": str(seed)})
    there = inside(root, [str(VENV / "bin" / "python"), "-c", CUE_DIRS])
    copied = 0
    for source, target in zip(here.stdout.split(), there.split(), strict=True):
        into = root / Path(target).relative_to("/")
        into.mkdir(parents=True, exist_ok=True)
        for wav in Path(source).glob("*.wav"):
            if not (into / wav.name).exists():
                shutil.copy2(wav, into / wav.name)
                copied += 1
    return copied


def say(root: Path) -> str:
    """One line synthesised by piper on arm64 (onnxruntime's aarch64 build), as long as here."""
    text = "Breathe out, pull. Seven."
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp) / "say.wav"
        run([sys.executable, "-m", "assistant", "say", text, "--out", str(here)], env=_host_env(Path(tmp)))
        expected_s = _length_s(here)
    # An empty cue cache, so that piper speaks (the root's own has this line).
    shutil.rmtree(root / "tmp" / "pi-check-say", ignore_errors=True)
    argv = [str(VENV / "bin" / "backstretch"), "say", text, "--out", str(APP / "say.wav")]
    inside(root, argv, cache="/tmp/pi-check-say")
    got_s = _length_s(root / APP.relative_to("/") / "say.wav")
    # piper's prosody is random (`say` speaks as a session does): this line lasted 1.67 to
    # 1.78 s in 8 syntheses on x86, so two of them may differ by 6 %; a wrong voice or
    # rate would be off by far more.
    if abs(got_s - expected_s) > 0.12 * expected_s:
        raise CheckError(f"{text!r}: {got_s:.3f} s of speech on arm64, {expected_s:.3f} s here")
    return f"{text!r}: {got_s:.3f} s of speech (here {expected_s:.3f} s)"


def _length_s(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def demo(root: Path) -> str:
    """`backstretch demo`, as `make demo` runs it: the real recogniser on the listener's voice
    (on cues from `seed_cues`)."""
    folder = APP / "demo"
    shutil.rmtree(root / folder.relative_to("/"), ignore_errors=True)
    inside(root, [str(VENV / "bin" / "backstretch"), "demo", "--dir", str(folder)])
    made = root / folder.relative_to("/")
    missing = [
        n
        for n in ("listener.wav", "session.wav", "conversation.wav", "timeline.jsonl")
        if not (made / n).is_file()
    ]
    if missing:
        raise CheckError(f"demo wrote no {', '.join(missing)}")
    heard = intents_of((made / "timeline.jsonl").read_text())
    if not heard or heard[0] != "start" or heard[-1] != "stop":
        raise CheckError(f"the demo's recogniser heard {heard}")
    length_s = _length_s(made / "session.wav")
    return f"heard {' '.join(heard)}; session.wav {length_s:.0f} s"


def fast_tests(root: Path) -> str:
    """A handful of the suite's tests, run against the installed package (tests/ copied in,
    the checkout's assistant/ is not)."""
    tests = root / APP.relative_to("/") / "tests"
    shutil.rmtree(tests, ignore_errors=True)
    shutil.copytree(ROOT / "tests", tests, ignore=shutil.ignore_patterns("__pycache__"))
    out = inside(
        root,
        [str(VENV / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", *TESTS],
    )
    located = inside(
        root, [str(VENV / "bin" / "python"), "-c", "import assistant; print(assistant.__file__)"]
    )
    if not located.startswith(str(VENV)):
        raise CheckError(f"the tests imported {located.strip()}, not the installed wheel")
    return out.strip().splitlines()[-1]


def devices(root: Path) -> str:
    """`backstretch devices` in a root with no sound card: one line and exit 2, no traceback."""
    argv = [
        "chroot",
        str(root),
        "/usr/bin/env",
        "-i",
        "HOME=/root",
        "PATH=/usr/bin:/bin",
        str(VENV / "bin" / "backstretch"),
        "devices",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    said = (done.stdout + done.stderr).strip()
    if "Traceback" in said or done.returncode not in (0, 2):
        raise CheckError(f"exit {done.returncode}: {said[-500:]}")
    return f"exit {done.returncode}: {said.splitlines()[-1] if said else '(nothing)'}"


# The echo canceller on 4 s of noise and its echo (10 ms later, 10 dB down, a little
# reverberation): the echo removed over the last second, in dB.
ECHO_SCRIPT = """
import numpy as np
from assistant.hear.echo import FRAME_SAMPLES, SpeexDspCanceller
rng = np.random.default_rng(1)
ref = np.rint(rng.standard_normal(4 * 16000) * 3000).astype(np.int16)
mic = np.convolve(ref.astype(float), [0, 0.3, 0.1, -0.05])[: len(ref)]
mic = np.concatenate([np.zeros(160), mic[:-160]])
mic = np.rint(mic).astype(np.int16)
c = SpeexDspCanceller()
out = np.concatenate([c.process(mic[i : i + FRAME_SAMPLES], ref[i : i + FRAME_SAMPLES])
                      for i in range(0, len(ref), FRAME_SAMPLES)])
last = slice(-16000, None)
power = lambda x: float(np.mean(x[last].astype(float) ** 2))
print(round(10 * np.log10(power(mic) / max(power(out), 1e-9)), 1))
"""
ECHO_MIN_DB = 10.0


def echo_canceller(root: Path) -> str:
    """speexdsp's canceller (the system's libspeexdsp1 through ctypes) from the installed
    wheel, on noise and its echo: at least ECHO_MIN_DB of the echo removed."""
    said = inside(root, [str(VENV / "bin" / "python"), "-c", ECHO_SCRIPT]).strip()
    removed = float(said.splitlines()[-1])
    if removed < ECHO_MIN_DB:
        raise CheckError(f"speexdsp removed {removed} dB of the echo, under {ECHO_MIN_DB}")
    return f"speexdsp removed {removed} dB of the echo"


# The microphone of a bedroom (run here, with the checkout's numpy and scipy): the user's
# commands (argv 1, a WAV) and the echo of what the coach played (argv 2, a WAV, or - for
# none), through tests/kit/room.py's room under bench/echo.py's base conditions: the echo
# 20 dB over the user (calibrated on argv 3's active level, - for none), the user at
# -38 dBFS, 60 ms from player to speaker, RT60 0.3 s. Written to argv 4 at 16 kHz.
ECHO_ROOM = """
import sys, wave
import numpy as np
from assistant.pcm import RATE_HZ, Audio, resample
from tests.kit import room
def read(path):
    with wave.open(path, "rb") as w:
        audio = Audio(np.frombuffer(w.readframes(w.getnframes()), np.int16), w.getframerate())
    return resample(audio, RATE_HZ).samples
user = read(sys.argv[1])
played = read(sys.argv[2]) if sys.argv[2] != "-" else np.zeros(0, np.int16)
played = np.concatenate([played, np.zeros(max(0, len(user) - len(played)), np.int16)])[: len(user)]
power = room.active_power(read(sys.argv[3])) if sys.argv[3] != "-" else 1.0
conditions = room.Conditions(echo_db=20.0, user_dbfs=-38.0, latency_ms=60.0)
mic = room.Room(room.Geometry(rt60_s=0.3), conditions, power).mic(played, user)
with wave.open(sys.argv[4], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(RATE_HZ)
    w.writeframes(mic.samples.tobytes())
"""
# Rounds of the echoed recording before it must be its own session's (see `echo_recording`).
ECHO_ROUNDS = 8


def echo_path() -> Path:
    return cache_dir() / "pi-recording" / "echo.wav"


def _host_run_in(recording: Path, config: Path, timeline: Path, *extra: str) -> list[str]:
    """`backstretch run --in` here, on the x86 cue cache (pi-cues); the intents heard."""
    seed = cache_dir() / "pi-cues"
    env = {**_host_env(config.parent), "XDG_CACHE_HOME": str(seed)}
    argv = [sys.executable, "-m", "assistant", "--config", str(config), "run", "--in", str(recording),
            "--quiet", "--timeline", str(timeline), *extra]  # fmt: skip
    run(argv, env=env)
    return intents_of(timeline.read_text())


def coach_events(timeline: str) -> list[tuple[str, float, str]]:
    """What the coach played, and when: its say and cut events (what its echo is made of)."""
    events = [json.loads(line) for line in timeline.splitlines() if line.strip()]
    return [(e["event"], round(float(e["t"]), 6), str(e.get("text", ""))) for e in events
            if e.get("event") in ("say", "cut")]  # fmt: skip


def echo_recording(config: Path, folder: Path) -> tuple[list[str], int]:
    """A recording of SAID through the room with the echo of the coach's own answers to it,
    made here; the intents heard (with the canceller) and the rounds it took.

    A recording cannot hold the echo of a session that has not run yet, and the session's
    answers move by tens of milliseconds with what it hears (the room changes when an
    utterance ends), so its echo is found by rounds: the user alone through the room first,
    then each round adds the echo of what the session played on the previous one, until a
    session plays exactly what the recording's echo is made of. That recording is then
    what a live session in this room would have heard, echo and all."""
    mix = [sys.executable, "-c", ECHO_ROOM, str(recording_path())]
    played: Path | None = None
    before: list[tuple[str, float, str]] | None = None
    for n in range(ECHO_ROUNDS):
        mic = folder / f"mic-{n}.wav"
        calibration = folder / "played-0.wav"
        run([*mix, str(played or "-"), str(calibration if played else "-"), str(mic)], env=_host_env(folder))
        out = folder / f"played-{n}.wav"
        timeline = folder / f"mic-{n}.jsonl"
        heard = _host_run_in(mic, config, timeline, "--out", str(out))
        said = coach_events(timeline.read_text())
        if said == before:
            shutil.copyfile(mic, echo_path())
            echo_path().with_suffix(".jsonl").write_text(timeline.read_text())
            return heard, n
        before, played = said, out
    raise CheckError(f"the coach's answers still moved after {ECHO_ROUNDS} rounds: no echo is its own")


def echo_run_in(root: Path) -> str:
    """`run --in` on arm64 of a recording with the coach's own voice in it (`echo_recording`:
    SAID, and the echo, 20 dB over the user, of what the coach said back). speexdsp (the
    default of `run --in`, from the root's libspeexdsp1) cancels the coach's voice, and
    vosk must hear EXPECTED_INTENTS, and the coach answer as it does here. Here too, the
    same recording heard without the canceller, to show what the echo does then.
    The cues are made here and copied into the root (piper takes minutes a cue emulated)."""
    app = root / APP.relative_to("/")
    echo_path().parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        config = here / "c.yaml"
        config.write_text(f"stt:\n  engine: vosk\n  vosk_model: {vosk_model()}\n")
        reference, rounds = echo_recording(config, here)
        uncancelled = _host_run_in(echo_path(), config, here / "raw.jsonl", "--no-echo-cancel", "--mute")
    _copy_cues(root)  # the cues the session said here, for the root's session to say
    shutil.copyfile(echo_path(), app / "echo.wav")
    (app / "vosk.yaml").write_text(f"stt:\n  engine: vosk\n  vosk_model: {MODEL_IN_ROOT}\n")
    timeline = app / "echo.jsonl"
    timeline.unlink(missing_ok=True)
    # -v: the log names the canceller that ran (a missing libspeexdsp1 stops the run instead).
    argv = [str(VENV / "bin" / "backstretch"), "-v", "--config", str(APP / "vosk.yaml"), "run", "--in",
            str(APP / "echo.wav"), "--quiet", "--timeline", str(APP / timeline.name)]  # fmt: skip
    said = inside(root, ["sh", "-c", '"$@" 2>&1', "sh", *argv])
    if "echo canceller: speexdsp" not in said:
        raise CheckError(f"no speexdsp canceller in the log: {said.strip().splitlines()[-3:]}")
    heard = intents_of(timeline.read_text())
    if heard != EXPECTED_INTENTS or reference != EXPECTED_INTENTS:
        raise CheckError(f"heard {heard} (here: {reference}); expected {EXPECTED_INTENTS}")
    if coach_events(timeline.read_text()) != coach_events(echo_path().with_suffix(".jsonl").read_text()):
        raise CheckError("the coach answered at other times than here (so its echo is not the recording's)")
    return (
        f"speexdsp on arm64: heard {' '.join(heard)} through the coach's echo at +20 dB, as here "
        f"(echo found in {rounds} rounds); here without the canceller: {' '.join(uncancelled) or 'nothing'}"
    )


def armhf() -> str:
    """32-bit Raspberry Pi OS: which dependencies PyPI has armhf wheels for. The README and
    the start-up message say the program cannot run there; this step fails when that stops
    being true (onnxruntime or piper-tts publish armv7l wheels)."""
    with tempfile.TemporaryDirectory() as tmp:
        names = _dependencies()
        has: dict[str, bool] = {}
        platforms = [a for p in ARMHF_PLATFORMS for a in ("--platform", p)]
        for name in names:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                    *platforms,
                    "--python-version",
                    "3.11",
                    "--implementation",
                    "cp",
                    "-d",
                    tmp,
                    name,
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            has[name.split(">")[0].split("<")[0].split("=")[0]] = done.returncode == 0
    missing = sorted(n for n, ok in has.items() if not ok)
    if not set(ARMHF_MISSING) <= set(missing):
        raise CheckError(f"armhf wheels now exist for {set(ARMHF_MISSING) - set(missing)}: update the README")
    return f"no armv7l wheel: {', '.join(missing)}"


def _dependencies() -> list[str]:
    """The runtime requirements in pyproject.toml (read as text: tomllib is 3.11+ only on
    the host, which is fine, but the list is all that is needed)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [str(r) for r in project["dependencies"]] + ["onnxruntime"]


# -- the table ------------------------------------------------------------------------


class Skipped(Exception):
    """A step that cannot run yet; it does not fail the check."""


@dataclass
class Result:
    name: str
    status: str  # pass, FAIL, skip
    seconds: float
    detail: str


def timed(name: str, step: Callable[[], str], results: list[Result]) -> bool:
    print(f"pi-check: {name} ...", flush=True)
    started = time.monotonic()
    try:
        detail, status = step(), "pass"
    except Skipped as exc:
        detail, status = str(exc), "skip"
    except (CheckError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        detail, status = str(exc), "FAIL"
    results.append(Result(name, status, time.monotonic() - started, detail))
    print(f"pi-check: {name}: {status} ({results[-1].seconds:.0f} s) {detail}", flush=True)
    return status != "FAIL"


def table(results: list[Result]) -> str:
    lines = [f"{'step':24} {'result':6} {'time':>8}  detail", "-" * 78]
    for r in results:
        first = r.detail.splitlines()[0] if r.detail else ""
        minutes, seconds = divmod(round(r.seconds), 60)
        lines.append(f"{r.name:24} {r.status:6} {minutes:4d}:{seconds:02d}  {first[:200]}")
    total = round(sum(r.seconds for r in results))
    lines.append(f"{'total':24} {'':6} {total // 60:4d}:{total % 60:02d}")
    return "\n".join(lines)


# What `--only` can choose; the setup (host, root, packages, wheel, recording) always runs.
STEPS = ("say", "demo", "pocketsphinx", "vosk", "echo", "tests", "devices", "armhf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-armhf", action="store_true", help="do not ask PyPI about armhf wheels")
    parser.add_argument(
        "--only",
        metavar="STEPS",
        help=f"run only these steps after the setup (comma-separated: {', '.join(STEPS)})",
    )
    args = parser.parse_args(argv)
    chosen = (
        set(args.only.split(",")) if args.only else set(STEPS) - ({"armhf"} if args.skip_armhf else set())
    )
    if chosen - set(STEPS):
        parser.error(
            f"--only: no step {', '.join(sorted(chosen - set(STEPS)))}; choose from {', '.join(STEPS)}"
        )
    results: list[Result] = []
    root = pi_root()
    ok = timed("host", check_host, results) and timed("binfmt_misc", enable_binfmt, results)
    ok = ok and timed("arm64 root", build_root, results)
    if ok:
        model = vosk_model()
        if not (model / "am").is_dir():
            results.append(Result("vosk model", "FAIL", 0.0, f"{model}: none; run make vosk-model"))
            ok = False
    if ok:
        with mounted(root, model):
            ok = timed("root packages", lambda: root_packages(root), results)
            ok = ok and timed("install wheel", lambda: install_wheel(root), results)
            if ok:
                made = timed("recording (here)", lambda: str(make_recording()), results)
                if "say" in chosen:
                    timed("say (piper)", lambda: say(root), results)
                seeded = chosen & {"demo", "echo"} and timed(
                    "cues from x86", lambda: seed_cues(root), results
                )
                if seeded and "demo" in chosen:
                    timed("demo", lambda: demo(root), results)
                for engine in ("pocketsphinx", "vosk") if made else ():
                    if engine in chosen:
                        timed(
                            f"run --in {engine}",
                            functools.partial(run_in, root, recording_path(), engine),
                            results,
                        )
                if "echo" in chosen:
                    timed("echo canceller", lambda: echo_canceller(root), results)
                    if made:
                        timed("run --in echo (vosk)", lambda: echo_run_in(root), results)
                if "tests" in chosen:
                    timed("fast tests", lambda: fast_tests(root), results)
                if "devices" in chosen:
                    timed("devices", lambda: devices(root), results)
    if "armhf" in chosen:
        timed("armhf wheels (PyPI)", armhf, results)
    print()
    print(table(results))
    failed = [r for r in results if r.status == "FAIL"]
    for r in failed:
        print(f"\n{r.name}: {r.detail}", file=sys.stderr)
    print(f"\npi-check: {'FAILED' if failed or not ok else 'passed'}")
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
