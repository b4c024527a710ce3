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
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from games.atomic import atomic_target, atomic_write_text
from games.base import Game
from games.concepts import select
from games.registry import get

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
DEFAULT_SOURCES = {"random": 0.4, "epsilon-0.1": 0.2, "epsilon-0.25": 0.2, "epsilon-0.5": 0.2}


@dataclass(frozen=True)
class SampledPosition:
    state: Any
    text: str
    ply: int
    game_id: int
    source: str


AGENT_EPSILON = 0.1  # share of random moves in the self-play games of a `players` source


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
        if w < 0:
            raise ValueError(f"source {name!r} has a negative weight")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("source weights must not all be zero")
    return {k: v / total for k, v in weights.items()}


def play_game(game: Game, source: str, rng: random.Random, random_opening: int,
              players: dict[str, Any] | None = None) -> list[Any]:
    """States of one game from `source`, from the initial state to the end."""
    state = game.initial_state()
    states = [state]
    player = (players or {}).get(source)
    if player is not None:
        eps = AGENT_EPSILON
        player_rng = np.random.default_rng(rng.getrandbits(63))
    else:
        eps = float(source.split("-", 1)[1]) if source.startswith("epsilon-") else 1.0
    while not game.is_terminal(state):
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


def sample_positions(
    game: Game,
    n: int,
    *,
    seed: int = 0,
    sources: dict[str, float] | None = None,
    positions_file: str | Path | None = None,
    random_opening: int = 6,
    min_ply: int = 0,
    max_games: int | None = None,
    progress: bool = True,
    players: dict[str, Any] | None = None,
) -> list[SampledPosition]:
    """Sample `n` distinct live positions, stratified by ply (deterministic by `seed`).

    `players` maps extra source names to players ``(game, state, rng) -> action``."""
    weights = parse_sources(sources or DEFAULT_SOURCES, players=tuple(players or ()))
    rng = random.Random(seed)
    candidates: dict[Any, SampledPosition] = {}
    game_id = 0
    if "file" in weights:
        if positions_file is None:
            raise ValueError("the 'file' source needs positions_file")
        path = Path(positions_file)
        if not path.exists():
            raise FileNotFoundError(f"positions file {path} does not exist")
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            text = line.split()[0] if line.split() else ""
            try:
                state = game.parse(text)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from exc
            if not game.is_terminal(state):
                key = game.canonical_key(state)
                candidates.setdefault(key, SampledPosition(state, game.to_text(state), _ply(game, state), game_id, "file"))
            game_id += 1
        weights = {k: v for k, v in weights.items() if k != "file"}
    names = list(weights)
    probs = np.array([weights[k] for k in names]) if names else np.array([])
    if probs.size:
        probs = probs / probs.sum()
    # games until there are twice as many candidates as needed (room for stratification)
    target = 2 * n
    max_games = max_games or 50 * n + 1000
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=target, desc=f"sampling {game.name} positions", unit="pos")
    games_played = 0
    while names and len(candidates) < target and games_played < max_games:
        source = names[int(np.searchsorted(np.cumsum(probs), rng.random(), side="right").clip(0, len(names) - 1))]
        for ply, state in enumerate(play_game(game, source, rng, random_opening, players)):
            if ply < min_ply or game.is_terminal(state):
                continue
            key = game.canonical_key(state)
            if key not in candidates:
                candidates[key] = SampledPosition(state, game.to_text(state), ply, game_id, source)
                if bar is not None:
                    bar.update(1)
        game_id += 1
        games_played += 1
    if bar is not None:
        bar.close()
    return stratify(list(candidates.values()), n, rng)


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
def _label_batch(args: tuple) -> str:
    """Worker: label one batch and write its Parquet part atomically; returns the part path."""
    game_spec, texts, concept_names, part_path, cache_path = args
    import pandas as pd

    from games.concepts import label

    game = get(game_spec["name"], **game_spec["kwargs"])
    states = [game.parse(t) for t in texts]
    labels = label(game, states, concept_names, solution_cache=cache_path or None)
    df = pd.DataFrame({name: list(values) if values.ndim > 1 else values for name, values in labels.items()})
    with atomic_target(part_path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return str(part_path)


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
    batch_size: int = 256,
    random_opening: int = 6,
    min_ply: int = 0,
    solution_cache: str | Path | None = None,
    progress: bool = True,
    players: dict[str, Any] | None = None,
) -> Path:
    """Sample, label and write ``out_dir/positions.parquet`` and ``out_dir/manifest.json``.

    Resumable: the sampled positions are saved first (``sample.json``) and each labelled
    batch as a part file; a rerun with the same arguments continues where it stopped.
    """
    import pandas as pd

    game_kwargs = dict(game_kwargs or {})
    game = get(game_name, **game_kwargs)
    chosen = select(game.name, concepts)
    weights = parse_sources(sources or DEFAULT_SOURCES, players=tuple(players or ()))
    out = Path(out_dir)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    config = {"game": game_name, "game_kwargs": game_kwargs, "n": n, "seed": seed, "sources": weights,
              "positions_file": str(positions_file) if positions_file else None, "random_opening": random_opening,
              "min_ply": min_ply, "concepts": [c.name for c in chosen], "batch_size": batch_size,
              "generator_version": GENERATOR_VERSION,
              "players": {name: repr(p) for name, p in (players or {}).items() if name in weights}}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    sample_path = out / "sample.json"
    if sample_path.exists() and json.loads(sample_path.read_text()).get("config_digest") == digest:
        rows = json.loads(sample_path.read_text())["positions"]
        logger.info("resuming: %d sampled positions read from %s", len(rows), sample_path)
    else:
        for stale in parts.glob("part-*.parquet"):
            stale.unlink()
        sampled = sample_positions(game, n, seed=seed, sources=weights, positions_file=positions_file,
                                   random_opening=random_opening, min_ply=min_ply, progress=progress, players=players)
        rows = [{"text": p.text, "ply": p.ply, "game_id": p.game_id, "source": p.source} for p in sampled]
        _write_json(sample_path, {"config_digest": digest, "positions": rows})
    if solution_cache is None and any(c.tier == "solver" for c in chosen) and game.name == "connect4":
        from solver.book import cache_dir

        solution_cache = cache_dir() / "solutions.sqlite"
    texts = [r["text"] for r in rows]
    batches = [(i, texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
    spec = {"name": game_name, "kwargs": game_kwargs}
    todo = [(spec, t, [c.name for c in chosen], parts / f"part-{i // batch_size:05d}.parquet",
             str(solution_cache) if solution_cache else None)
            for i, t in batches if not (parts / f"part-{i // batch_size:05d}.parquet").exists()]
    logger.info("%d of %d batches to label", len(todo), len(batches))
    if todo:
        iterator = _run(todo, jobs)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(todo), desc=f"labelling {len(texts)} positions", unit="batch")
        for _ in iterator:
            pass
    labels = pd.concat([pd.read_parquet(parts / f"part-{i // batch_size:05d}.parquet") for i, _ in batches],
                       ignore_index=True) if batches else pd.DataFrame()
    df = pd.concat([pd.DataFrame({"moves": texts, "ply": [r["ply"] for r in rows],
                                  "game_id": [r["game_id"] for r in rows], "source": [r["source"] for r in rows]}),
                    labels], axis=1)
    table_path = out / "positions.parquet"
    with atomic_target(table_path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    manifest = dict(config, counts={"positions": len(df), "games": int(df["game_id"].nunique()) if len(df) else 0,
                                    "by_source": df["source"].value_counts().to_dict() if len(df) else {},
                                    "by_ply": {int(k): int(v) for k, v in df["ply"].value_counts().sort_index().items()}},
                    concept_metadata=[c.metadata() for c in chosen],
                    prevalence={c.name: float(np.mean(df[c.name])) for c in chosen if c.kind == "binary" and len(df)})
    _write_json(out / "manifest.json", manifest)
    return table_path


def _run(todo: list, jobs: int):
    if jobs <= 1:
        for item in todo:
            yield _label_batch(item)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs) as pool:
        yield from pool.imap_unordered(_label_batch, todo)


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(json.dumps(data, indent=1, default=str), path)
