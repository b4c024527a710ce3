"""Shared test fixtures: paths to the read-only shared data, offline hubs, a private cache folder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# caches written by tests (solutions, evaluation labels, books) go to a throw-away folder
if "SOLVEDLENS_CACHE" not in os.environ:
    os.environ["SOLVEDLENS_CACHE"] = tempfile.mkdtemp(prefix="solvedlens-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SOLVEDLENS_CACHE"], ignore_errors=True)
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
CONNECT4_DATA = SHARED / "data" / "connect4"
PROJECT_DATA = REPO_ROOT / "data" / "connect4"


def read_benchmark(name: str) -> list[tuple[str, int]]:
    """(moves, score) pairs of one of Pons' benchmark files: shared/ first, then data/."""
    for folder in (CONNECT4_DATA, PROJECT_DATA):
        path = folder / name
        if path.exists():
            pairs = []
            for line in path.read_text().splitlines():
                if line.strip():
                    moves, score = line.split()
                    pairs.append((moves, int(score)))
            return pairs
    pytest.skip(f"benchmark file {name} not found in {CONNECT4_DATA} or {PROJECT_DATA} (../shared is absent)")


@pytest.fixture(scope="session")
def solver_7x6():
    """One solver for the whole session (its 32 MiB table is touched lazily)."""
    from solver import Solver

    return Solver(7, 6)


@pytest.fixture(scope="module")
def tiny_policy():
    """A small Connect Four `BoardPolicy` (8 channels, one block) with untrained weights, in eval mode."""
    from sb3_contrib import MaskablePPO

    from agents.network import BoardPolicy
    from games.envs.vector import SelfPlayVecEnv

    env = SelfPlayVecEnv("connect4", num_envs=2, opponent="random", seed=0)
    model = MaskablePPO(BoardPolicy, env, n_steps=8, batch_size=16, seed=0, device="cpu",
                        policy_kwargs={"network": {"channels": 8, "blocks": 1, "head_hidden": 16}})
    model.policy.set_training_mode(False)
    return model.policy
