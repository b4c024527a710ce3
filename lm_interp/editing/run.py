"""The ROME hazards experiment on one model, from options to its result folder (`scripts/lm_rome.py`).

Per-model hyperparameters (`MODEL_DEFAULTS`), the editor factory (`make_editors`), the resumable
single-edit loop (`run_suite`) and `run_rome`, which picks the cases, runs every editor, traces
a few facts and writes the folder through `lm_interp.editing.report` (the module that owns it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from lm_interp.editing.cases import (
    EditCase,
    interleave_relations,
    keep_known,
    real_cases,
    tiny_cases,
)
from lm_interp.editing.evaluation import evaluate_edit, run_probes, summarise_edits
from lm_interp.editing.finetune import FTConfig, finetune_edit
from lm_interp.editing.report import (
    RomeReport,
    read_edit_record,
    write_edit_record,
    write_rome_report,
)
from lm_interp.editing.rome import ROMEConfig, ROMEEditor
from lm_interp.editing.weights import EditRequest, WeightEdit

log = logging.getLogger(__name__)

# per model: (ROME layer, ridge, FT lr, FT-L bound); tiny values chosen on a small sweep (see docs/lm.md)
MODEL_DEFAULTS: dict[str, tuple[int, float, float, float]] = {"tiny": (1, 1e-1, 5e-3, 5e-3),
                                                              "smollm2": (6, 1e-3, 5e-4, 5e-4)}
EDITORS = ("rome", "rome-legacy", "ft", "ft-l")


def check_rome_options(editors: str, n_edits: int, trace_cases: int, v_steps: int) -> list[str]:
    """The chosen editors of a comma-separated list; ValueError naming the option if anything is out of range."""
    chosen = [e.strip() for e in editors.split(",") if e.strip()]
    unknown = [e for e in chosen if e not in EDITORS]
    if unknown or not chosen:
        raise ValueError(f"unknown editors {unknown or chosen}; editors: {EDITORS}")
    if n_edits < 1:
        raise ValueError(f"--n-edits must be at least 1, got {n_edits}")
    if trace_cases < 0 or v_steps < 1:
        raise ValueError(f"--trace-cases must be 0 or more and --v-steps at least 1, got {trace_cases} and {v_steps}")
    return chosen


def make_editors(lm, chosen: Sequence[str], cfg: ROMEConfig, ft_lr: float, ftl_linf: float
                 ) -> tuple[dict[str, Callable[[object, EditRequest], WeightEdit]], list[ROMEEditor]]:
    """``{editor name: (model, request) -> WeightEdit}`` for `chosen`, and the prepared ROME editors."""
    editors, rome_editors = {}, []
    if "rome" in chosen:
        rome = ROMEEditor(lm, cfg).prepare()
        editors["rome"] = lambda m, r: rome.edit(r)
        rome_editors.append(rome)
    if "rome-legacy" in chosen:
        legacy = ROMEEditor(lm, replace(cfg, key_mode="legacy")).prepare()
        editors["rome-legacy"] = lambda m, r: legacy.edit(r)
        rome_editors.append(legacy)
    if "ft" in chosen:
        editors["ft"] = lambda m, r: finetune_edit(m, r, FTConfig(layer=cfg.layer, lr=ft_lr))
    if "ft-l" in chosen:
        editors["ft-l"] = lambda m, r: finetune_edit(m, r, FTConfig(layer=cfg.layer, lr=ft_lr, linf=ftl_linf))
    return editors, rome_editors


def run_suite(lm, cases: Sequence[EditCase], editors: dict, out_dir, progress: bool = True) -> dict[str, list[dict]]:
    """Every editor on every case (single-edit setting, restored after each), resumable per edit.

    Records are written as each edit finishes (`lm_interp.editing.report.write_edit_record`);
    existing ones are read instead of recomputed. Returns ``{editor: [record, ...]}``.
    """
    records: dict[str, list[dict]] = {name: [] for name in editors}
    items = list(cases)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="edits", unit="case")
    for case in items:
        before = None
        for name, editor in editors.items():
            rec = read_edit_record(out_dir, name, case.case_id)
            if rec is None:
                before = before if before is not None else run_probes(lm, case)
                rec = evaluate_edit(lm, case, editor, before)
                write_edit_record(rec, out_dir, name, case.case_id)
            records[name].append(rec)
    return records


def run_rome(model: str, out_dir: str | Path, editors: str = "rome,ft,ft-l", n_edits: int = 24,
             layer: int | None = None, covariance: str = "corpus", cov_corpus: str | None = None,
             cov_n_texts: int | None = None, v_steps: int = 20, trace_cases: int = 3, seed: int = 0
             ) -> RomeReport:
    """Single edits by every chosen editor on `model`, their hazards, a causal trace; writes `out_dir`.

    :param model: ``tiny`` (edits from the synthetic world), ``smollm2`` or a folder (real facts,
        kept only if the unedited model predicts them).
    :param layer: ... :param cov_corpus: ... :param cov_n_texts: None: the model's default (`MODEL_DEFAULTS`;
        tiny: generated corpus, 500 texts; otherwise model samples, 64 texts).
    """
    from lm_interp.machinery.tracing import causal_trace_cases
    from lm_interp.models.loading import load_model
    from lm_interp.models.world import make_world

    chosen = check_rome_options(editors, n_edits, trace_cases, v_steps)
    t0 = time.perf_counter()
    lm = load_model(model)
    d_layer, ridge, ft_lr, ftl_linf = MODEL_DEFAULTS.get(lm.name, MODEL_DEFAULTS["smollm2"])
    layer = d_layer if layer is None else layer
    tiny = lm.name == "tiny"
    if tiny:
        world_seed = lm.info.get("recipe", {}).get("config", {}).get("world_seed", 0)
        candidates = tiny_cases(make_world(world_seed), max(n_edits, 1), seed=seed)
    else:
        candidates = interleave_relations(real_cases(seed=seed))
    kept, known_record = keep_known(lm, candidates)
    cases = kept[:n_edits]
    if len(cases) < n_edits:
        log.warning("only %d of %d candidate facts are known to the unedited model; running %d edits",
                    len(kept), len(candidates), len(cases))
    cfg = ROMEConfig(layer=layer, covariance=covariance, ridge=ridge, v_steps=v_steps, seed=seed,
                     cov_corpus=cov_corpus or ("generated" if tiny else "samples"),
                     cov_n_texts=cov_n_texts or (500 if tiny else 64))
    editor_fns, rome_editors = make_editors(lm, chosen, cfg, ft_lr, ftl_linf)
    records = run_suite(lm, cases, editor_fns, out_dir)
    trace = causal_trace_cases(lm, cases[:trace_cases], seed=seed) if trace_cases > 0 else None
    report = RomeReport(
        model=lm.spec, description=lm.description, setting="single edits, each restored before the next",
        editors=chosen, n_candidates=len(candidates), n_known=len(kept), n_edits=len(cases),
        known_check="top-1 next token of the unedited model = first token of the true object",
        candidates=known_record, rome_config=rome_editors[0].config_dict() if rome_editors else None,
        ft={"layer": layer, "lr": ft_lr, "steps": FTConfig().steps, "ftl_linf": ftl_linf},
        summary=summarise_edits(records), causal_trace=trace, seconds=round(time.perf_counter() - t0, 1))
    write_rome_report(report, out_dir, lm.name, cfg)
    return report
