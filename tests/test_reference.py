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


def test_score_targets_put_all_mass_on_value_preserving_moves():
    import numpy as np

    from agents.reference import score_policy_target, score_value_target

    nan = float("nan")
    good = np.array([[True, True, False, False], [True, True, True, False], [False, False, False, False]])
    scores = np.array([[5.0, 3.0, -2.0, nan], [-4.0, -2.0, -6.0, nan], [nan, nan, nan, nan]])
    target = score_policy_target(good, scores, temperature=2.0)
    assert np.allclose(target[:2].sum(axis=1), 1) and np.all(target[2] == 0)
    assert np.all(target[~good] == 0)
    assert np.isclose(target[0, 0] / target[0, 1], np.exp(1.0))  # two points better: e^(2/2) times the mass
    assert target[1].argmax() == 1  # losing slowest is preferred among losing moves
    assert np.allclose(score_policy_target(good, scores, temperature=1e-3)[0], [1, 0, 0, 0], atol=1e-6)
    values = score_value_target(np.array([18, 1, 0, -1, -18]), n_squares=42)
    assert values[2] == 0 and np.all(values[:2] > 0.5) and np.all(values[3:] < -0.5)
    assert values[0] > values[1] and np.isclose(values[0], -values[4]) and values[0] <= 1


def test_symmetric_batches_are_the_symmetric_positions():
    import numpy as np

    import games
    from agents.reference import _symmetry_tables, _transform

    game = games.get("connect4", width=5, height=4)
    states = [game.parse(t) for t in ("1", "12", "3345", "55412", "1122334")]
    obs = torch.as_tensor(np.stack([game.observation(s) for s in states]))
    masks = torch.as_tensor(np.stack([game.legal_mask(s) for s in states]))
    per_move = torch.arange(5 * game.num_actions, dtype=torch.float32).reshape(5, game.num_actions)
    squares, actions = _symmetry_tables(game, tuple(obs.shape[1:]))
    assert len(squares) == len(game.symmetries()) == 2
    for k, sym in enumerate(game.symmetries()):
        seen, (m, p) = _transform(obs, [masks, per_move], squares[k], actions[k])
        assert np.array_equal(seen.numpy(), sym.apply_planes(obs.numpy()))
        assert np.array_equal(m.numpy(), sym.apply_actions(masks.numpy()))
        assert np.array_equal(p.numpy(), sym.apply_actions(per_move.numpy()))
    mirrored = game.parse("5")  # column 1 mirrored on a 5-wide board
    assert np.array_equal(_transform(obs[:1], [], squares[1], actions[1])[0][0].numpy(), game.observation(mirrored))


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(labelled, tmp_path, monkeypatch):
    import agents.reference as reference
    from agents.reference import ReferenceConfig, train_reference
    from agents.runs import read_evaluations

    config = ReferenceConfig(str(labelled), game="tictactoe", epochs=3, batch_size=64, checkpoints=3, eval_games=0,
                             eval_decisive=0, eval_positions=0, torch_threads=1, symmetries=True,
                             network={"channels": 8, "blocks": 1})
    whole = train_reference(config, tmp_path / "whole", progress=False)
    with pytest.raises(FileNotFoundError, match="no resume.pt"):
        train_reference(config, tmp_path / "cut", progress=False, resume=True)
    real = reference._save_state

    def stop_after_first_epoch(path, *args):
        real(path, *args)
        if args[-2] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(reference, "_save_state", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_reference(config, tmp_path / "cut", progress=False)
    monkeypatch.setattr(reference, "_save_state", real)
    other = ReferenceConfig(**{**config.__dict__, "learning_rate": 1e-3})
    with pytest.raises(ValueError, match="learning_rate"):
        train_reference(other, tmp_path / "cut", progress=False, resume=True)
    cut = train_reference(config, tmp_path / "cut", progress=False, resume=True)
    assert cut.name == whole.name
    from sb3_contrib import MaskablePPO

    a, b = MaskablePPO.load(whole).policy.state_dict(), MaskablePPO.load(cut).policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r.timestep for r in read_evaluations(tmp_path / "cut")] == \
        [r.timestep for r in read_evaluations(tmp_path / "whole")]


def test_oracle_targets_from_several_connect4_datasets(tmp_path):
    import numpy as np

    import games
    from agents.reference import ReferenceConfig, load_reference_data
    from games.datasets import build_dataset

    concepts = ["value", "score", "column_scores", "good_moves"]
    for seed in (0, 1):
        build_dataset("connect4", 120, tmp_path / f"d{seed}", concepts=concepts, jobs=1, seed=seed, progress=False,
                      game_kwargs={"width": 5, "height": 4}, min_ply=6)
    game = games.get("connect4", width=5, height=4)
    config = ReferenceConfig([str(tmp_path / "d0"), str(tmp_path / "d1")], policy_target="scores",
                             value_target="score")
    data = load_reference_data(config.datasets, game, config)
    single = load_reference_data(str(tmp_path / "d0"), game, config)
    assert 200 < len(data) <= 240 and len(single) < len(data)
    assert np.allclose(data.policy.sum(axis=1), 1)
    assert not (set(data.groups[:len(single)]) & set(data.groups[len(single):]))  # folders' games kept apart
    assert np.array_equal(np.sign(data.value_target), data.value)
    with pytest.raises(ValueError, match="column_scores"):
        build_dataset("connect4", 20, tmp_path / "plain", concepts=["value", "good_moves"], jobs=1, seed=0,
                      progress=False, game_kwargs={"width": 5, "height": 4}, min_ply=6)
        load_reference_data(str(tmp_path / "plain"), game, config)
