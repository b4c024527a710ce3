"""The ROME hazards experiment on one model, from options to its result folder (`scripts/lm_rome.py`).

Per-model hyperparameters (`MODEL_DEFAULTS`), the editor factory (`make_editors`) and the
settings that key each edit record (`editor_settings`), the resumable single-edit loop
(`run_suite`, with a progress bar; a record is reused only if its case and settings match) and
`run_rome`, which picks the cases, runs every editor, adds intervals, paired tests and the
seed-claim verdicts, traces a few facts, measures the cost and writes the folder through
`lm_interp.editing.report` (the module that owns it).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

from lm_interp.editing.cases import (
    EditCase,
    interleave_relations,
    keep_known,
    tiny_cases,
)
from lm_interp.editing.claims import evaluate_claims
from lm_interp.editing.comparisons import changes_from_unedited, paired_tests
from lm_interp.editing.evaluation import evaluate_edit, run_probes, summarise_edits
from lm_interp.editing.finetune import FTConfig, finetune_edit
from lm_interp.editing.real_cases import real_cases
from lm_interp.editing.report import (
    RomeReport,
    prune_edit_records,
    read_edit_record,
    record_key,
    write_edit_record,
    write_rome_report,
)
from lm_interp.editing.rome import ROMEConfig, ROMEEditor
from lm_interp.editing.stats import LEVEL, N_BOOT
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


def editor_settings(lm, chosen: Sequence[str], cfg: ROMEConfig, ft_lr: float, ftl_linf: float) -> dict[str, dict]:
    """Per editor, everything its edits depend on besides the case (model, configuration): the record key."""
    model = {"model": lm.spec, "name": lm.name}
    out = {}
    for name in chosen:
        if name in ("rome", "rome-legacy"):
            out[name] = {**model, "rome": asdict(replace(cfg, key_mode="legacy") if name == "rome-legacy" else cfg)}
        else:
            ft = FTConfig(layer=cfg.layer, lr=ft_lr, linf=ftl_linf if name == "ft-l" else None)
            out[name] = {**model, "ft": asdict(ft)}
    return out


def run_suite(lm, cases: Sequence[EditCase], editors: dict, out_dir, progress: bool = True,
              settings: dict[str, dict] | None = None) -> tuple[dict[str, list[dict]], Counter]:
    """Every editor on every case (single-edit setting, restored after each), resumable per edit.

    Records are written as each edit finishes (`lm_interp.editing.report.write_edit_record`) with
    their key (`record_key` of the case and ``settings[editor]``) and ``wall_seconds`` (probes
    included; the unedited probes count towards the first editor computed on a case); existing
    records with the same key are read instead of recomputed.

    :returns: ``{editor: [record, ...]}`` in case order, and counts of ``computed`` / ``resumed`` records.
    """
    records: dict[str, list[dict]] = {name: [] for name in editors}
    counts: Counter = Counter(computed=0, resumed=0)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cases), desc="edits", unit="case")
    for case in cases:
        before = None
        for name, editor in editors.items():
            key = record_key(case.to_dict(), (settings or {}).get(name, {}))
            rec = read_edit_record(out_dir, name, case.case_id, key)
            if rec is None:
                t0 = time.perf_counter()
                before = before if before is not None else run_probes(lm, case)
                rec = evaluate_edit(lm, case, editor, before)
                rec["key"], rec["wall_seconds"] = key, round(time.perf_counter() - t0, 2)
                write_edit_record(rec, out_dir, name, case.case_id)
                counts["computed"] += 1
            else:
                counts["resumed"] += 1
            records[name].append(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(computed=counts["computed"], resumed=counts["resumed"])
    if bar is not None:
        bar.close()
    return records, counts


def run_cost(records: dict[str, list[dict]], counts: Counter, setup_seconds: float, invocation_seconds: float
             ) -> dict:
    """The wall-clock cost: per-edit seconds summed over every record (earlier, resumed invocations included)."""
    import torch

    per_editor = {name: [r.get("wall_seconds", float("nan")) for r in recs] for name, recs in records.items()}
    total = sum(sum(v) for v in per_editor.values())
    return {"experiment_seconds": round(total, 1),
            "per_edit_seconds": {k: {"mean": round(sum(v) / max(len(v), 1), 2), "total": round(sum(v), 1)}
                                 for k, v in per_editor.items()},
            "setup_seconds": round(setup_seconds, 1), "invocation_seconds": round(invocation_seconds, 1),
            "edits_computed": counts["computed"], "edits_resumed": counts["resumed"],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "machine": f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch thread(s); wall-clock times, "
                       "so other jobs on the machine slow them (see the load average)"}


def run_rome(model: str, out_dir: str | Path, editors: str = "rome,ft,ft-l", n_edits: int = 24,
             layer: int | None = None, covariance: str = "corpus", cov_corpus: str | None = None,
             cov_n_texts: int | None = None, v_steps: int = 20, trace_cases: int = 3, seed: int = 0,
             command: str = "", progress: bool = True) -> RomeReport:
    """Single edits by every chosen editor on `model`, their hazards, a causal trace; writes `out_dir`.

    :param model: ``tiny`` (edits from the synthetic world), ``smollm2`` or a folder (real facts,
        kept only if the unedited model predicts them).
    :param layer: ... :param cov_corpus: ... :param cov_n_texts: None: the model's default (`MODEL_DEFAULTS`;
        tiny: generated corpus, 500 texts; otherwise model samples, 64 texts).
    :param seed: cases, prefixes, covariance text, noise and the bootstrap.
    :param command: the command line, recorded in summary.json and table.md.
    Edit records of an earlier run in `out_dir` are reused when their case and settings match;
    records of cases outside this run are removed when it finishes.
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
    t_suite = time.perf_counter()
    records, counts = run_suite(lm, cases, editor_fns, out_dir, progress,
                                editor_settings(lm, chosen, cfg, ft_lr, ftl_linf))
    suite_seconds = time.perf_counter() - t_suite
    for name in chosen:
        prune_edit_records(out_dir, name, {c.case_id for c in cases})
    trace = causal_trace_cases(lm, cases[:trace_cases], seed=seed) if trace_cases > 0 else None
    summary = summarise_edits(records, N_BOOT, seed)
    pairs = [("rome", other) for other in ("ft", "ft-l")]
    paired = paired_tests(records, pairs, n_boot=N_BOOT, seed=seed)
    changes = changes_from_unedited(records, n_boot=N_BOOT, seed=seed)
    invocation = time.perf_counter() - t0
    report = RomeReport(
        model=lm.spec, description=lm.description, setting="single edits, each restored before the next",
        editors=chosen, n_candidates=len(candidates), n_known=len(kept), n_edits=len(cases),
        known_check="top-1 next token of the unedited model = first token of the true object",
        candidates=known_record, rome_config=rome_editors[0].config_dict() if rome_editors else None,
        ft={"layer": layer, "lr": ft_lr, "steps": FTConfig().steps, "ftl_linf": ftl_linf},
        summary=summary, causal_trace=trace, seconds=round(invocation, 1), paired=paired, changes=changes,
        claims=evaluate_claims(summary, changes, paired),
        intervals={"method": "percentile bootstrap over edits", "level": LEVEL, "n_boot": N_BOOT, "seed": seed,
                   "paired_test": "two-sided Wilcoxon signed-rank (scipy.stats.wilcoxon, zero differences dropped)"},
        cost=run_cost(records, counts, invocation - suite_seconds, invocation), command=command,
        relations=dict(Counter(c.relation for c in cases)))
    write_rome_report(report, out_dir, lm.name, cfg)
    return report
