"""Labelled position datasets: sample positions of a game, label them with its concepts.

Sampling draws whole games from a mixture of sources, keeps every live position of each
game (with the game's id, so that probe splits can be grouped by game), drops repeats
by canonical key (the first occurrence wins), and stratifies by ply so that no stage of
the game dominates. Sources:

* ``random``: uniformly random legal moves;
* ``epsilon-E``: epsilon-perfect play, a random move with probability E and otherwise a
  random value-preserving move (the game's exact oracle); the first `random_opening`
  plies are random (the oracle is slow on near-empty boards);
* ``file``: positions from a text file, one per line in the game's text form (each line
  its own game);
* any name given in ``players`` (e.g. ``agent-0`` for a trained checkpoint, see
  ``scripts/make_dataset.py --agent``): self-play of that player after the random opening,
  with a random move instead of its own 10% of the time (so greedy players vary).

Labelling runs in batches, in parallel processes, each batch written to its own Parquet
part file (temporary file, then rename): an interrupted run resumes without relabelling
finished batches. Solver results go through a shared SQLite `SolutionCache` when the
game's concepts use one. The final ``positions.parquet`` and ``manifest.json`` are
written atomically too.

Safety: a folder that already holds a dataset made with other options is refused
(``overwrite=True`` replaces it); Ctrl-C or SIGTERM stops the labelling processes at once
and keeps every finished batch; the workers die with their parent, even after ``kill -9``
(Linux ``PR_SET_PDEATHSIG``, elsewhere a parent-pid watchdog thread). Defaults per game:
`default_min_ply` and `default_random_opening` keep exact labelling cheap (Connect Four
positions with few stones cost the solver seconds to minutes each; measured in
``results/bench_labeling_per_ply.json``, see ``docs/datasets.md``). When fewer distinct
positions than asked exist or were reachable, a warning says so and the manifest records
``requested`` and ``produced``.

Duplicate concepts: after labelling, every pair of concept columns that are identical or
near-identical on the dataset (|Pearson correlation| >= 0.99, `near_duplicate_concepts`)
is logged as a warning and recorded in the manifest (``near_duplicate_concepts``), with the
registry's aliases of the labelled concepts (``concept_aliases``; an alias is labelled
once, under the kept name).

This module owns the dataset folder: `build_dataset` writes it and `read_dataset` reads it
back (a typed `Dataset`: positions table, manifest, game, concept kinds); nothing else
parses ``positions.parquet`` or ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from common.atomic import atomic_target, atomic_write_text
from common.json_files import read_json
from common.outputs import check_writable
from common.engine import Engine, EngineTerminated, check_engine_options, engine_scope
from games.base import Game
from games.concepts import aliases, select
from games.registry import get, opening_book_users

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
DEFAULT_SOURCES = {"random": 0.4, "epsilon-0.1": 0.2, "epsilon-0.25": 0.2, "epsilon-0.5": 0.2}
#: |Pearson correlation| from which two concept columns of a dataset count as near-duplicates.
NEAR_DUPLICATE_THRESHOLD = 0.99
SCALAR_KINDS = ("binary", "count", "continuous", "categorical")
MAP_KINDS = ("spatial", "per_column")


@dataclass(frozen=True)
class SampledPosition:
    state: Any
    text: str
    ply: int
    game_id: int
    source: str


AGENT_EPSILON = 0.1  # share of random moves in the self-play games of a `players` source

#: Games whose positions (up to symmetry) are counted exactly when a request falls short.
COUNT_LIMIT = 50_000


def default_min_ply(game: Game) -> int:
    """The fewest stones/plies of a sampled position by default: where exact labels get cheap
    (the game's ``dataset_min_ply``: Connect Four 12 on 7x6, 0 on 5x4; tic-tac-toe and Nim 0)."""
    return int(game.dataset_min_ply)


def default_random_opening(game: Game, sources: dict[str, float] | str | None = None) -> int:
    """Random plies before the sources' own play starts, by default: 6. With an epsilon
    source (it calls the exact oracle at almost every move after the opening) on a game
    whose oracle is slow on emptier boards, the game's ``fast_oracle_ply`` instead
    (Connect Four 7x6: 10), capped at `default_min_ply` so that small boards (5x4) keep 6.

    :param sources: the source mixture (default: `DEFAULT_SOURCES`, which has epsilon sources).
    """
    names = [part.strip().partition(":")[0] for part in sources.split(",")] if isinstance(sources, str) \
        else list(sources or DEFAULT_SOURCES)
    if not any(name.startswith("epsilon-") for name in names):
        return 6
    fast = int(getattr(game, "fast_oracle_ply", 0) or 0)
    return max(6, min(fast, default_min_ply(game)))


def parse_sources(spec: str | dict[str, float], players: Sequence[str] = ()) -> dict[str, float]:
    """``"random:0.5,epsilon-0.1:0.5"`` (or a dict) -> normalised weights; validates names
    (`players`: extra source names backed by player callables)."""
    if isinstance(spec, str):
        weights = {}
        for part in spec.split(","):
            name, _, w = part.strip().partition(":")
            try:
                weights[name] = float(w) if w else 1.0
            except ValueError as exc:
                raise ValueError(f"bad weight in source {part!r}; use name:weight, e.g. random:0.5") from exc
    else:
        weights = dict(spec)
    for name, w in weights.items():
        if name == "random" or name == "file" or name in players:
            pass
        elif name.startswith("epsilon-"):
            try:
                eps = float(name.split("-", 1)[1])
            except ValueError as exc:
                raise ValueError(f"bad source {name!r}: epsilon sources are 'epsilon-0.1' and the like") from exc
            if not 0 <= eps <= 1:
                raise ValueError(f"bad source {name!r}: epsilon must be in [0, 1]")
        else:
            extra = f" or one of the given players {sorted(players)}" if players else ""
            raise ValueError(f"unknown source {name!r}; use random, epsilon-E, file{extra}")
        if not w > 0 or not math.isfinite(w):
            raise ValueError(f"source {name!r} has weight {w}; weights must be positive numbers (drop a source "
                             "instead of giving it weight 0)")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("source weights must not all be zero")
    return {k: v / total for k, v in weights.items()}


def play_game(game: Game, source: str, rng: random.Random, random_opening: int,
              players: dict[str, Any] | None = None, max_ply: int | None = None) -> list[Any]:
    """States of one game from `source`, from the initial state to the end (or to `max_ply` plies)."""
    state = game.initial_state()
    states = [state]
    player = (players or {}).get(source)
    if player is not None:
        eps = AGENT_EPSILON
        player_rng = np.random.default_rng(rng.getrandbits(63))
    else:
        eps = float(source.split("-", 1)[1]) if source.startswith("epsilon-") else 1.0
    while not game.is_terminal(state) and (max_ply is None or len(states) - 1 < max_ply):
        legal = game.legal_actions(state)
        if len(states) - 1 < random_opening or rng.random() < eps:
            action = rng.choice(legal)
        elif player is not None:
            action = int(player(game, state, player_rng))
        else:
            action = rng.choice(game.optimal_actions(state))
        state = game.play(state, action)
        states.append(state)
    return states


def sample_positions(game: Game, n: int, **options: Any) -> list[SampledPosition]:
    """The positions of `draw_sample` (same options), without the story of the draw."""
    return draw_sample(game, n, **options).positions


@dataclass(frozen=True)
class Sample:
    """Positions drawn by `draw_sample`, with a note when there are fewer than asked.

    :param positions: the chosen positions, sorted by ply.
    :param requested: how many were asked for.
    :param games_played: games sampled from the sources (the file's lines not counted).
    :param existing: distinct live positions (up to symmetry) with at least `min_ply` plies
        that the game has, when it is small enough to count (`COUNT_LIMIT`), else None.
    :param note: why fewer positions than requested came back, or None.
    """

    positions: list[SampledPosition]
    requested: int
    games_played: int
    existing: int | None
    note: str | None


def count_live_positions(game: Game, min_ply: int = 0, limit: int = COUNT_LIMIT) -> int | None:
    """Distinct live positions (up to symmetry) reachable with at least `min_ply` plies,
    or None when the game has more than `limit` of (position, ply) pairs to visit."""
    start = game.initial_state()
    stack = [(start, 0)]
    seen = {(game.canonical_key(start), 0)}
    counted: set = set()
    while stack:
        state, ply = stack.pop()
        if game.is_terminal(state):
            continue
        if ply >= min_ply:
            counted.add(game.canonical_key(state))
        for action in game.legal_actions(state):
            child = game.play(state, action)
            node = (game.canonical_key(child), min(ply + 1, min_ply))  # plies past min_ply are all alike
            if node not in seen:
                seen.add(node)
                if len(seen) > limit:
                    return None
                stack.append((child, ply + 1))
    return len(counted)


def draw_sample(
    game: Game,
    n: int,
    *,
    seed: int = 0,
    sources: dict[str, float] | None = None,
    positions_file: str | Path | None = None,
    random_opening: int = 6,
    min_ply: int = 0,
    max_ply: int | None = None,
    max_games: int | None = None,
    progress: bool = True,
    players: dict[str, Any] | None = None,
) -> Sample:
    """Sample `n` distinct live positions, stratified by ply (deterministic by `seed`), with
    the story of the draw (see `Sample`).

    `players` maps extra source names to players ``(game, state, rng) -> action``. Positions
    of a positions file are taken whatever their ply; `min_ply` filters sampled games, and
    `max_ply` (optional) too: a game then stops being played at that ply. When
    fewer than `n` distinct positions exist or were reached, a warning says so (see
    `Sample.note`; `build_dataset` also records it in the manifest)."""
    _check_counts(n=n, min_ply=min_ply, random_opening=random_opening, max_ply=max_ply)
    _check_ply_range(min_ply, max_ply)
    weights = parse_sources(sources or DEFAULT_SOURCES, players=tuple(players or ()))
    rng = random.Random(seed)
    candidates: dict[Any, SampledPosition] = {}
    game_id = 0
    from_file = 0
    if "file" in weights:
        if positions_file is None:
            raise ValueError("the 'file' source needs a positions file (--positions-file)")
        for state, lineno in _read_positions_file(game, positions_file):
            if not game.is_terminal(state):
                key = game.canonical_key(state)
                candidates.setdefault(key, SampledPosition(state, game.to_text(state), _ply(game, state), game_id, "file"))
            game_id += 1
        from_file = len(candidates)
        weights = {k: v for k, v in weights.items() if k != "file"}
    names = list(weights)
    probs = np.array([weights[k] for k in names]) if names else np.array([])
    if probs.size:
        probs = probs / probs.sum()
    # games until there are twice as many candidates as needed (room for stratification)
    target = 2 * n
    max_games = max_games or 50 * n + 1000
    existing: int | None = None
    counted = False
    bar = None
    if progress and names:
        from tqdm import tqdm

        bar = tqdm(total=target, desc=f"sampling {game.name} positions", unit="pos")
    games_played = 0
    while names and len(candidates) < target and games_played < max_games:
        if games_played == 1000 and not counted and max_ply is None:
            # a small game may not even have `n` positions: count them once, and stop when all are found (every
            # one is then taken, so the result is the same as after `max_games` games, only sooner)
            existing, counted = count_live_positions(game, min_ply), True
        if existing is not None and existing <= n and len(candidates) - from_file >= existing:
            break
        source = names[int(np.searchsorted(np.cumsum(probs), rng.random(), side="right").clip(0, len(names) - 1))]
        for ply, state in enumerate(play_game(game, source, rng, random_opening, players, max_ply)):
            if ply < min_ply or game.is_terminal(state):
                continue
            key = game.canonical_key(state)
            if key not in candidates:
                candidates[key] = SampledPosition(state, game.to_text(state), ply, game_id, source)
                if bar is not None and bar.n < target:
                    bar.update(1)
        game_id += 1
        games_played += 1
    if bar is not None:
        bar.close()
    chosen = stratify(list(candidates.values()), n, rng)
    note = None
    if len(chosen) < n:
        if names and not counted and max_ply is None:
            existing = count_live_positions(game, min_ply)
        note = _shortfall_note(game, n, len(chosen), min_ply, names, from_file, games_played, existing)
        logger.warning("%s", note)
    return Sample(chosen, n, games_played, existing, note)


def _shortfall_note(game: Game, requested: int, produced: int, min_ply: int, names: list[str], from_file: int,
                    games_played: int, existing: int | None) -> str:
    """One sentence: how many came back, and why not more."""
    head = f"{produced} of the {requested} requested {game.name} positions:"
    parts = []
    if from_file:
        parts.append(f"{from_file} distinct live positions came from the positions file")
    if names:
        if existing is not None and produced - from_file >= existing:
            parts.append(f"only {existing} distinct live positions with >= {min_ply} plies exist in {game!r} "
                         f"(counted up to symmetry)")
        else:
            of = f" (of {existing} that exist, up to symmetry)" if existing is not None else ""
            parts.append(f"only {produced - from_file} distinct live positions with >= {min_ply} plies were reachable "
                         f"from the sources {names} in {games_played} games{of}")
    elif not from_file:
        parts.append("the positions file holds no live position")
    return f"{head} {'; '.join(parts)}; ask for fewer, lower --min-ply or add sources"


def _read_positions_file(game: Game, positions_file: str | Path) -> Iterator[tuple[Any, int]]:
    """(state, line number) of each non-blank line; errors name the file and line."""
    path = Path(positions_file)
    if not path.exists():
        raise FileNotFoundError(f"positions file {path} does not exist")
    if path.is_dir():
        raise ValueError(f"positions file {path} is a folder; give a text file with one position per line")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"positions file {path} is not text ({exc.reason}); give one position per line") from exc
    lines = [(lineno, line.split()[0]) for lineno, line in enumerate(text.splitlines(), start=1) if line.split()]
    if not lines:
        raise ValueError(f"positions file {path} is empty; give one position per line in the game's text form")
    for lineno, word in lines:
        try:
            state = game.parse(word)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from exc
        yield state, lineno


def _check_counts(**values: int) -> None:
    """ValueError naming the first count that is out of range (n, batch_size, jobs >= 1; the rest >= 0)."""
    least = {"n": 1, "batch_size": 1, "jobs": 1}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < least.get(name, 0):
            raise ValueError(f"{name} must be >= {least.get(name, 0)}, got {value}")


def _check_ply_range(min_ply: int, max_ply: int | None) -> None:
    """ValueError unless the ply window holds at least one ply."""
    if max_ply is not None and max_ply < min_ply:
        raise ValueError(f"max_ply ({max_ply}) is below min_ply ({min_ply}); no position could be drawn")


def _ply(game: Game, state: Any) -> int:
    return int(getattr(state, "moves", 0))


def stratify(positions: list[SampledPosition], n: int, rng: random.Random) -> list[SampledPosition]:
    """Pick `n` positions spread as evenly over plies as the pool allows (sorted by ply)."""
    by_ply: dict[int, list[SampledPosition]] = {}
    for p in positions:
        by_ply.setdefault(p.ply, []).append(p)
    for ply in sorted(by_ply):
        rng.shuffle(by_ply[ply])
    chosen: list[SampledPosition] = []
    while len(chosen) < n:
        active = [ply for ply in sorted(by_ply) if by_ply[ply]]
        if not active:
            break
        quota = math.ceil((n - len(chosen)) / len(active))
        for ply in active:
            take, by_ply[ply] = by_ply[ply][:quota], by_ply[ply][quota:]
            chosen.extend(take[: n - len(chosen)])
    chosen.sort(key=lambda p: (p.ply, p.game_id, p.text))
    return chosen


# ------------------------------------------------------------------------------ labelling
_WORKER_GAMES: dict[str, Game] = {}


def _worker_game(game_spec: dict, book_path: str | None) -> Game:
    """The game of a labelling worker, built once per process: its solver (compiled kernels,
    transposition table, opening book) stays warm from one batch to the next."""
    key = json.dumps([game_spec, book_path], sort_keys=True, default=str)
    if key not in _WORKER_GAMES:
        game = get(game_spec["name"], **game_spec["kwargs"])
        if book_path:
            game.use_opening_book(book_path)
        _WORKER_GAMES[key] = game
    return _WORKER_GAMES[key]


def forget_worker_games() -> None:
    """Drop this process's cached labelling games (benchmarks: each configuration starts with cold tables)."""
    _WORKER_GAMES.clear()


def part_file(parts: Path, index: int, texts: Sequence[str]) -> Path:
    """The part file of batch `index`, keyed by a hash of its positions: a finished part is
    recognised by name and never labelled again, whichever engine or worker wrote it."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    return parts / f"part-{index:05d}-{digest}.parquet"


def _label_batch(args: tuple) -> tuple[str, int]:
    """Worker: label one batch and write its Parquet part atomically; returns (part path, positions)."""
    game_spec, texts, concept_names, part_path, cache_path, book_path = args
    import pandas as pd

    from games.concepts import label

    game = _worker_game(game_spec, book_path)
    states = [game.parse(t) for t in texts]
    labels = label(game, states, concept_names, solution_cache=cache_path or None)
    df = pd.DataFrame({name: list(values) if values.ndim > 1 else values for name, values in labels.items()})
    with atomic_target(part_path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return str(part_path), len(texts)


def default_batch_size(n: int) -> int:
    """Positions per labelled batch by default: about 32 batches (progress, ETA and what an
    interruption can lose), between 16 and 256 positions each."""
    return int(min(256, max(16, math.ceil(n / 32))))


def build_dataset(
    game_name: str,
    n: int,
    out_dir: str | Path,
    *,
    seed: int = 0,
    sources: str | dict[str, float] | None = None,
    positions_file: str | Path | None = None,
    concepts: Sequence[str] | None = None,
    game_kwargs: dict | None = None,
    jobs: int = 2,
    batch_size: int | None = None,
    random_opening: int | None = None,
    min_ply: int | None = None,
    max_ply: int | None = None,
    solution_cache: str | Path | None = None,
    progress: bool = True,
    players: dict[str, Any] | None = None,
    overwrite: bool = False,
    book: str | Path | None = None,
    rebuild_cache: bool = False,
    engine: str | Engine = "local",
    address: str | None = None,
) -> Path:
    """Sample, label and write ``out_dir/positions.parquet`` and ``out_dir/manifest.json``.

    Resumable: the sampled positions are saved first (``sample.json``) and each labelled
    batch as a part file; a rerun with the same arguments continues where it stopped. A
    folder holding a dataset made with other arguments is refused unless `overwrite`.

    :param n: distinct positions wanted (>= 1); fewer come back, with a warning and
        ``requested``/``produced``/``shortfall`` in the manifest, when fewer exist.
    :param jobs: labelling processes (>= 1; 1 labels in this process).
    :param batch_size: positions per part file (default: `default_batch_size`).
    :param random_opening: default `default_random_opening`.
    :param min_ply: default `default_min_ply` (Connect Four 7x6: 12).
    :param max_ply: drop positions with more plies (default: none; e.g. an early-game dataset).
    :param solution_cache: SQLite file of exact solutions (default: the cache folder's
        ``solutions.sqlite`` for Connect Four solver concepts).
    :param progress: progress bars (sampling; labelling with an ETA) on stderr.
    :param overwrite: replace a dataset made with other arguments in `out_dir`.
    :param book: an opening book (``.npz`` from ``scripts/make_book.py``) for the solver
        (default: the deepest shipped or cached one, as `solver.default_solver`).
    :param rebuild_cache: move a corrupt `solution_cache` aside (to ``FILE.corrupt-<time>``)
        and start a new one, instead of stopping with an error.
    :param engine: where batches are labelled: ``local`` processes (`jobs` of them) or ``ray``
        (`jobs` actors; a private local instance unless `address` or ``$RAY_ADDRESS`` names a
        cluster), or an `common.engine.Engine`. Batches are started most expensive first (the
        fewest stones) and each is written as its own part file, so the dataset is the same
        byte for byte whatever the engine.
    :param address: Ray cluster address (``engine="ray"`` only).
    """
    import pandas as pd

    _check_counts(n=n, jobs=jobs, batch_size=batch_size, min_ply=min_ply, random_opening=random_opening,
                  max_ply=max_ply)
    check_engine_options(engine, address)
    game_kwargs = dict(game_kwargs or {})
    game = get(game_name, **game_kwargs)
    chosen = select(game, concepts)
    weights = parse_sources(sources or DEFAULT_SOURCES, players=tuple(players or ()))
    if positions_file is not None and "file" not in weights:
        raise ValueError(f"a positions file ({positions_file}) was given but the sources {sorted(weights)} do not "
                         "include 'file'; add file:WEIGHT to the sources")
    if "file" in weights and positions_file is None:
        raise ValueError("the 'file' source needs a positions file (--positions-file)")
    if "file" in weights:
        for _ in _read_positions_file(game, positions_file):  # every line checked before anything is written
            pass
    min_ply = default_min_ply(game) if min_ply is None else min_ply
    _check_ply_range(min_ply, max_ply)
    random_opening = default_random_opening(game, weights) if random_opening is None else random_opening
    batch_size_given = batch_size is not None
    batch_size = default_batch_size(n) if batch_size is None else batch_size
    needs_solver = any(c.tier == "solver" for c in chosen)
    if book is not None:
        _check_book(game, book)
    if solution_cache is None and needs_solver:
        from common.provenance import cache_dir

        solution_cache = cache_dir() / "solutions.sqlite"
    if solution_cache is not None and needs_solver:
        store = game.solution_cache(solution_cache, rebuild=rebuild_cache, verify=True)  # a corrupt file stops us here
        if store is None:
            solution_cache = None  # the game's oracle keeps no store of solutions
        else:
            store.close()
    out = Path(out_dir)
    parts = out / "parts"
    config = {"game": game.name, "game_kwargs": game_kwargs, "n": n, "seed": seed, "sources": weights,
              "positions_file": str(positions_file) if positions_file else None, "random_opening": random_opening,
              "min_ply": min_ply, "concepts": [c.name for c in chosen], "batch_size": batch_size,
              "generator_version": GENERATOR_VERSION,
              "players": {name: repr(p) for name, p in (players or {}).items() if name in weights}}
    if max_ply is not None:  # only when given, so that the digests of datasets made before it existed still match
        config["max_ply"] = max_ply
    # the batch size only cuts the work into part files: a resume keeps the saved one
    digest = hashlib.sha256(json.dumps({k: v for k, v in config.items() if k != "batch_size"}, sort_keys=True,
                                       default=str).encode()).hexdigest()[:16]
    sample_path = out / "sample.json"
    saved = _existing_sample(out, digest, config, overwrite)
    if saved is not None:
        saved_batch = int(saved.get("config", {}).get("batch_size", config["batch_size"]))
        if batch_size_given and saved_batch != batch_size:
            raise ValueError(f"{out} is being labelled in batches of {saved_batch} positions; rerun without "
                             f"--batch-size (or with --batch-size {saved_batch}) to resume, or pass --overwrite")
        batch_size = config["batch_size"] = saved_batch
    check_writable(out / "manifest.json", "the dataset folder")
    parts.mkdir(parents=True, exist_ok=True)
    if saved is not None:
        rows, note = saved["positions"], saved.get("note")
        logger.info("resuming: %d sampled positions read from %s", len(rows), sample_path)
    else:
        for stale in [*parts.glob("part-*.parquet"), out / "positions.parquet", out / "manifest.json"]:
            stale.unlink(missing_ok=True)
        if needs_solver and min_ply < default_min_ply(game):
            logger.warning("%r positions with fewer than %d moves cost the exact solver seconds to minutes each "
                           "(see docs/datasets.md); labelling from ply %d may take long",
                           game, default_min_ply(game), min_ply)
        drawn = draw_sample(game, n, seed=seed, sources=weights, positions_file=positions_file,
                            random_opening=random_opening, min_ply=min_ply, max_ply=max_ply, progress=progress,
                            players=players)
        if not drawn.positions:
            raise ValueError(f"no positions to label: {drawn.note}")
        rows = [{"text": p.text, "ply": p.ply, "game_id": p.game_id, "source": p.source} for p in drawn.positions]
        note = drawn.note
        _write_json(sample_path, {"config_digest": digest, "config": config, "note": note, "positions": rows})
    texts = [r["text"] for r in rows]
    batches = [(i, texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
    spec = {"name": game.name, "kwargs": game_kwargs}
    files = [part_file(parts, i // batch_size, t) for i, t in batches]
    plies = [r["ply"] for r in rows]
    todo = [(spec, t, [c.name for c in chosen], files[k], str(solution_cache) if solution_cache else None,
             str(book) if book else None)
            for k, (i, t) in enumerate(batches) if not files[k].exists()]
    # the most expensive first: fewer stones cost the solver more (a stable sort keeps sample order otherwise)
    order = {str(files[k]): min(plies[i:i + batch_size]) for k, (i, _) in enumerate(batches)}
    todo.sort(key=lambda item: order[str(item[3])])
    logger.info("%d of %d batches to label", len(todo), len(batches))
    if todo:
        bar = None
        if progress:
            from tqdm import tqdm

            done = len(texts) - sum(len(item[1]) for item in todo)
            bar = tqdm(total=len(texts), initial=done, desc=f"labelling {game.name} positions", unit="pos",
                       smoothing=0.1)
        try:
            with engine_scope(engine, jobs, address) as runner:
                if len(todo) > 1 and runner.jobs > 1:
                    logger.info("labelling on the %s", runner.describe())
                for _, count in runner.map_unordered(_label_batch, todo):
                    if bar is not None:
                        bar.update(count)
        except (KeyboardInterrupt, EngineTerminated):
            if bar is not None:
                bar.close()
                bar = None
            finished = sum(1 for f in files if f.exists())
            logger.warning("interrupted: %d of %d batches are labelled and kept in %s; rerun the same command to "
                           "resume", finished, len(batches), parts)
            raise
        finally:
            if bar is not None:
                bar.close()
    labels = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df = pd.concat([pd.DataFrame({"moves": texts, "ply": [r["ply"] for r in rows],
                                  "game_id": [r["game_id"] for r in rows], "source": [r["source"] for r in rows]}),
                    labels], axis=1)
    table_path = out / "positions.parquet"
    with atomic_target(table_path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    duplicates = near_duplicate_concepts(df, {c.name: c.kind for c in chosen})
    if duplicates:
        logger.warning("%d pair(s) of concept columns are identical or near-identical on this dataset (|r| >= %g): "
                       "%s", len(duplicates), NEAR_DUPLICATE_THRESHOLD,
                       "; ".join(describe_duplicate(d) for d in duplicates))
    names = {c.name for c in chosen}
    manifest = dict(config, requested=n, produced=len(df), shortfall=note,
                    counts={"positions": len(df), "games": int(df["game_id"].nunique()),
                            "by_source": df["source"].value_counts().to_dict(),
                            "by_ply": {int(k): int(v) for k, v in df["ply"].value_counts().sort_index().items()}},
                    concept_metadata=[c.metadata() for c in chosen],
                    concept_aliases={a: k for a, k in aliases(game).items() if k in names},
                    prevalence={c.name: float(np.mean(df[c.name])) for c in chosen if c.kind == "binary"},
                    near_duplicate_threshold=NEAR_DUPLICATE_THRESHOLD, near_duplicate_concepts=duplicates)
    _write_json(out / "manifest.json", manifest)
    return table_path


# ------------------------------------------------------------------------------ duplicate concepts
def near_duplicate_concepts(positions: Any, kinds: dict[str, str],
                            threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[dict]:
    """The pairs of concept columns that are identical or near-identical on these positions.

    Scalar concepts (kinds `SCALAR_KINDS`: binary, count, continuous, categorical) are
    compared with each other; spatial and per-column concepts (`MAP_KINDS`) are flattened
    over all positions x squares (columns) and compared only with concepts of the same
    shape. A pair is reported when all its values are equal (``identical``; NaN equals NaN)
    or when the absolute Pearson correlation, over the entries where both are defined
    (not NaN), is at least `threshold` (anti-correlated pairs too). Constant columns (one
    value, or no defined value) are left out: they carry no signal to compare.

    :param positions: a positions table (pandas DataFrame, one column per concept, as
        `build_dataset` writes it and `Dataset.positions` reads it; spatial and per-column
        labels are arrays per row).
    :param kinds: concept name -> kind (`Dataset.concept_kinds`); names missing from
        `positions` and kinds outside `SCALAR_KINDS` and `MAP_KINDS` are skipped.
    :param threshold: least |correlation| of a near-duplicate (in (0, 1]).
    :returns: one dict per pair, ``{"a", "b", "kind_a", "kind_b", "correlation",
        "identical"}``, with `a` before `b` in the order of `kinds` (so a sweep that drops
        the `b` of each identical pair keeps the first name of every group of copies); the
        pairs ordered as `kinds` (scalar concepts first, then each shape of map).
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    groups: dict[tuple, list[str]] = {}
    if len(positions):
        for name, kind in kinds.items():
            if name not in positions.columns:
                continue
            if kind in SCALAR_KINDS:
                groups.setdefault(("scalar",), []).append(name)
            elif kind in MAP_KINDS:
                shape = np.shape(positions[name].iloc[0])
                groups.setdefault(("map", shape), []).append(name)
    found = []
    for names in groups.values():
        if len(names) < 2:
            continue
        names, corr = _correlations(positions, names)
        for i, j in zip(*np.nonzero(np.triu(np.abs(np.nan_to_num(corr)) >= threshold - 1e-12, k=1))):
            a, b = names[i], names[j]
            found.append({"a": a, "b": b, "kind_a": kinds[a], "kind_b": kinds[b],
                          "correlation": round(float(np.clip(corr[i, j], -1, 1)), 6),
                          "identical": _identical(positions, a, b)})
    return found


def describe_duplicate(pair: dict) -> str:
    """One pair of `near_duplicate_concepts` in words: ``a = b (identical)`` or ``a ~ b (r = 0.995)``."""
    if pair.get("identical"):
        return f"{pair['a']} = {pair['b']} (identical)"
    return f"{pair['a']} ~ {pair['b']} (r = {pair['correlation']:.4f})"


def _column_values(positions: Any, name: str, start: int, stop: int) -> np.ndarray:
    """Rows `start:stop` of a concept column as a flat float array (maps flattened row by row)."""
    values = positions[name].iloc[start:stop].to_numpy()
    if values.dtype == object:
        values = np.stack(values)
    return np.asarray(values, dtype=float).reshape(-1)


def _row_chunks(positions: Any, name: str) -> Iterator[tuple[int, int]]:
    """Row ranges of at most about 2**18 flattened entries."""
    width = max(1, int(np.prod(np.shape(positions[name].iloc[0]))))
    step = max(1, 2 ** 18 // width)
    for start in range(0, len(positions), step):
        yield start, min(start + step, len(positions))


def _correlations(positions: Any, names: list[str]) -> tuple[list[str], np.ndarray]:
    """(the non-constant names, their pairwise Pearson correlations over the entries both
    define; NaN where a pair has fewer than two such entries or one is constant on them).

    Two passes over row chunks (memory does not grow with the dataset): the columns' means,
    then sums of the centred values, their squares and cross-products for every pair."""
    count = np.zeros(len(names))
    total = np.zeros(len(names))
    low = np.full(len(names), np.inf)
    high = np.full(len(names), -np.inf)
    for start, stop in _row_chunks(positions, names[0]):
        for k, name in enumerate(names):
            x = _column_values(positions, name, start, stop)
            x = x[~np.isnan(x)]
            if x.size:
                count[k] += x.size
                total[k] += x.sum()
                low[k] = min(low[k], x.min())
                high[k] = max(high[k], x.max())
    keep = [k for k in range(len(names)) if count[k] and high[k] > low[k]]
    names = [names[k] for k in keep]
    mean = total[keep] / count[keep]
    n = len(names)
    pairs, sums, squares, cross = (np.zeros((n, n)) for _ in range(4))
    if n < 2:
        return names, np.full((n, n), np.nan)
    for start, stop in _row_chunks(positions, names[0]):
        x = np.stack([_column_values(positions, name, start, stop) for name in names], axis=1) - mean
        defined = ~np.isnan(x)
        x = np.where(defined, x, 0.0)
        m = defined.astype(float)
        pairs += m.T @ m  # entries both define
        sums += x.T @ m  # [i, j]: sum of column i where both are defined
        squares += (x * x).T @ m
        cross += x.T @ x
    with np.errstate(divide="ignore", invalid="ignore"):
        n_ij = np.where(pairs >= 2, pairs, np.nan)
        cov = cross - sums * sums.T / n_ij
        var_i = squares - sums * sums / n_ij
        var_j = var_i.T
        flat = (var_i <= 1e-10 * squares) | (var_j <= 1e-10 * squares.T)  # constant where both are defined
        corr = np.where(flat, np.nan, cov / np.sqrt(var_i * var_j))
    return names, corr


def _identical(positions: Any, a: str, b: str) -> bool:
    """Whether two concept columns hold the same values everywhere (NaN equal to NaN)."""
    for start, stop in _row_chunks(positions, a):
        if not np.array_equal(_column_values(positions, a, start, stop), _column_values(positions, b, start, stop),
                              equal_nan=True):
            return False
    return True


def _check_book(game: Game, book: str | Path) -> None:
    """ValueError/FileNotFoundError unless `book` is a readable opening book for this game's board."""
    if not game.uses_opening_book:
        users = ", ".join(f"{title}'s solver" for title in opening_book_users())
        raise ValueError(f"an opening book (--book {book}) is only used by {users}, not by {game.name}")
    game.check_opening_book(book)


def _existing_sample(out: Path, digest: str, config: dict, overwrite: bool) -> dict | None:
    """The saved sample to resume from (same options), None to start afresh; refuses to
    replace a dataset made with other options unless `overwrite`."""
    sample_path = out / "sample.json"
    saved = None
    if sample_path.exists():
        try:
            saved = json.loads(sample_path.read_text())
        except (OSError, ValueError) as exc:
            if not overwrite:
                raise ValueError(f"{sample_path} is unreadable ({exc}); pass --overwrite (overwrite=True) to "
                                 "start this dataset afresh") from exc
        if saved is not None and saved.get("config_digest") == digest:
            return saved
    existing = [p for p in (sample_path, out / "positions.parquet", out / "manifest.json") if p.exists()]
    existing += sorted((out / "parts").glob("part-*.parquet"))[:1]
    if existing and not overwrite:
        old = (saved or {}).get("config")
        if old:
            changed = [f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in sorted(set(old) | set(config))
                       if old.get(k) != config.get(k) and k != "batch_size"]
            why = "other options (" + "; ".join(changed) + ")"
        else:
            why = "other or unknown options"
        raise ValueError(f"{out} already holds a dataset made with {why}; pass --overwrite (overwrite=True) to "
                         "replace it, or choose another output folder")
    return None


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(json.dumps(data, indent=1, default=str), path)


# ------------------------------------------------------------------------------ reading a dataset folder
@dataclass
class Dataset:
    """A dataset folder of `build_dataset`, read: the positions table and its manifest.

    :param folder: the dataset folder.
    :param positions: ``positions.parquet``: one row per position (``moves``, ``ply``,
        ``game_id``, ``source`` and one column per concept; spatial and per-column labels
        are arrays per row).
    :param manifest: ``manifest.json`` as written (options, counts, ``concept_metadata``).
    """

    folder: Path
    positions: Any  # pandas.DataFrame (pandas is imported lazily, as everywhere in this module)
    manifest: dict

    @property
    def game_name(self) -> str:
        """The registered name of the game the positions belong to."""
        return str(self.manifest["game"])

    @property
    def game_kwargs(self) -> dict:
        """The game's options (e.g. board size)."""
        return dict(self.manifest.get("game_kwargs", {}))

    @property
    def game(self) -> Game:
        """The game, built from the registry with the manifest's options."""
        return get(self.game_name, **self.game_kwargs)

    @property
    def concept_kinds(self) -> dict[str, str]:
        """Concept name -> kind (``binary``, ``spatial``, ``per_column``, ...), in the manifest's order."""
        return {c["name"]: c["kind"] for c in self.manifest.get("concept_metadata", [])}

    def near_duplicates(self, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[dict]:
        """The identical or near-identical concept column pairs (`near_duplicate_concepts`):
        as the manifest records them when it does so for this threshold, else computed
        from the positions (manifests written before they were recorded)."""
        recorded = self.manifest.get("near_duplicate_concepts")
        if recorded is not None and self.manifest.get("near_duplicate_threshold") == threshold:
            return list(recorded)
        return near_duplicate_concepts(self.positions, self.concept_kinds, threshold)

    def states(self, game: Game | None = None) -> list[Any]:
        """The positions parsed into states of `game` (default: `Dataset.game`)."""
        game = game or self.game
        return [game.parse(t) for t in self.positions["moves"]]


def read_manifest(folder: str | Path) -> dict:
    """A dataset folder's ``manifest.json`` (errors name the file and what is wrong)."""
    path = Path(folder) / "manifest.json"
    manifest = read_json(path, missing=f"{folder} is not a dataset folder of scripts/make_dataset.py",
                         repair=": rebuild the dataset")
    if not isinstance(manifest, dict) or "game" not in manifest:
        raise ValueError(f"{path} names no game; it is not a manifest of scripts/make_dataset.py")
    return manifest


def read_positions(folder: str | Path):
    """A dataset folder's ``positions.parquet`` as a DataFrame (a damaged file is named, not a pyarrow traceback)."""
    import pandas as pd

    path = Path(folder) / "positions.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; build the dataset with scripts/make_dataset.py")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds on a truncated file
        raise ValueError(f"{path} cannot be read as Parquet ({type(exc).__name__}: {exc}); it is damaged or "
                         "truncated: rebuild the dataset") from exc


def read_dataset(folder: str | Path) -> Dataset:
    """Read a dataset folder written by `build_dataset` (manifest first: a missing folder is named once)."""
    manifest = read_manifest(folder)
    return Dataset(Path(folder), read_positions(folder), manifest)
