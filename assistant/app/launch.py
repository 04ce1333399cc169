"""The `backstretch` command's entry point: is this a machine the coach can run on?

The coach speaks with piper, and piper needs onnxruntime, which publishes no wheel (and no
source) for 32-bit ARM: on 32-bit Raspberry Pi OS (armhf) pip cannot install it, and a copy
installed some other way would fail deep inside an import. So a 32-bit ARM Python is
refused here with one line, before anything else is imported. A 64-bit kernel under a
32-bit userland (Raspberry Pi OS 32-bit on a Pi 4 or 5) reports `aarch64` or `armv8l`
as its machine, so the check is on the interpreter's word size, not on the kernel's name.
"""

from __future__ import annotations

import platform
import struct
import sys
from collections.abc import Callable, Sequence

ARM = ("arm", "aarch64")  # armv6l, armv7l, armv8l, arm64, aarch64
UNSUPPORTED_32BIT_ARM = (
    "backstretch: this is 32-bit ARM (Raspberry Pi OS 32-bit, armhf), and the voice (piper) needs "
    "onnxruntime, which has no 32-bit ARM build; install Raspberry Pi OS (64-bit) instead"
)


def host() -> tuple[str, int]:
    """This machine's name for its processor, and the Python's pointer size in bits."""
    return platform.machine(), 8 * struct.calcsize("P")


def refusal(machine: str, pointer_bits: int) -> str | None:
    """The one line that refuses this machine, or None when the coach can run on it."""
    if machine.lower().startswith(ARM) and pointer_bits < 64:
        return UNSUPPORTED_32BIT_ARM
    return None


def main(argv: Sequence[str] | None = None, machine: Callable[[], tuple[str, int]] = host) -> int:
    problem = refusal(*machine())
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from assistant.app.cli import main as cli_main

    return cli_main(argv)
