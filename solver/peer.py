"""Pascal Pons' C++ solver as a peer program for side-by-side benchmarks.

Nothing here is needed to solve positions: `scripts/bench_vs_pons.py` uses it to build his
solver from a checkout the user supplies (his repository at git tag ``part12``; it is not
shipped) and to time it on the same positions as ours. His board size is two compile-time
constants in ``position.hpp``; `build_pons` writes a copy of the sources with the size
changed into a scratch folder and compiles it with his Makefile's flags
(``g++ --std=c++11 -O3 -DNDEBUG``). His ``c4solver`` reads one move string per line and
prints ``moves score nodes microseconds`` after resetting its table (untimed), which is the
benchmark protocol both solvers follow.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PONS_SOURCES = ("position.hpp", "solver.hpp", "solver.cpp", "main.cpp", "TranspositionTable.hpp", "MoveSorter.hpp")
PONS_CXXFLAGS = ("--std=c++11", "-W", "-Wall", "-O3", "-DNDEBUG")  # his Makefile's flags
_SIZE_LINE = re.compile(r"(static\s+const\s+int\s+(WIDTH|HEIGHT)\s*=\s*)(\d+)(\s*;)")


@dataclass(frozen=True)
class PeerRun:
    """One pass of the peer solver over a list of positions."""

    scores: np.ndarray
    nodes: np.ndarray
    micros: np.ndarray  # per-position search time as the peer reports it (gettimeofday, 1 us resolution)


def check_pons_source(source: Path) -> None:
    """Raise a clear error unless `source` holds Pons' part-12 sources."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"--pons-source {source} is not a folder (clone github.com/PascalPons/connect4 "
                                f"and check out tag part12)")
    missing = [name for name in PONS_SOURCES if not (source / name).exists()]
    if missing:
        raise FileNotFoundError(f"{source} lacks {', '.join(missing)}: it is not Pons' solver at tag part12 "
                                f"(git -C {source} checkout part12)")
    found = {m.group(2): int(m.group(3)) for m in _SIZE_LINE.finditer((source / "position.hpp").read_text())}
    if set(found) != {"WIDTH", "HEIGHT"}:
        raise ValueError(f"{source / 'position.hpp'}: cannot find the WIDTH and HEIGHT constants to set the board size")


def sized_position_header(text: str, width: int, height: int) -> str:
    """Pons' ``position.hpp`` with the board size constants set to `width` x `height`."""
    sizes = {"WIDTH": width, "HEIGHT": height}
    new, count = _SIZE_LINE.subn(lambda m: f"{m.group(1)}{sizes[m.group(2)]}{m.group(4)}", text)
    if count != 2:
        raise ValueError(f"expected one WIDTH and one HEIGHT constant in position.hpp, found {count} size lines")
    return new


def build_pons(source: Path, width: int, height: int, build_dir: Path, compiler: str = "g++") -> Path:
    """Compile Pons' solver for a `width` x `height` board; return the binary (reused if built).

    :param source: his sources (tag part12).
    :param build_dir: scratch folder; the binary goes to ``build_dir/WxH/c4solver``.
    """
    check_pons_source(source)
    if width >= 10 or width * (height + 1) > 64:
        raise ValueError(f"Pons' solver needs width < 10 and width * (height + 1) <= 64, got {width}x{height}")
    if shutil.which(compiler) is None:
        raise FileNotFoundError(f"no C++ compiler {compiler!r} on PATH; install g++ to build Pons' solver")
    target = Path(build_dir) / f"{width}x{height}"
    binary = target / "c4solver"
    stamp = target / "flags.txt"
    flags = " ".join((compiler, *PONS_CXXFLAGS))
    if binary.exists() and stamp.exists() and stamp.read_text() == flags:
        return binary
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        for name in PONS_SOURCES:
            text = (Path(source) / name).read_text()
            if name == "position.hpp":
                text = sized_position_header(text, width, height)
            (Path(tmp) / name).write_text(text)
        out = Path(tmp) / "c4solver"
        cmd = [compiler, *PONS_CXXFLAGS, "-o", str(out), "solver.cpp", "main.cpp"]
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building Pons' solver for {width}x{height} failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
        out.replace(binary)
    stamp.write_text(flags)
    return binary


def run_pons(binary: Path, moves: list[str], timeout: float | None = None) -> PeerRun:
    """Solve `moves` (one move string per position) with Pons' binary, strong, table reset per position."""
    text = "".join(m + "\n" for m in moves)
    done = subprocess.run([str(binary)], input=text, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{binary} exited with {done.returncode}: {done.stderr[-500:]}")
    lines = done.stdout.splitlines()
    if len(lines) != len(moves):
        raise RuntimeError(f"{binary} answered {len(lines)} lines for {len(moves)} positions: {done.stderr[-500:]}")
    rows = []
    for line, m in zip(lines, moves):
        fields = line.split()
        if len(fields) != 4 or fields[0] != m:
            raise RuntimeError(f"{binary} rejected position {m!r}: {done.stderr[-300:] or line!r}")
        rows.append([int(f) for f in fields[1:]])
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return PeerRun(arr[:, 0], arr[:, 1], arr[:, 2].astype(np.float64))
