"""Processes that decode whole sets for a test file, behind the real-time tests.

`make test` runs the tests in two processes (tests/conftest.py), so while a file's set is
decoded here the other process may be playing audio on the PulseAudio daemon in real time:
these workers run at a lower priority, and the real-time tests keep their core.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.pool import Pool

NICENESS = 10


def _lower_priority() -> None:
    os.nice(NICENESS)


def pool(processes: int) -> Pool:
    """Fresh interpreters (spawn: no inherited threads or audio streams), at a lower priority."""
    return multiprocessing.get_context("spawn").Pool(processes, initializer=_lower_priority)
