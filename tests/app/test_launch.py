"""32-bit ARM is refused at start with one line; every other machine gets the CLI."""

from __future__ import annotations

import sys

import pytest

from assistant.app import launch


@pytest.mark.parametrize(
    ("machine", "bits"),
    [
        ("armv7l", 32),  # Raspberry Pi OS 32-bit on a Pi 2 or 3
        ("armv6l", 32),  # a Pi Zero or Pi 1
        ("aarch64", 32),  # Raspberry Pi OS 32-bit on a Pi 4 or 5: a 64-bit kernel, 32-bit Python
        ("armv8l", 32),  # the same under the linux32 personality
    ],
)
def test_32bit_arm_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], machine: str, bits: int
) -> None:
    assert launch.main(["routine"], machine=lambda: (machine, bits)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == launch.UNSUPPORTED_32BIT_ARM + "\n"
    assert "Raspberry Pi OS (64-bit)" in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize(("machine", "bits"), [("aarch64", 64), ("arm64", 64), ("x86_64", 64), ("i686", 32)])
def test_other_machines_run_the_cli(capsys: pytest.CaptureFixture[str], machine: str, bits: int) -> None:
    assert launch.main(["phrases"], machine=lambda: (machine, bits)) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "start:" in captured.out


def test_this_machine_is_read_from_the_interpreter() -> None:
    machine, bits = launch.host()
    assert machine and bits == (64 if sys.maxsize > 2**32 else 32)
    assert launch.refusal(machine, bits) is None  # the machines the suite runs on are 64-bit
