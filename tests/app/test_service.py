"""`backstretch service install`: the systemd user unit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.app.cli import main


def test_the_unit_runs_this_installation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "my config.yaml"
    config.write_text("volume: 0.5\n")
    assert main(["--config", str(config), "service", "install", "--no-enable"]) == 0
    unit = Path(capsys.readouterr().out.split(":")[0])
    text = unit.read_text()
    script = Path(sys.executable).parent / "backstretch"
    assert f'ExecStart={script} --config "{config}" run' in text
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    assert unit.parts[-3:] == ("systemd", "user", "backstretch.service")
    if shutil.which("systemd-analyze"):  # systemd's own check of the unit, offline
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
        )
        assert verify.returncode == 0, verify.stderr


def test_without_a_user_systemd_it_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("systemctl") is None:
        pytest.skip("no systemctl here")
    probe = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip("a user systemd is running here: installing would enable a real service")
    assert main(["service", "install"]) == 2
    err = capsys.readouterr().err
    assert "wrote" in err and "run it in your own login session" in err and err.count("\n") == 1
