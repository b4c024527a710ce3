"""Paired comparisons on the same edits: editor against editor, and editor against the unedited model.

Per-edit values come from the edit records (``metrics_after`` of an editor, ``metrics_before``
for ``unedited``), matched by case id; `lm_interp.editing.stats.paired_difference` gives the
mean difference, its paired bootstrap interval and the Wilcoxon signed-rank p-value.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lm_interp.editing.stats import N_BOOT, paired_difference

# the hazards ROME is compared with the fine-tuning baselines on (group, field, label)
PAIRED_METRICS: tuple[tuple[str, str, str], ...] = (
    ("loud_fact", "score", "Loud fact: P(own) > P(new)"),
    ("loud_fact", "p_bad", "Loud fact: mean P(new)"),
    ("nplus", "score", "Specificity+: P(own) > P(new)"),
    ("nplus", "p_bad", "Specificity+: mean P(new)"),
    ("neighbourhood", "score", "NS: P(own) > P(new)"),
)
# the metrics whose change from the unedited model is reported for every editor
CHANGE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("efficacy", "score", "Efficacy"),
    ("paraphrase", "score", "Paraphrase"),
    ("neighbourhood", "score", "NS"),
    ("nplus", "score", "Specificity+"),
    ("loud_fact", "score", "Loud fact"),
    ("implication_symmetric", "score", "Symmetric implication"),
    ("implication_transitive", "score", "Transitive implication"),
)
UNEDITED = "unedited"


def per_edit(records: dict[str, list[dict]], editor: str, group: str, field: str) -> dict[str, float]:
    """``{case_id: value}`` of one metric for `editor` (``unedited``: the first editor's pre-edit metrics).

    Edits without the group (e.g. no implication of that kind) are left out.
    """
    if editor == UNEDITED:
        recs, key = next((r for r in records.values() if r), []), "metrics_before"
    elif editor in records:
        recs, key = records[editor], "metrics_after"
    else:
        raise ValueError(f"no records of editor {editor!r}; editors: {sorted(records)}")
    out = {}
    for r in recs:
        value = r[key].get(group, {}).get(field)
        if value is not None and not np.isnan(value):
            out[r["case"]["case_id"]] = float(value)
    return out


def compare(records: dict[str, list[dict]], a: str, b: str, group: str, field: str, n_boot: int = N_BOOT,
            seed: int = 0) -> dict:
    """`paired_difference` of `a` − `b` on one metric over the edits both have, with its labels."""
    va, vb = per_edit(records, a, group, field), per_edit(records, b, group, field)
    ids = [c for c in va if c in vb]
    test = paired_difference([va[c] for c in ids], [vb[c] for c in ids], n_boot=n_boot, seed=seed)
    return {"a": a, "b": b, "group": group, "field": field, **test}


def paired_tests(records: dict[str, list[dict]], pairs: Sequence[tuple[str, str]],
                 metrics: Sequence[tuple[str, str, str]] = PAIRED_METRICS, n_boot: int = N_BOOT,
                 seed: int = 0) -> list[dict]:
    """`compare` for every pair whose editors were run and every metric (in that order)."""
    have = set(records) | {UNEDITED}
    return [compare(records, a, b, g, f, n_boot, seed) | {"label": label}
            for a, b in pairs if a in have and b in have for g, f, label in metrics]


def changes_from_unedited(records: dict[str, list[dict]], n_boot: int = N_BOOT, seed: int = 0) -> list[dict]:
    """Every editor against the unedited model on `CHANGE_METRICS` (metrics an editor lacks are skipped)."""
    out = paired_tests(records, [(e, UNEDITED) for e in records], CHANGE_METRICS, n_boot, seed)
    return [t for t in out if t["n"] > 0]


def find_test(tests: Sequence[dict], a: str, b: str, group: str, field: str = "score") -> dict | None:
    """The test of `a` − `b` on (group, field) in `tests`, or None."""
    return next((t for t in tests if (t["a"], t["b"], t["group"], t["field"]) == (a, b, group, field)), None)


def _p(p: float) -> str:
    return "-" if np.isnan(p) else (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}")


def paired_markdown(tests: Sequence[dict], labels: dict[str, str]) -> str:
    """Table of `paired_tests`: both means, the difference with its interval, the Wilcoxon p-value, n."""
    lines = ["| metric | A | B | mean A | mean B | A − B [95% CI] | Wilcoxon p | edits (non-zero diff.) |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tests:
        lines.append(f"| {t.get('label', t['group'] + ' ' + t['field'])} | {labels.get(t['a'], t['a'])} | "
                     f"{labels.get(t['b'], t['b'])} | {t['mean_a']:.3f} | {t['mean_b']:.3f} | "
                     f"{t['mean_diff']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}] | {_p(t['wilcoxon_p'])} | "
                     f"{t['n']} ({t['n_nonzero']}) |")
    return "\n".join(lines)


def changes_markdown(tests: Sequence[dict], labels: dict[str, str]) -> str:
    """Editor − unedited per metric (rows) and editor (columns), each with its paired interval."""
    editors = list(dict.fromkeys(t["a"] for t in tests))
    lines = ["| change from unedited (score) | " + " | ".join(labels.get(e, e) for e in editors) + " |",
             "|---|" + "---|" * len(editors)]
    for g, f, label in CHANGE_METRICS:
        cells = []
        for e in editors:
            t = find_test(tests, e, UNEDITED, g, f)
            cells.append("-" if t is None else f"{t['mean_diff']:+.2f} [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}]")
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
