"""Instructions counted by valgrind's callgrind, for regions of a Python program.

A measured program marks its regions with `Regions.measure()`: callgrind's counters
are zeroed at the start of a region and dumped at its end, so each region gets a dump
file of its own (`OUT.1`, `OUT.2`, ...) holding the instructions executed in it, by
every thread of the process (onnxruntime's pool included). Setup (imports, model
loading) falls outside every region and is not counted.

The marks are valgrind client requests: the magic instruction sequence of valgrind.h,
which valgrind recognises and a real CPU executes as a no-op. Python cannot inline
assembly, so the few bytes of a function issuing it are written to an executable page
and called through ctypes. This needs no compiler, no debug symbols (Debian's python3
is stripped: `--toggle-collect=FUNCTION` finds no Python-level function there), and
no second "setup only" run to subtract. Outside valgrind the requests do nothing.
x86-64 and AArch64 only; elsewhere `Regions` does nothing and says so.

`count(argv, out)` runs a program under callgrind and returns the instructions of its
regions, in order.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

# valgrind.h's VALGRIND_DO_CLIENT_REQUEST_EXPR, as a function: uint64 f(uint64 *args),
# args = [request, arg1..arg5]; returns the request's result (0 outside valgrind).
_CODE = {
    # mov rax,rdi; xor edx,edx; rol rdi,3; rol rdi,13; rol rdi,61; rol rdi,51;
    # xchg rbx,rbx; mov rax,rdx; ret
    "x86_64": "4889f8 31d2 48c1c703 48c1c70d 48c1c73d 48c1c733 4887db 4889d0 c3",
    # mov x4,x0; mov x3,#0; ror x12,x12,#3; ror x12,x12,#13; ror x12,x12,#51;
    # ror x12,x12,#61; orr x10,x10,x10; mov x0,x3; ret
    "aarch64": "e40300aa 030080d2 8c0dcc93 8c35cc93 8ccdcc93 8cf5cc93 4a010aaa e00303aa c0035fd6",
}
RUNNING_ON_VALGRIND = 0x1001
_CALLGRIND = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C','T')
DUMP_STATS = _CALLGRIND + 0
ZERO_STATS = _CALLGRIND + 1
START_INSTRUMENTATION = _CALLGRIND + 4
STOP_INSTRUMENTATION = _CALLGRIND + 5


class Regions:
    """Marks regions for callgrind; outside valgrind (or on another CPU) marks nothing."""

    def __init__(self) -> None:
        code = _CODE.get(platform.machine())
        self._call: Callable[[int], int] | None = None
        self.under_valgrind = False
        if code is None:
            log.warning("no valgrind client requests on %s: regions are not marked", platform.machine())
            return
        raw = bytes.fromhex(code.replace(" ", ""))
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(raw)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        function = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(address)
        self._page = page  # kept alive with the function

        def call(request: int) -> int:
            args = (ctypes.c_uint64 * 6)(request, 0, 0, 0, 0, 0)
            return int(function(ctypes.addressof(args)))

        self._call = call
        self.under_valgrind = bool(call(RUNNING_ON_VALGRIND))

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Count the instructions of the block: one dump file per region."""
        if self._call is not None:
            self._call(START_INSTRUMENTATION)
            self._call(ZERO_STATS)
        yield
        if self._call is not None:
            self._call(DUMP_STATS)
            self._call(STOP_INSTRUMENTATION)


class CallgrindError(RuntimeError):
    pass


def valgrind() -> str | None:
    return shutil.which("valgrind")


def _summary(dump: Path) -> int:
    match = re.search(r"^summary:\s*(\d+)", dump.read_text(), re.MULTILINE)
    if match is None:
        raise CallgrindError(f"{dump}: no summary line")
    return int(match.group(1))


def parse_dumps(out: Path) -> list[int]:
    """The instructions of each region, in order: from `out`.1, `out`.2, ..."""
    dumps = sorted(out.parent.glob(f"{out.name}.*"), key=lambda p: int(p.suffix[1:]))
    return [_summary(d) for d in dumps if d.suffix[1:].isdigit()]


def count(
    argv: Sequence[str], out: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> list[int]:
    """Run `argv` under callgrind; the instructions of each of its regions, in order.
    Only the regions are instrumented: the setup runs at valgrind's plain speed."""
    exe = valgrind()
    if exe is None:
        raise CallgrindError("valgrind is not installed (apt-get install valgrind)")
    for old in out.parent.glob(f"{out.name}*"):
        old.unlink()
    # Uninstrumented outside the regions: the setup runs several times faster.
    cmd = [
        exe,
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        "--dump-line=no",
        *argv,
    ]
    log.info("callgrind: %s", " ".join(argv))
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise CallgrindError(f"{' '.join(argv)} failed under callgrind ({done.returncode}):\n{tail}")
    return parse_dumps(out)
