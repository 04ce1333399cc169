"""A private PulseAudio daemon with null sinks: real, paced audio devices without hardware.

    sink   spk       where the coach speaks; record it from spk.monitor
    sink   micsink   where a test "talks":  paplay --device=micsink x.wav
    source mic       micsink.monitor remapped: the coach's microphone

Started once per test session before sounddevice is imported (PortAudio scans
devices at import). Everything it and its clients write stays under its base
folder (HOME, XDG_RUNTIME_DIR, the cookie). Null sinks are loaded with
`norewinds=1`: without it every new stream stalls 1.3 to 2 s after starting.
The daemon dies with the test process (PR_SET_PDEATHSIG), so none is left behind.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


class PulseError(RuntimeError):
    pass


def _die_with_parent() -> None:  # in the child, between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PulseServer:
    def __init__(self, rate_hz: int = 48000) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="backstretch-pulse-"))
        self.rate_hz = rate_hz
        self.run_dir = self.base / "run"
        self.socket = self.run_dir / "pulse" / "native"
        self.cookie = self.base / "cookie"
        self.log = self.base / "pulse.log"
        self.modules: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    def client_env(self, sink: str = "spk", source: str = "mic") -> dict[str, str]:
        """What a process using sounddevice, pactl, paplay or parecord needs."""
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_COOKIE": str(self.cookie),
            "XDG_RUNTIME_DIR": str(self.run_dir),
            "PULSE_SINK": sink,
            "PULSE_SOURCE": source,
        }

    def _env(self, daemon: bool = False) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        if daemon:
            env.update(
                HOME=str(self.base), XDG_RUNTIME_DIR=str(self.run_dir),
                XDG_CONFIG_HOME=str(self.base / "config"), XDG_STATE_HOME=str(self.base / "state"),
                PULSE_STATE_PATH=str(self.base / "state"), PULSE_RUNTIME_PATH=str(self.run_dir / "pulse"),
                PULSE_COOKIE=str(self.cookie),
            )  # fmt: skip
        else:
            env.update(self.client_env())
        return env

    def pactl(self, *args: str) -> str:
        result = subprocess.run(["pactl", *args], env=self._env(), capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            raise PulseError(f"pactl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def load_sink(self, name: str) -> None:
        self.modules[name] = int(
            self.pactl(
                "load-module",
                "module-null-sink",
                f"sink_name={name}",
                f"rate={self.rate_hz}",
                "channels=2",
                "norewinds=1",
            ).strip()  # fmt: skip
        )

    def load_mic(self) -> None:
        self.modules["mic"] = int(
            self.pactl(
                "load-module", "module-remap-source", "source_name=mic", "master=micsink.monitor"
            ).strip()
        )

    def unload(self, name: str) -> None:
        self.pactl("unload-module", str(self.modules.pop(name)))

    def start(self, timeout_s: float = 10.0) -> PulseServer:
        if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
            raise PulseError("pulseaudio is not installed (apt-get install pulseaudio pulseaudio-utils)")
        self.run_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--use-pid-file=no", "--system=no",
             "--exit-idle-time=-1", "--disable-shm=yes", "--realtime=no", "--high-priority=no",
             f"--log-target=file:{self.log}",
             f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}"],
            env=self._env(daemon=True), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while not (self.socket.exists() and self._answers()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PulseError(f"pulseaudio did not start; see {self.log}")
            time.sleep(0.02)  # polling a daemon's start-up, not pacing a test
        self.load_sink("spk")
        self.load_sink("micsink")
        self.load_mic()
        self.pactl("set-default-sink", "spk")
        self.pactl("set-default-source", "mic")
        return self

    def _answers(self) -> bool:
        return (
            subprocess.run(["pactl", "info"], env=self._env(), capture_output=True, timeout=5).returncode == 0
        )

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def restart(self) -> None:
        """Kill the daemon (every stream on it dies) and start it again on the same socket."""
        self.kill()
        self.start()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            subprocess.run(["pactl", "exit"], env=self._env(), capture_output=True, timeout=5)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        atexit.unregister(self.stop)


class Recorder:
    """parecord on the speaker's monitor (or another source), for the length of a `with` block."""

    def __init__(self, path: Path, device: str = "spk.monitor", rate_hz: int = 22050) -> None:
        self.path, self.device, self.rate_hz = path, device, rate_hz

    def __enter__(self) -> Recorder:
        self.proc = subprocess.Popen(
            ["parecord", f"--device={self.device}", "--file-format=wav", f"--rate={self.rate_hz}",
             "--channels=1", "--latency-msec=20", str(self.path)]
        )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # the recorder's own buffer: let the last words reach the file
        self.proc.terminate()
        self.proc.wait()
