"""The agents-vs-oracle comparison: strength matching, and the whole comparison on tiny 5x4 networks."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from agents.records import EvaluationRecord

torch.set_num_threads(1)


def _record(step: int, rates: dict[str, float]) -> EvaluationRecord:
    return EvaluationRecord.from_json({"timestep": step, "move_quality": {
        name: {"n": 100, "good_rate": r, "perfect_rate": r / 2} for name, r in rates.items()}})


def test_matched_checkpoint_is_the_closest_in_mean_good_move_rate():
    from agents.oracle_comparison import matched_record, strength

    agent = _record(10, {"End": 0.8, "Begin": 0.9, "agent only": 0.1})
    oracle = [_record(1, {"End": 0.5, "Begin": 0.6}), _record(2, {"End": 0.82, "Begin": 0.86}),
              _record(3, {"End": 0.95, "Begin": 0.97}), _record(4, {"End": 0.99, "Begin": 0.99})]
    best, sets = matched_record(agent, oracle)
    assert best.timestep == 2 and sets == ["End", "Begin"]
    assert strength(best, sets) == pytest.approx(0.84)
    assert matched_record(agent, oracle, sets=["Begin"])[0].timestep == 2  # 0.86 is the closest to 0.9 there
    assert matched_record(_record(10, {"End": 0.97, "Begin": 0.1}), oracle, sets=["End"])[0].timestep == 3
    with pytest.raises(ValueError, match="no evaluated checkpoint"):
        matched_record(agent, [EvaluationRecord.from_json({"timestep": 1})])
    with pytest.raises(ValueError, match="share no evaluation set"):
        matched_record(agent, [_record(1, {"Middle": 0.5})])


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """Two 'seeds' of tiny 5x4 networks recorded as a study folder, and a tiny oracle run."""
    from agents.checkpoints import list_checkpoints
    from agents.reference import ReferenceConfig, train_reference
    from games.datasets import build_dataset
    from probes.sweep_folder import SweepInfo, write_info

    root = tmp_path_factory.mktemp("oracle_cmp")
    data = build_dataset("connect4", 300, root / "data", game_kwargs={"width": 5, "height": 4}, min_ply=4, jobs=1,
                         seed=0, progress=False,
                         concepts=["value", "score", "column_scores", "good_moves", "win_in_1", "n_threats_me"]).parent
    common = dict(game="connect4", game_kwargs={"width": 5, "height": 4}, batch_size=32, eval_games=0,
                  eval_decisive=60, torch_threads=1, network={"channels": 8, "blocks": 1})
    study = root / "study"
    trained = root / "trained"  # one network stands in for both seeds' agents: the decisive sets (seeded by the
    train_reference(ReferenceConfig(str(data), epochs=2, checkpoints=2, **common), trained, progress=False)  # run's seed)
    for seed in (0, 1):  # then hold the same positions as the oracle's, so strengths can be matched on them
        run = root / f"connect4-seed{seed}"
        shutil.copytree(trained, run)
        agent = study / f"seed{seed}" / "agent"
        agent.mkdir(parents=True)
        for name in ("config.json", "evaluations.jsonl"):
            shutil.copy(run / name, agent / name)
        found = list_checkpoints(run)
        shutil.copy(found[0][1], agent / "step_000000000.zip")  # stands in for the untrained network
        shutil.copy(found[-1][1], agent / found[-1][1].name)
        shutil.copytree(data, study / f"seed{seed}" / "dataset")
        write_info(study / f"seed{seed}" / "sweep", SweepInfo([str(run)], str(data), 300, 50))
    oracle = root / "oracle"
    train_reference(ReferenceConfig(str(data), epochs=3, checkpoints=3, policy_target="scores",
                                    value_target="score", symmetries=True, **common), oracle, progress=False)
    return study, oracle, root


def test_comparison_with_the_study_writes_matched_paired_differences(tiny_study):
    from agents.oracle_comparison import compare_with_study
    from agents.runs import read_evaluations
    from probes.study import StudySettings

    study, oracle, root = tiny_study
    out = root / "out"
    report = compare_with_study(study, oracle, out, jobs=1, max_positions=300, random_seeds=1, spatial_positions=100,
                                max_components=32, settings=StudySettings(n_boot=100), progress=False)
    text = report.read_text()
    assert "# Learned vs optimal" in text and "final vs final" in text and "matched strength" in text
    matches = json.loads((out / "strength.json").read_text())["seeds"]
    assert [m["agent_run"] for m in matches] == ["connect4-seed0", "connect4-seed1"]
    oracle_steps = [r.timestep for r in read_evaluations(oracle)]
    for m in matches:
        assert m["matched_step"] in oracle_steps and m["oracle_final_step"] == oracle_steps[-1]
        assert abs(m["matched_strength"] - m["agent_strength"]) <= abs(m["oracle_final_strength"] -
                                                                       m["agent_strength"]) + 1e-12
    by_layer = pd.read_csv(out / "by_layer.csv")
    assert set(by_layer["comparison"]) == {"final vs final", "matched strength"}
    assert (by_layer["seeds"] == 2).all() and set(by_layer["concept"]) >= {"win_in_1", "value"}
    differences = pd.read_csv(out / "differences.csv.gz")
    assert set(differences["seed"]) == {"seed0", "seed1"}
    assert (differences["ci_low"] <= differences["delta"] + 1e-9).all()
    assert (out / "differences.png").stat().st_size > 0 and (out / "beyond_controls.csv").exists()
    again = compare_with_study(study, oracle, out, jobs=1, max_positions=300, random_seeds=1, spatial_positions=100,
                               max_components=32, settings=StudySettings(n_boot=100), progress=False)
    assert again.read_text() == text  # a rerun reads the finished sweeps back and says the same
