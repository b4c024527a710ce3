"""The reference network: supervised on solver labels, saved as a run folder the probe sweep can read."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    from games.datasets import build_dataset

    out = tmp_path_factory.mktemp("ttt") / "ds"
    build_dataset("tictactoe", 500, out, concepts=["value", "good_moves"], jobs=1, seed=0, progress=False)
    return out


def test_reference_network_learns_the_solver_labels_and_is_a_sweepable_run(labelled, tmp_path):
    from agents.probing import run_entries
    from agents.reference import ReferenceConfig, train_reference
    from agents.runs import game_of_run
    from agents.runs import read_evaluations

    config = ReferenceConfig(str(labelled), game="tictactoe", epochs=20, batch_size=32, checkpoints=3, eval_games=10,
                             eval_decisive=0, torch_threads=1, network={"channels": 16, "blocks": 1})
    final = train_reference(config, tmp_path / "run", progress=False)
    assert final.exists()
    records = read_evaluations(tmp_path / "run")
    assert len(records) == 3 and records[-1].checkpoint == str(final.relative_to(tmp_path / "run"))
    first, last = records[0].holdout, records[-1].holdout
    assert last.policy_ce < first.policy_ce and last.value_mse < first.value_mse - 0.05
    assert last.good_move_rate > max(0.75, first.good_move_rate + 0.05)
    assert game_of_run(tmp_path / "run").name == "tictactoe"
    entries = run_entries(tmp_path / "run", random_seeds=1, include_input=False)
    assert [e.step for e in entries[:-1]] == [r.timestep for r in records]


def test_reference_data_errors_name_the_missing_labels(tmp_path):
    import games
    from agents.reference import load_reference_data
    from games.datasets import build_dataset

    with pytest.raises(FileNotFoundError, match="make_dataset"):
        load_reference_data(tmp_path / "nothing", games.get("tictactoe"))
    build_dataset("tictactoe", 50, tmp_path / "static", concepts=["win_in_1"], jobs=1, seed=0, progress=False)
    with pytest.raises(ValueError, match="good_moves"):
        load_reference_data(tmp_path / "static", games.get("tictactoe"))
