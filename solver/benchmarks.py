"""Pascal Pons' six Connect Four benchmark sets: where they are, what they contain, and
how to generate look-alikes of the ones that are not shipped.

Pons' sets classify positions by stones played (L1: <= 14, L2: 15..28, L3: > 28) and by
plies remaining to the end under perfect play (R1: < 14, R2: 14..27, R3: >= 28). The three
easy sets (``Test_L3_R1``, ``Test_L2_R1``, ``Test_L1_R1``) and ``Test_L1_R2`` ship with the
project in ``data/connect4`` (provenance in its README); ``../shared/data/connect4`` is also
searched. For Middle-Medium and Begin-Hard, `generate_positions` draws random
openings and keeps those whose exact solution has the right length.

Pons' C++ timings depend on the CPU, so they live in one table, `PONS_ANCHORS`, keyed by
the CPU model they were measured on, each with where and how; `anchor_for` finds the one
for a CPU, and `scripts/bench_solver.py` shows no ratio where there is none. Node counts
do not depend on the CPU and stay with the sets (`BenchmarkSet.pons_mean_nodes`).
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from common.atomic import atomic_write_text
from games.connect4.position import Position

if TYPE_CHECKING:  # pragma: no cover
    from solver.engine import Solver

logger = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
SEARCH_DIRS = (REPO_ROOT.parent / "shared" / "data" / "connect4", REPO_ROOT / "data" / "connect4")


@dataclass(frozen=True)
class BenchmarkSet:
    """One of Pons' sets: what it contains, and his part-12 solver's mean node count on it
    (strong, no book, TT reset per position; nodes do not depend on the CPU)."""

    name: str
    label: str
    moves: tuple[int, int]  # stones played, inclusive
    remaining: tuple[int, int]  # plies to the end under perfect play, inclusive
    pons_mean_nodes: float
    generated_name: str | None = None  # file of our look-alike set when his is not shipped


PONS_SETS = (
    BenchmarkSet("Test_L3_R1", "End-Easy", (29, 41), (1, 13), 51.28),
    BenchmarkSet("Test_L2_R1", "Middle-Easy", (15, 28), (1, 14), 449.6),
    BenchmarkSet("Test_L2_R2", "Middle-Medium", (15, 27), (15, 27), 39907.2, "Gen_L2_R2"),
    BenchmarkSet("Test_L1_R1", "Begin-Easy", (1, 14), (1, 14), 3297.8),
    BenchmarkSet("Test_L1_R2", "Begin-Medium", (1, 14), (15, 28), 1200784.6),
    BenchmarkSet("Test_L1_R3", "Begin-Hard", (1, 13), (29, 42), 58760000.0, "Gen_L1_R3"),
)
# Begin-Hard nodes: the first 70 positions of Pons' file; his published mean over all
# 1,000 is 5.49 s and 65.9 M nodes.


@dataclass(frozen=True)
class PonsFigure:
    """Pons' C++ mean time per position on one set, as measured.

    :param mean_us: mean search time per position, microseconds.
    :param file: the position file it was measured on (his set, or our look-alike of it).
    :param positions: the first this-many positions of `file` (None: all of them).
    """

    mean_us: float
    file: str
    positions: int | None = None


@dataclass(frozen=True)
class PonsAnchor:
    """Pons' C++ timings measured on one CPU model: the only figures a ratio may use on that CPU.

    :param cpu_model: the CPU as ``/proc/cpuinfo`` "model name" reports it (compared by
        `same_cpu_model`: case, "(R)", "(TM)", "CPU", "Processor" and the clock are ignored).
    :param source: where, when and how the figures were measured.
    :param figures: set name (``Test_L..._R...``) -> figure.
    """

    cpu_model: str
    source: str
    figures: Mapping[str, PonsFigure] = field(default_factory=dict)


PONS_ANCHORS = (
    PonsAnchor(
        "AMD EPYC",
        "scripts/bench_vs_pons.py on the project's 2-core AMD EPYC virtual machine (/proc/cpuinfo gives no "
        "finer model; CPU family 26), 2026-12-07, results/bench_vs_pons.json: Pons' solver at git tag part12 "
        "built with his Makefile's flags (g++ --std=c++11 -O3 -DNDEBUG), book off, table reset before every "
        "position (untimed), his solver and ours interleaved on the same positions for 5 rounds (Begin-Hard: "
        "1), the minimum over rounds of his mean time per position. Middle-Medium and Begin-Hard on this "
        "project's look-alike sets. Timings on this virtual machine drift by up to a third between runs "
        "minutes apart; the interleaved ratios in the JSON are what compare the two solvers.",
        {
            "Test_L3_R1": PonsFigure(5.20, "Test_L3_R1"),
            "Test_L2_R1": PonsFigure(41.32, "Test_L2_R1"),
            "Test_L2_R2": PonsFigure(5908.7, "Gen_L2_R2"),
            "Test_L1_R1": PonsFigure(233.9, "Test_L1_R1"),
            "Test_L1_R2": PonsFigure(104280.0, "Test_L1_R2", 100),
            "Test_L1_R3": PonsFigure(6202000.0, "Gen_L1_R3", 10),
        },
    ),
    PonsAnchor(
        "Intel Xeon",
        "Issue #27 (performance): an Intel Xeon of the project's 2-core machine kind (the issue records the "
        "family only). Pons' solver at git tag part12, built with g++ -O3; book off, transposition table "
        "reset before every position; his solver and ours interleaved on the same positions; the minimum "
        "over rounds of the mean time per position. Middle-Medium and Begin-Hard on the positions this "
        "project has for them, its look-alike sets (Pons' files are not shipped).",
        {
            "Test_L3_R1": PonsFigure(4.25, "Test_L3_R1"),
            "Test_L2_R1": PonsFigure(30.48, "Test_L2_R1"),
            "Test_L2_R2": PonsFigure(3710.0, "Gen_L2_R2"),
            "Test_L1_R1": PonsFigure(203.5, "Test_L1_R1"),
            "Test_L1_R2": PonsFigure(153000.0, "Test_L1_R2", 100),
            "Test_L1_R3": PonsFigure(5400000.0, "Gen_L1_R3", 10),
        },
    ),
)


def _normalised(model: str) -> str:
    text = re.sub(r"\((R|TM)\)", " ", model, flags=re.IGNORECASE)
    text = re.sub(r"@\s*[\d.]+\s*GHz", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(CPU|Processor)\b", " ", text, flags=re.IGNORECASE)
    return " ".join(text.lower().split())


def same_cpu_model(a: str, b: str) -> bool:
    """Whether two CPU model strings name the same model (trademarks, "CPU" and the clock ignored)."""
    return _normalised(a) == _normalised(b) != ""


def anchor_for(cpu: str) -> PonsAnchor | None:
    """The Pons C++ figures measured on CPU model `cpu`, or None where there are none."""
    return next((a for a in PONS_ANCHORS if same_cpu_model(a.cpu_model, cpu)), None)


def find_set_file(name: str) -> Path | None:
    """Path of a benchmark file in ``../shared/data/connect4`` or ``data/connect4``."""
    for folder in SEARCH_DIRS:
        if (folder / name).exists():
            return folder / name
    return None


def sets_on_disk() -> list[tuple[BenchmarkSet, Path]]:
    """Each of Pons' sets with the file to run for it: his own if present, else our
    look-alike; a set with neither is left out with a warning."""
    found = []
    for spec in PONS_SETS:
        fname = spec.name if find_set_file(spec.name) else spec.generated_name
        path = find_set_file(fname) if fname else None
        if path is None:
            logger.warning("skipping %s: neither %s nor %s found", spec.label, spec.name, spec.generated_name)
            continue
        found.append((spec, path))
    return found


def random_opening(rng: random.Random, length: int, width: int, height: int) -> Position | None:
    """A uniformly random game of `length` plies that never plays a winning move, or None if
    it cannot go on that long (a full board, or every move wins)."""
    pos = Position.empty(width, height)
    for _ in range(length):
        cols = [c for c in pos.legal_moves() if not pos.is_winning_move(c)]
        if not cols:
            return None
        pos = pos.play(rng.choice(cols))
    return pos


def read_set(path: str | Path) -> list[tuple[str, int]]:
    """``(moves, score)`` pairs of a file with one ``MOVES SCORE`` line per position."""
    pairs = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{path}:{lineno}: expected 'MOVES SCORE', got {line!r}")
        pairs.append((fields[0], int(fields[1])))
    return pairs


def remaining_plies(score: int, moves: int, width: int = 7, height: int = 6) -> int:
    """Plies from a position to the end of the game under perfect play.

    A side that wins with its k-th stone scores ``W*H // 2 + 1 - k``; the first player's
    k-th stone is ply ``2k - 1``, the second's ply ``2k``. Draws end with a full board.
    """
    n_squares = width * height
    if score == 0:
        return n_squares - moves
    k = n_squares // 2 + 1 - abs(score)
    first_player_to_move = moves % 2 == 0
    winner_is_first = first_player_to_move == (score > 0)
    end_ply = 2 * k - 1 if winner_is_first else 2 * k
    return end_ply - moves


def generate_positions(
    n: int,
    moves: tuple[int, int],
    remaining: tuple[int, int],
    solver: "Solver",
    *,
    seed: int = 0,
    max_tries: int = 1_000_000,
    progress: bool = True,
) -> list[tuple[str, int]]:
    """Random openings whose exact solution ends within `remaining` plies.

    Each candidate is a uniformly random legal game of a uniformly drawn length in
    `moves`, never ending the game and never leaving the side to move an immediate win;
    it is solved exactly and kept if its remaining length fits. Deterministic by seed.
    """
    rng = random.Random(seed)
    width, height = solver.size.width, solver.size.height
    kept: list[tuple[str, int]] = []
    seen: set[int] = set()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=f"positions with {moves[0]}-{moves[1]} stones, {remaining[0]}-{remaining[1]} plies left", unit="pos")
    tries = 0
    while len(kept) < n:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(f"only {len(kept)} of {n} positions found in {max_tries} tries")
        pos = random_opening(rng, rng.randint(*moves), width, height)
        if pos is None or pos.is_terminal() or pos.can_win_next():
            continue
        if pos.canonical_key() in seen:
            continue
        seen.add(pos.canonical_key())
        score = solver.solve(pos)
        if remaining[0] <= remaining_plies(score, pos.moves, width, height) <= remaining[1]:
            kept.append((pos.history, score))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return kept


def write_set(path: str | Path, pairs: list[tuple[str, int]]) -> None:
    """Write ``MOVES SCORE`` lines atomically."""
    atomic_write_text("".join(f"{m} {s}\n" for m, s in pairs), path)
