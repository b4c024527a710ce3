"""Evaluation records: typed in memory, the same bytes on disk (`agents.records`, `agents.runs`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.records import EvaluationRecord, GameResult, MoveQuality
from agents.runs import EVALUATIONS_FILE, good_move_curves, read_evaluations, write_evaluation

ROOT = Path(__file__).resolve().parents[1]
RECORDED = sorted((ROOT / "results").rglob(EVALUATIONS_FILE))

OUTCOMES = {"win": 0.5, "draw": 0.25, "loss": 0.25}
ENTRIES = {"timestep": 512, "checkpoint": "checkpoints/step_000000512.zip", "time": 1.5, "views": 8,
           "sets": {"decisive": {"n": 5, "source": "sampled", "positions_sha256": "0123456789abcdef"}},
           "move_quality": {"decisive": {"n": 5, "perfect_rate": 0.4, "good_rate": 0.6,
                                         "errors": {"missed_immediate_win": 1, "allowed_immediate_loss": 1,
                                                    "deeper": 0}}},
           "games": {"random": {"games": 4, "opening_plies": 2, "as_first": OUTCOMES, "as_second": OUTCOMES,
                                "all": OUTCOMES}},
           "symmetry_consistency": {"decisive": 0.8}, "eval_seconds": 0.25}


@pytest.mark.skipif(not RECORDED, reason="no recorded run under results/")
@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.parent.name)
def test_every_recorded_evaluation_file_round_trips_byte_for_byte(path):
    lines = path.read_text().splitlines()
    for line in lines:
        record = EvaluationRecord.from_json(json.loads(line))
        assert json.dumps(record.to_json()) == line
        assert record.move_quality and record.games and record.checkpoint and record.time  # all typed, none lost
        assert all(isinstance(q, MoveQuality) for q in record.move_quality.values())
        assert all(isinstance(g, GameResult) for g in record.games.values())
    assert [r.timestep for r in read_evaluations(path.parent)] == sorted(json.loads(x)["timestep"] for x in lines)


def test_records_read_as_typed_objects_and_write_the_same_json(tmp_path):
    write_evaluation(tmp_path, ENTRIES)
    assert (tmp_path / EVALUATIONS_FILE).read_text() == json.dumps(ENTRIES) + "\n"  # same keys, same order
    [record] = read_evaluations(tmp_path)
    assert record.timestep == 512 and record.agent_views == 8 and record.sets["decisive"].n == 5
    assert record.move_quality["decisive"].good_rate == 0.6 and record.move_quality["decisive"].errors["deeper"] == 0
    assert record.games["random"].all.win == 0.5 and record.games["random"].as_second.loss == 0.25
    assert record.holdout is None and record.symmetry_consistency == {"decisive": 0.8} and record.extra == {}
    write_evaluation(tmp_path, record)  # a typed record writes the same line
    assert (tmp_path / EVALUATIONS_FILE).read_text() == json.dumps(ENTRIES) + "\n"


def test_writing_replaces_a_timestep_keeps_order_and_unknown_keys(tmp_path):
    write_evaluation(tmp_path, {**ENTRIES, "timestep": 1024})
    write_evaluation(tmp_path, {"timestep": 256, "checkpoint": "c", "time": 2.0, "future_metric": {"a": [1, 2]}})
    write_evaluation(tmp_path, {**ENTRIES, "games": {}})  # written empty: stays empty, not absent
    write_evaluation(tmp_path, {**ENTRIES, "timestep": 1024, "eval_seconds": 9.0})  # replaces, not duplicates
    records = read_evaluations(tmp_path)
    assert [r.timestep for r in records] == [256, 512, 1024] and records[2].eval_seconds == 9.0
    assert records[0].move_quality is None and records[0].extra == {"future_metric": {"a": [1, 2]}}
    assert records[1].games == {}
    lines = (tmp_path / EVALUATIONS_FILE).read_text().splitlines()
    assert json.loads(lines[0]) == {"timestep": 256, "checkpoint": "c", "time": 2.0, "future_metric": {"a": [1, 2]}}
    assert json.loads(lines[1])["games"] == {}
    assert good_move_curves(tmp_path) == {"decisive": ([512, 1024], [0.6, 0.6])}


def test_older_and_reference_records_lack_entries_and_read_as_none():
    old = EvaluationRecord.from_json({"timestep": 1, "checkpoint": "c", "time": 0.0, "move_quality": {
        "s": {"n": 1, "perfect_rate": 1.0, "good_rate": 1.0}}, "games": {"random": {
            "games": 2, "as_first": OUTCOMES, "as_second": OUTCOMES, "all": OUTCOMES}}})
    assert old.views is None and old.agent_views == 1 and old.sets is None and old.eval_seconds is None
    assert old.move_quality["s"].errors is None and old.games["random"].opening_plies is None
    holdout = {"policy_ce": 1.5, "value_mse": 0.5, "good_move_rate": 0.7, "value_sign_accuracy": float("nan")}
    reference = EvaluationRecord.from_json({"timestep": 1, "checkpoint": "c", "time": 0.0, "holdout": holdout})
    assert reference.holdout.good_move_rate == 0.7 and list(reference.to_json()) == [
        "timestep", "checkpoint", "time", "holdout"]


def test_damaged_files_and_malformed_records_are_named(tmp_path):
    with pytest.raises(ValueError, match="needs timestep"):
        write_evaluation(tmp_path, {"checkpoint": "c"})
    with pytest.raises(ValueError, match="MoveQuality needs n, perfect_rate, good_rate"):
        EvaluationRecord.from_json({"timestep": 1, "move_quality": {"s": {}}})
    (tmp_path / EVALUATIONS_FILE).write_text(json.dumps(ENTRIES) + "\n{not json\n")
    with pytest.raises(ValueError, match="not valid JSON .*line 2"):
        read_evaluations(tmp_path)
    (tmp_path / EVALUATIONS_FILE).write_text(json.dumps(ENTRIES) + "\n" + json.dumps({"time": 1.0}) + "\n")
    with pytest.raises(ValueError, match=f"{EVALUATIONS_FILE}, line 2, is not an evaluation record"):
        read_evaluations(tmp_path)
    assert read_evaluations(tmp_path / "nowhere") == []
