"""Shared by the fuzz tests: how long they run, and a guard that turns a hang or runaway
memory into a test failure.

The normal suite runs a few dozen examples per reader, derandomised (the same inputs on
every run, so never flaky); `make fuzz` sets $BACKSTRETCH_FUZZ_EXAMPLES and explores
with fresh random inputs for as many as that.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from collections.abc import Iterator
from types import FrameType

from hypothesis import HealthCheck, settings

ENV_EXAMPLES = "BACKSTRETCH_FUZZ_EXAMPLES"
SHORT_EXAMPLES = 30
TIME_LIMIT_S = 10.0  # per input: far beyond any reader's worst case (a 64 kB YAML file: 1 s)
MEMORY_LIMIT_BYTES = 1 << 30  # per input, on top of what the process has mapped already


def fuzz_settings(short: int = SHORT_EXAMPLES) -> settings:
    """Hypothesis settings for a fuzz test: `short` examples, fixed, in the normal suite."""
    long_run = os.environ.get(ENV_EXAMPLES)
    return settings(
        max_examples=int(long_run) if long_run else short,
        derandomize=not long_run,
        database=None,  # nothing written into the checkout
        deadline=None,  # `bounded` limits each input instead, and a load cannot make it flaky
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=bool(long_run),
    )


class Hang(Exception):
    """An input took longer than TIME_LIMIT_S: a reader that never finishes."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang(f"no answer within {TIME_LIMIT_S:g} s")


def _mapped_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """Run the body with a time limit (SIGALRM: the main thread, pure Python or numpy) and
    a memory limit (RLIMIT_AS: an allocation past it raises MemoryError)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _mapped_bytes() + MEMORY_LIMIT_BYTES
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
