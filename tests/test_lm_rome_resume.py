"""Resuming the ROME experiment: finished edits are reused, changed or missing ones redone (tiny model)."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from lm_interp import load_model  # noqa: E402
from lm_interp.editing.cases import tiny_cases  # noqa: E402
from lm_interp.editing.finetune import FTConfig, finetune_edit  # noqa: E402
from lm_interp.editing.report import (  # noqa: E402
    edit_record_path,
    read_edit_record,
    read_rome_report,
    record_key,
)
from lm_interp.editing.run import run_rome, run_suite  # noqa: E402
from lm_interp.models.world import make_world  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


def _ftl(lm, request):
    return finetune_edit(lm, request, FTConfig(layer=1, lr=5e-3, steps=2, linf=1e-3))


def test_an_interrupted_suite_resumes_where_it_stopped(tiny, tmp_path):
    cases = tiny_cases(make_world(0), 3)
    settings = {"ft-l": {"steps": 2}}
    calls = {"n": 0}

    def interrupted(lm, request):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed during the second edit
        return _ftl(lm, request)

    with pytest.raises(KeyboardInterrupt):
        run_suite(tiny, cases, {"ft-l": interrupted}, tmp_path, progress=False, settings=settings)
    assert read_edit_record(tmp_path, "ft-l", cases[0].case_id) is not None
    assert read_edit_record(tmp_path, "ft-l", cases[1].case_id) is None
    first = edit_record_path(tmp_path, "ft-l", cases[0].case_id).read_text()

    records, counts = run_suite(tiny, cases, {"ft-l": _ftl}, tmp_path, progress=False, settings=settings)
    assert counts == {"computed": 2, "resumed": 1}
    assert edit_record_path(tmp_path, "ft-l", cases[0].case_id).read_text() == first  # not redone
    assert [r["case"]["case_id"] for r in records["ft-l"]] == [c.case_id for c in cases]
    assert all(r["key"] == record_key(c.to_dict(), settings["ft-l"]) and r["wall_seconds"] > 0
               for r, c in zip(records["ft-l"], cases))

    # other settings (or another case under the same id) redo the edit; a file cut short too
    _, counts = run_suite(tiny, cases[:1], {"ft-l": _ftl}, tmp_path, progress=False, settings={"ft-l": {"steps": 3}})
    assert counts == {"computed": 1, "resumed": 0}
    edit_record_path(tmp_path, "ft-l", cases[1].case_id).write_text('{"case": ')
    _, counts = run_suite(tiny, cases, {"ft-l": _ftl}, tmp_path, progress=False, settings=settings)
    assert counts == {"computed": 2, "resumed": 1}


def test_rerunning_the_same_run_reuses_every_edit_and_records_the_cost(tmp_path):
    out = tmp_path / "run"
    opts = dict(editors="rome,ft-l", n_edits=2, trace_cases=0, cov_n_texts=100, v_steps=5, progress=False)
    run_rome("tiny", out, command="python scripts/lm_rome.py --model tiny", **opts)
    first = read_rome_report(out)
    assert first.cost["edits_computed"] == 4 and first.cost["edits_resumed"] == 0
    assert first.command == "python scripts/lm_rome.py --model tiny"
    assert first.relations == {"city": 1, "spouse": 1}
    assert {t["b"] for t in first.paired} == {"ft-l"} and first.claims and first.changes
    stale = edit_record_path(out, "rome", "tiny-city-099")  # left by an earlier, larger run
    stale.write_text("{}")

    second = run_rome("tiny", out, **opts)
    assert second.cost["edits_computed"] == 0 and second.cost["edits_resumed"] == 4
    assert second.summary == first.summary and second.paired == first.paired
    assert second.cost["experiment_seconds"] == first.cost["experiment_seconds"]  # summed over the records
    assert not stale.exists()
    table = (out / "table.md").read_text()
    assert "## Paired tests: ROME against FT and FT-L" in table and "## Seed claims" in table
    assert "read back" in table and json.loads((out / "summary.json").read_text())["cost"]["edits_resumed"] == 4

    third = run_rome("tiny", out, **{**opts, "v_steps": 6})  # ROME's settings changed: only ROME is redone
    assert third.cost["edits_computed"] == 2 and third.cost["edits_resumed"] == 2


def test_old_summaries_without_the_new_fields_still_read(tmp_path):
    from lm_interp.editing.report import RomeReport

    report = RomeReport("tiny", "d", "s", ["rome"], 1, 1, 1, "k", [], None, {}, {}, None, 1.0)
    old = {k: v for k, v in report.to_json().items()
           if k not in ("paired", "changes", "claims", "intervals", "cost", "command", "relations")}
    (tmp_path / "summary.json").write_text(json.dumps(old))
    assert read_rome_report(tmp_path) == report
