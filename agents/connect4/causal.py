"""Causal tests of a Connect Four agent: its labelled positions and solver-verified minimal pairs, and the suite.

The steering, erasure and pair-behaviour machinery is game-agnostic (`agents.causal`); what
is Connect Four's own is here: positions sampled from random and self-play games and
labelled by the exact solver (value, value-preserving columns, the columns a concept names,
`games.connect4.minimal_pairs.concept_moves`), and sibling minimal pairs one disc apart
(`games.connect4.minimal_pairs.find_minimal_pairs`), which need Connect Four positions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from agents.causal import DEFAULT_ALPHAS, CausalPositions, concept_causal_tests, default_layer, pair_behaviour
from agents.evaluation import PolicyPlayer
from agents.network import probe_layers
from games.concepts import label, select
from games.connect4.minimal_pairs import column_concept, concept_moves, find_minimal_pairs, random_parents
from games.datasets import sample_positions

log = logging.getLogger(__name__)


def build_positions(game: Any, policy: Any, n: int, concepts: Sequence[str], seed: int = 0, min_ply: int = 12,
                    solution_cache: str | Path | None = None, progress: bool = True) -> CausalPositions:
    """Sample and label `n` positions: half from random games, half from the agent's self-play.

    :param game: the Connect Four game.
    :param policy: the agent's policy (plays the self-play games, 10% random moves).
    :param concepts: binary concepts to label.
    :param min_ply: earliest ply kept (the solver is slow on emptier boards).
    :param solution_cache: SQLite file of cached solver results (None: no cache).
    """
    bad = [c.name for c in select(game.name, concepts) if c.kind != "binary"]
    if bad:
        raise ValueError(f"causal tests need binary concepts; {bad} are not")
    player = PolicyPlayer(policy, "agent")
    sampled = sample_positions(game, n, seed=seed, sources={"random": 0.5, "agent": 0.5}, min_ply=min_ply,
                               progress=progress, players={"agent": player})
    states = [p.state for p in sampled]
    with_moves = [c for c in concepts if column_concept(game, c)]
    maps = [column_concept(game, c) for c in with_moves]
    names = list(dict.fromkeys([*concepts, "good_moves", "value", *maps]))
    log.info("labelling %d positions (solver included)", len(states))
    labels = label(game, states, names, solution_cache)
    return CausalPositions(
        texts=[p.text for p in sampled], game_ids=np.array([p.game_id for p in sampled]),
        obs=np.stack([game.observation(s) for s in states]).astype(np.float32),
        masks=np.stack([game.legal_mask(s) for s in states]), good=labels["good_moves"].astype(bool),
        value=labels["value"].astype(np.int64), concepts={c: labels[c].astype(bool) for c in concepts},
        moves={c: concept_moves(game, states, c, labels) for c in with_moves})


def run_causal_suite(policy: Any, game: Any, concepts: Sequence[str], layer: str | None = None, n_positions: int = 1500,
                     alphas: Sequence[float] = DEFAULT_ALPHAS, n_random: int = 5, inlp_rank: int = 16,
                     n_parents: int = 1500, max_pairs: int = 200, seed: int = 0,
                     solution_cache: str | Path | None = None, progress: bool = True) -> dict:
    """Steering, erasure and minimal pairs for every concept at one layer of one policy.

    :param layer: a name from `agents.network.probe_layers` (default: `default_layer`).
    :param n_positions: labelled positions (70% of games for fitting, 30% for measuring).
    :param n_parents: random parent positions searched for minimal pairs.
    :param max_pairs: minimal pairs kept per concept.
    :returns: a JSON-able dict: settings, ``probe`` / ``erasers`` rows, tidy ``steering`` and
        ``erasure`` records, ``minimal_pairs`` (summary per concept and every pair).
    """
    names = [info.name for info in probe_layers(policy)]
    layer = layer or default_layer(policy)
    if layer not in names:
        raise ValueError(f"unknown layer {layer!r}; layers: {', '.join(names)}")
    policy.set_training_mode(False)
    positions = build_positions(game, policy, n_positions, concepts, seed=seed, solution_cache=solution_cache,
                                progress=progress)
    out: dict = {"layer": layer, "concepts": list(concepts), "n_positions": len(positions), "alphas": list(alphas),
                 "n_random": n_random, "inlp_rank": inlp_rank, "seed": seed,
                 "probe": [], "erasers": [], "steering": [], "erasure": [], "minimal_pairs": {"summary": [], "pairs": []}}
    for concept in concepts:
        result = concept_causal_tests(policy, positions, layer, concept, alphas, n_random, inlp_rank, seed, progress)
        out["probe"].append(result["probe"])
        out["erasers"] += result["erasers"]
        out["steering"] += result["steering"]
        out["erasure"] += result["erasure"]
    parents = random_parents(game, n_parents, seed=seed, min_ply=11)
    for concept in concepts:
        pairs = find_minimal_pairs(game, concept, parents, max_pairs=max_pairs, seed=seed, solution_cache=solution_cache)
        records, summary = pair_behaviour(policy, game, pairs)
        out["minimal_pairs"]["summary"].append({"concept": concept, "parents": len(parents), **summary})
        out["minimal_pairs"]["pairs"] += records
    return out
