"""Evaluating model edits: CounterFact(+)-style scores per edit, aggregates, and the Markdown table.

Per probe group (see `EditCase.probes`) and per edit: ``score`` = fraction of prompts where
P(good) > P(bad) (probabilities are exp of the mean per-token log-probability, as in
CounterFact), ``magnitude`` = mean P(good) − P(bad), and the mean probability of the new
object where it is a candidate. NKL = KL(P_edited ‖ P_unedited) of the next-token
distribution after each neighbourhood prompt, in nats (not divided by the vocabulary size).
Aggregates average the per-edit values over edits, with a 95 % percentile-bootstrap interval
over edits (the edit is the unit: `lm_interp.editing.stats`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from lm_interp.editing.cases import EditCase
from lm_interp.editing.stats import N_BOOT, interval
from lm_interp.editing.weights import score_targets

# group -> (what "good beats bad" means, the candidate that is the new object)
GROUP_MEANING = {
    "efficacy": ("new object beats old", "good"),
    "paraphrase": ("new object beats old", "good"),
    "neighbourhood": ("own object beats new (NS)", "bad"),
    "nplus": ("own object beats new with the edit statement prepended (Specificity+)", "bad"),
    "loud_fact": ("own object beats new with a sentence about the subject prepended", "bad"),
    "implication_symmetric": ("implied object beats the pre-edit one", None),
    "implication_transitive": ("implied object beats the pre-edit one", None),
}
KL_GROUPS = ("neighbourhood", "nplus", "loud_fact")


def pair_metrics(p_good: Sequence[float], p_bad: Sequence[float]) -> dict[str, float]:
    """Score (fraction good > bad), magnitude (mean good − bad) and mean probabilities of one group."""
    g, b = np.asarray(p_good, dtype=float), np.asarray(p_bad, dtype=float)
    if g.shape != b.shape:
        raise ValueError(f"{g.shape} good vs {b.shape} bad probabilities")
    if g.size == 0:
        return {"n": 0, "score": float("nan"), "magnitude": float("nan"), "p_good": float("nan"),
                "p_bad": float("nan")}
    return {"n": int(g.size), "score": float((g > b).mean()), "magnitude": float((g - b).mean()),
            "p_good": float(g.mean()), "p_bad": float(b.mean())}


def kl_nats(logp_edited: torch.Tensor, logp_unedited: torch.Tensor) -> torch.Tensor:
    """Row-wise KL(P_edited ‖ P_unedited) in nats from log-probabilities ``[n, vocab]``."""
    return (logp_edited.exp() * (logp_edited - logp_unedited)).sum(-1)


def run_probes(lm, case: EditCase) -> dict:
    """Probabilities of every probe of `case` under the model as it is now.

    Returns ``{group: {"p_good": [...], "p_bad": [...]}}`` plus ``"_first_logprobs"``:
    ``{group: tensor [n, vocab]}`` for the KL groups (not JSON; dropped by `case_record`).
    """
    groups = case.probes()
    flat = [(g, p) for g, ps in groups.items() for p in ps]
    scores = score_targets(lm, [p.prompt for _, p in flat], [(p.good, p.bad) for _, p in flat])
    out: dict = {g: {"p_good": [], "p_bad": []} for g in groups}
    firsts: dict[str, list[torch.Tensor]] = {g: [] for g in KL_GROUPS if g in groups}
    for i, (g, _) in enumerate(flat):
        out[g]["p_good"].append(float(scores.prob[i, 0]))
        out[g]["p_bad"].append(float(scores.prob[i, 1]))
        if g in firsts:
            firsts[g].append(scores.first_logprobs[i])
    out["_first_logprobs"] = {g: torch.stack(v) for g, v in firsts.items() if v}
    return out


def case_metrics(before: dict, after: dict | None = None) -> dict:
    """Per-group `pair_metrics` of `after` (or of `before` for the unedited model), plus NKL per KL group."""
    probs = after if after is not None else before
    out = {g: pair_metrics(v["p_good"], v["p_bad"]) for g, v in probs.items() if not g.startswith("_")}
    for g in KL_GROUPS:
        if g in out:
            if after is None:
                out[g]["nkl"] = 0.0
            else:
                out[g]["nkl"] = float(kl_nats(after["_first_logprobs"][g], before["_first_logprobs"][g]).mean())
    return out


def strip(probs: dict) -> dict:
    """The JSON-serialisable part of `run_probes`' output."""
    return {g: v for g, v in probs.items() if not g.startswith("_")}


# ----------------------------------------------------------------------------------- aggregation

METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("efficacy", "score", "Efficacy: P(new) > P(old)"),
    ("efficacy", "p_good", "Efficacy: mean P(new)"),
    ("paraphrase", "score", "Paraphrase: P(new) > P(old)"),
    ("paraphrase", "p_good", "Paraphrase: mean P(new)"),
    ("neighbourhood", "score", "Neighbourhood specificity NS: P(own) > P(new)"),
    ("neighbourhood", "p_bad", "Neighbourhood: mean P(new)"),
    ("neighbourhood", "nkl", "Neighbourhood KL (nats)"),
    ("nplus", "score", "Specificity+ (N+): P(own) > P(new)"),
    ("nplus", "p_bad", "N+: mean P(new)"),
    ("nplus", "nkl", "N+ KL (nats)"),
    ("loud_fact", "score", "Loud fact: P(own) > P(new)"),
    ("loud_fact", "p_bad", "Loud fact: mean P(new)"),
    ("loud_fact", "nkl", "Loud fact KL (nats)"),
    ("implication_symmetric", "score", "Symmetric implication respected: P(implied) > P(old)"),
    ("implication_symmetric", "p_good", "Symmetric implication: mean P(implied)"),
    ("implication_transitive", "score", "Transitive implication respected: P(implied) > P(old)"),
    ("implication_transitive", "p_good", "Transitive implication: mean P(implied)"),
)


def aggregate(per_case: Iterable[dict], n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Mean over edits of every (group, field) of `case_metrics` outputs, with its standard error and
    95 % percentile-bootstrap interval over edits (`lm_interp.editing.stats.interval`)."""
    values: dict[tuple[str, str], list[float]] = {}
    n = 0
    for metrics in per_case:
        n += 1
        for g, fields in metrics.items():
            for f, v in fields.items():
                if f != "n" and not np.isnan(v):
                    values.setdefault((g, f), []).append(float(v))
    out: dict = {"n_edits": n}
    for (g, f), vs in sorted(values.items()):
        arr = np.asarray(vs)
        ci = interval(arr, n_boot=n_boot, seed=seed)
        out.setdefault(g, {})[f] = {"mean": float(arr.mean()),
                                    "sem": float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else 0.0,
                                    "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "n_edits": len(arr)}
    return out


def format_cell(cell: dict | None, kl: bool = False, intervals: bool = False) -> str:
    """``0.850`` (``0.0268`` for KL), with ``[low, high]`` appended when `intervals` and the cell has them."""
    if cell is None:
        return "-"
    fmt = "{:.3g}" if kl else "{:.3f}"
    text = fmt.format(cell["mean"])
    if intervals and "ci_low" in cell:
        lo_hi = "{:.2g}" if kl else "{:.2f}"
        text += f" [{lo_hi.format(cell['ci_low'])}, {lo_hi.format(cell['ci_high'])}]"
    return text


def markdown_table(columns: dict[str, dict], extra_rows: dict[str, dict[str, str]] | None = None,
                   intervals: bool = False) -> str:
    """One row per metric, one column per editor (``{"unedited": aggregate, "ROME": aggregate, ...}``);
    with `intervals`, every cell also shows its 95 % bootstrap interval over edits."""
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for g, f, label in METRIC_ROWS:
        cells = [format_cell(columns[name].get(g, {}).get(f), f == "nkl", intervals) for name in names]
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, row in (extra_rows or {}).items():
        lines.append(f"| {label} | " + " | ".join(row.get(n, "-") for n in names) + " |")
    lines.append("| edits | " + " | ".join(str(columns[n].get("n_edits", 0)) for n in names) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- the runner

def evaluate_edit(lm, case: EditCase, editor, before: dict | None = None) -> dict:
    """Apply ``editor(lm, case.request)``, probe, restore; the JSON record of one edit.

    :param editor: a callable returning a `WeightEdit` (e.g. ``ROMEEditor(...).edit`` wrapped).
    :param before: `run_probes` of the unedited model (computed if None).
    """
    before = before if before is not None else run_probes(lm, case)
    edit = editor(lm, case.request)
    try:
        after = run_probes(lm, case)
    finally:
        edit.restore()
    return {"case": case.to_dict(), "edit": edit.info, "before": strip(before), "after": strip(after),
            "metrics_before": case_metrics(before), "metrics_after": case_metrics(before, after)}


def summarise_edits(records: dict[str, list[dict]], n_boot: int = N_BOOT, seed: int = 0) -> dict[str, dict]:
    """Aggregates per column: ``unedited`` (from the first editor's records) and every editor."""
    cols: dict[str, dict] = {}
    first = next((r for r in records.values() if r), [])
    cols["unedited"] = aggregate((r["metrics_before"] for r in first), n_boot, seed)
    for name, recs in records.items():
        agg = aggregate((r["metrics_after"] for r in recs), n_boot, seed)
        for key in ("relative_fro", "delta_fro", "delta_max_abs", "seconds"):
            vals = [r["edit"][key] for r in recs if key in r["edit"]]
            if vals:
                agg.setdefault("edit", {})[key] = {"mean": float(np.mean(vals)), "max": float(np.max(vals))}
        cols[name] = agg
    return cols
