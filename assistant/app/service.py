"""`backstretch service install`: a systemd user unit, so the coach starts at boot.

The unit runs `backstretch run` from this very installation (the venv's own
script), restarts it on failure, and logs to the journal
(`journalctl --user -u backstretch`). User services start with the user's
session; `loginctl enable-linger` starts that session at boot, before anyone
logs in, which is what a headless Raspberry Pi needs (PipeWire or PulseAudio,
the audio server, is a user service too).

Paths go into the unit quoted and escaped as systemd.syntax(7) reads them; a path
with a control character (a newline would start a new directive) is refused. The
unit and the folders made for it get their modes explicitly (0644, 0755), whatever
the umask.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from assistant.errors import ServiceError

log = logging.getLogger(__name__)

UNIT = "backstretch.service"


def unit_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / UNIT


def command(config: Path | None) -> list[str]:
    """How systemd should start the coach: this installation's own entry point."""
    script = Path(sys.executable).parent / "backstretch"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "assistant"]
    if config is not None:
        argv += ["--config", str(config.resolve())]
    return [*argv, "run"]


_PLAIN = re.compile(r"[A-Za-z0-9_./:@+,=-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quote(arg: str) -> str:
    """`arg` as one word of a systemd command line: `%` (specifiers) and `$` (variables)
    doubled, and in double quotes with `\\` and `"` escaped unless it is plain."""
    if _CONTROL.search(arg):
        raise ServiceError(
            f"{arg!r} has a control character (a newline, say), which a unit file cannot hold; "
            "rename it or move it"
        )
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(config: Path | None) -> str:
    exec_start = " ".join(quote(a) for a in command(config))
    return f"""\
[Unit]
Description=backstretch, a hands-free voice coach for the knee-to-chest stretch
After=pipewire.service pipewire-pulse.service pulseaudio.service

[Service]
Type=simple
ExecStart={exec_start}
Restart=on-failure
RestartSec=5
# Python's output straight to the journal: journalctl --user -u backstretch
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=default.target
"""


def install(config: Path | None, enable: bool = True) -> Path:
    """Write the unit; with `enable`, reload systemd, enable and start it, and ask for
    lingering so it starts at boot. Returns the unit's path."""
    path = unit_path()
    text = unit_text(config)
    try:
        _write(path, text)
    except OSError as exc:
        raise ServiceError(f"{path}: cannot write the unit ({exc.strerror}); check the folder") from exc
    log.info("wrote %s", path)
    if not enable:
        return path
    if shutil.which("systemctl") is None:
        raise ServiceError(f"wrote {path}, but systemctl is missing: this system does not run systemd")
    for argv in (["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", UNIT]):
        _run(argv, path)
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
    if shutil.which("loginctl") and user:
        linger = subprocess.run(
            ["loginctl", "enable-linger", user], capture_output=True, text=True, check=False
        )
        if linger.returncode != 0:
            log.warning(
                "could not enable lingering (%s): the coach starts when you log in, not at boot; "
                "`sudo loginctl enable-linger %s` fixes that", linger.stderr.strip(), user,
            )  # fmt: skip
    return path


def _write(path: Path, text: str) -> None:
    """Write the unit atomically, mode 0644, making missing folders 0755: under umask 000
    pathlib would make them world-writable, and anyone could then change what runs."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o755)
        os.chmod(folder, 0o755)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(argv: list[str], path: Path) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        why = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ServiceError(
            f"wrote {path}, but `{' '.join(argv)}` failed ({why}); run it in your own login session "
            f"(over ssh or on the desktop), where the user systemd is running"
        )
