"""The execution layer (common.engine): local processes and a real local Ray instance give the same results.

Ray tests start a private instance with 1-2 CPUs and no dashboard (about 3 s each), and one
kills a worker's process in the middle of its item to check that nothing is lost or done twice.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from common.atomic import atomic_write_text
from common.engine import LocalEngine, RayEngine, check_engine_options, make_engine


def square(x: int) -> int:
    return x * x


def write_item(item: tuple[str, int]) -> tuple[int, int]:
    """Write ``folder/item-K.txt`` atomically; the item named in ``folder/die-at`` kills its worker the first time."""
    folder, k = Path(item[0]), item[1]
    marker = folder / "die-at"
    if marker.exists() and marker.read_text() == str(k):
        marker.unlink()  # the retry finds no marker: the worker died once, in the middle of this item
        os._exit(1)
    atomic_write_text(str(k * k), folder / f"item-{k}.txt")
    return k, os.getpid()


_INITIALISED = []


def mark_initialised() -> None:
    _INITIALISED.append(os.getpid())


def initialised(_: int) -> bool:
    return os.getpid() in _INITIALISED


@pytest.mark.parametrize("jobs", [1, 2])
def test_local_engine_runs_every_item_once(jobs):
    with LocalEngine(jobs) as engine:
        assert sorted(engine.map_unordered(square, range(20))) == [k * k for k in range(20)]
        if jobs > 1:  # the initializer runs in every worker before its items
            assert all(engine.map_unordered(initialised, range(4), mark_initialised))
    assert list(LocalEngine(2).map_unordered(square, [])) == []


def test_engine_options_are_checked_before_any_work():
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        check_engine_options("spark")
    with pytest.raises(ValueError, match="is for the ray engine; add --engine ray"):
        make_engine("local", 2, "10.0.0.1:6379")
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        LocalEngine(0)
    engine = LocalEngine(1)
    assert make_engine(engine) is engine


@pytest.fixture(scope="module")
def ray_engine():
    engine = RayEngine(2)
    yield engine
    engine.close()


def test_ray_engine_matches_the_local_engine(ray_engine):
    import ray

    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2
    assert sorted(ray_engine.map_unordered(square, range(30))) == [k * k for k in range(30)]
    assert all(ray_engine.map_unordered(initialised, range(4), mark_initialised))
    assert "ray engine, 2 worker(s) on a local instance" == ray_engine.describe()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("item 3 is bad")
    return x


def test_an_item_error_reaches_the_caller_as_itself(ray_engine):
    for engine in (ray_engine, LocalEngine(2)):
        with pytest.raises(ValueError, match="^item 3 is bad$"):
            list(engine.map_unordered(fail_on_three, range(6)))


def test_a_worker_killed_mid_item_loses_and_duplicates_nothing(ray_engine, tmp_path):
    (tmp_path / "die-at").write_text("5")
    items = [(str(tmp_path), k) for k in range(12)]
    results = list(ray_engine.map_unordered(write_item, items))
    assert not (tmp_path / "die-at").exists()  # a worker did die, in item 5
    assert sorted(k for k, _ in results) == list(range(12))  # every item once: none lost, none twice
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"item-{k}.txt" for k in range(12))
    assert all((tmp_path / f"item-{k}.txt").read_text() == str(k * k) for k in range(12))
    assert not list(tmp_path.glob(".*"))  # no temporary file of the killed write is left


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_datasets_are_the_same_bytes_on_every_engine(ray_engine, tmp_path):
    from games.datasets import build_dataset

    options = {"seed": 3, "concepts": ["win_in_1", "threat_squares_me", "value", "good_moves"], "progress": False,
               "batch_size": 16}
    local = build_dataset("tictactoe", 120, tmp_path / "local", jobs=1, **options)
    ray_built = build_dataset("tictactoe", 120, tmp_path / "ray", jobs=2, engine=ray_engine, **options)
    assert _sha(local) == _sha(ray_built)
    parts = sorted(p.name for p in (tmp_path / "ray" / "parts").iterdir())
    assert len(parts) == 8 and all(p.startswith("part-0000") and len(p.split("-")[2]) == len("0123456789ab.parquet")
                                   for p in parts)  # part files keyed by their positions' hash
    again = build_dataset("tictactoe", 120, tmp_path / "ray", jobs=2, engine=ray_engine, **options)
    assert _sha(again) == _sha(local)  # a finished dataset is read back, nothing relabelled
    import ray

    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2  # an engine passed in is left open


def test_expensive_batches_start_first(tmp_path, monkeypatch, caplog):
    """Batches are handed to the engine fewest stones first (the solver's cost falls with the ply)."""
    import games.datasets as datasets

    seen: list[int] = []

    class Recording(LocalEngine):
        def map_unordered(self, fn, items, initializer=None):
            for item in items:
                seen.append(min(len(t) for t in item[1]))
                yield fn(item)

    datasets.build_dataset("connect4", 60, tmp_path / "d", seed=1, jobs=1, concepts=["win_in_1"], progress=False,
                           batch_size=10, min_ply=8, engine=Recording(1))
    assert len(seen) == 6 and seen == sorted(seen) and seen[0] < seen[-1]
