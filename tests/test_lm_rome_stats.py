"""Intervals over edits, paired tests and seed-claim verdicts on planted numbers whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm_interp.editing.claims import (
    NOT_MEASURED,
    REFUTED,
    REPRODUCED,
    UNDECIDED,
    claims_markdown,
    combine,
    effect_verdict,
    evaluate_claims,
    level_verdict,
    unchanged_verdict,
)
from lm_interp.editing.comparisons import (
    changes_from_unedited,
    compare,
    paired_markdown,
    paired_tests,
)
from lm_interp.editing.evaluation import aggregate, markdown_table
from lm_interp.editing.stats import interval, paired_difference, wilcoxon_p

# ----------------------------------------------------------------------------------- intervals


def test_interval_of_constant_values_is_a_point():
    ci = interval([0.25] * 30)
    assert ci == {"mean": 0.25, "ci_low": 0.25, "ci_high": 0.25, "n": 30}


def test_interval_of_a_balanced_binary_sample_matches_the_normal_approximation():
    values = [0.0] * 200 + [1.0] * 200  # mean 0.5, standard error sqrt(0.25 / 400) = 0.025
    ci = interval(values, n_boot=4000, seed=1)
    assert ci["mean"] == 0.5 and ci["n"] == 400
    assert ci["ci_low"] == pytest.approx(0.5 - 1.96 * 0.025, abs=0.01)
    assert ci["ci_high"] == pytest.approx(0.5 + 1.96 * 0.025, abs=0.01)


def test_interval_drops_nans_and_rejects_bad_input():
    assert interval([1.0, float("nan"), 3.0])["n"] == 2
    assert math.isnan(interval([])["mean"])
    with pytest.raises(ValueError, match="one value per edit"):
        interval(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="level in"):
        interval([1.0], level=1.5)


def test_aggregate_carries_intervals_and_the_table_shows_them():
    per_case = [{"efficacy": {"score": 1.0, "n": 1}}, {"efficacy": {"score": 1.0, "n": 1}}]
    cell = aggregate(per_case)["efficacy"]["score"]
    assert (cell["mean"], cell["ci_low"], cell["ci_high"], cell["n_edits"]) == (1.0, 1.0, 1.0, 2)
    table = markdown_table({"ROME": aggregate(per_case)}, intervals=True)
    assert "| Efficacy: P(new) > P(old) | 1.000 [1.00, 1.00] |" in table


# ---------------------------------------------------------------------------------- paired tests


def test_paired_difference_of_a_constant_shift():
    rng = np.random.default_rng(0)
    b = rng.uniform(size=20)
    t = paired_difference(b + 0.3, b)
    assert t["mean_diff"] == pytest.approx(0.3) and t["n"] == 20 and t["n_nonzero"] == 20
    assert t["ci_low"] == pytest.approx(0.3) and t["ci_high"] == pytest.approx(0.3)
    assert t["wilcoxon_p"] < 1e-3
    assert t["mean_a"] == pytest.approx(b.mean() + 0.3) and t["mean_b"] == pytest.approx(b.mean())
    # 20 distinct positive differences (no ties): the exact two-sided signed-rank p is 2 / 2^20
    distinct = paired_difference(b + 0.3 + 0.01 * np.arange(20), b)
    assert distinct["wilcoxon_p"] == pytest.approx(2 / 2 ** 20)
    assert distinct["mean_diff"] == pytest.approx(0.395)
    assert 0.3 < distinct["ci_low"] < 0.395 < distinct["ci_high"] < 0.5


def test_paired_difference_without_effect():
    same = paired_difference([0.1, 0.5, 0.9], [0.1, 0.5, 0.9])
    assert same["mean_diff"] == 0 and same["wilcoxon_p"] == 1.0 and same["n_nonzero"] == 0
    sym = paired_difference([1.0, 0.0] * 10, [0.0, 1.0] * 10)  # +1 and -1 equally often
    assert sym["mean_diff"] == 0 and sym["ci_low"] < 0 < sym["ci_high"] and sym["wilcoxon_p"] > 0.9


def test_paired_difference_pairs_are_kept_and_nan_pairs_dropped():
    t = paired_difference([1.0, float("nan"), 3.0], [0.0, 5.0, 1.0])
    assert t["n"] == 2 and t["mean_diff"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="same one-dimensional shape"):
        paired_difference([1.0, 2.0], [1.0])
    assert math.isnan(wilcoxon_p([]))


def _record(case_id: str, before: dict, after: dict) -> dict:
    return {"case": {"case_id": case_id}, "metrics_before": before, "metrics_after": after}


def _planted_records(n: int = 12) -> dict[str, list[dict]]:
    """ROME lowers the loud-fact score by 0.4 on every edit, FT by 0.8, FT-L not at all."""
    recs: dict[str, list[dict]] = {"rome": [], "ft": [], "ft-l": []}
    for i in range(n):
        base = {"loud_fact": {"score": 0.9, "p_bad": 0.01}, "efficacy": {"score": 0.0}}
        for name, drop in (("rome", 0.4), ("ft", 0.8), ("ft-l", 0.0)):
            after = {"loud_fact": {"score": 0.9 - drop, "p_bad": 0.01 + drop}, "efficacy": {"score": 1.0}}
            recs[name].append(_record(f"c{i}", base, after))
    recs["ft"].pop()  # a missing edit: comparisons use the edits both editors have
    return recs


def test_comparisons_on_planted_records():
    recs = _planted_records()
    t = compare(recs, "rome", "ft", "loud_fact", "score")
    assert t["n"] == 11 and t["mean_diff"] == pytest.approx(0.4) and t["ci_low"] == pytest.approx(0.4)
    assert t["wilcoxon_p"] < 0.01
    u = compare(recs, "rome", "unedited", "loud_fact", "score")
    assert u["n"] == 12 and u["mean_diff"] == pytest.approx(-0.4)
    tests = paired_tests(recs, [("rome", "ft"), ("rome", "ft-l"), ("rome", "memit")])
    assert {(x["b"], x["group"], x["field"]) for x in tests} >= {("ft-l", "loud_fact", "p_bad")}
    assert all(x["b"] != "memit" for x in tests)
    assert "+0.400 [+0.400, +0.400]" in paired_markdown(tests, {"rome": "ROME"})
    changes = changes_from_unedited(recs)
    assert {x["a"] for x in changes} == {"rome", "ft", "ft-l"} and all(x["n"] > 0 for x in changes)
    with pytest.raises(ValueError, match="no records of editor 'memit'"):
        compare(recs, "memit", "rome", "loud_fact", "score")


# -------------------------------------------------------------------------------------- verdicts

def _ci(lo: float, hi: float, n: int = 40) -> dict:
    return {"mean": (lo + hi) / 2, "mean_diff": (lo + hi) / 2, "ci_low": lo, "ci_high": hi, "n": n, "n_edits": n}


def test_verdict_rules():
    assert level_verdict(_ci(0.0, 0.1), below=True) == REPRODUCED
    assert level_verdict(_ci(0.7, 0.9), below=True) == REFUTED
    assert level_verdict(_ci(0.3, 0.7), below=True) == UNDECIDED
    assert level_verdict(None, below=True) == NOT_MEASURED
    assert effect_verdict(_ci(-0.4, -0.1), decrease=True) == REPRODUCED
    assert effect_verdict(_ci(-0.02, 0.03), decrease=True) == REFUTED  # no drop of 0.05 or more
    assert effect_verdict(_ci(-0.3, 0.01), decrease=True) == UNDECIDED
    assert effect_verdict(_ci(0.1, 0.3), decrease=False) == REPRODUCED
    assert unchanged_verdict(_ci(-0.03, 0.02)) == REPRODUCED and unchanged_verdict(_ci(-0.3, -0.1)) == REFUTED
    assert combine([REPRODUCED, REPRODUCED]) == REPRODUCED and combine([REPRODUCED, REFUTED]) == REFUTED
    assert combine([REPRODUCED, UNDECIDED]) == UNDECIDED


def test_claims_on_planted_numbers():
    summary = {"rome": {"implication_symmetric": {"score": _ci(0.0, 0.05)},
                        "implication_transitive": {"score": _ci(0.7, 0.9)}},
               "ft": {"implication_transitive": {"score": _ci(0.8, 0.95)}},
               "ft-l": {"efficacy": {"score": _ci(0.0, 0.0)}}}
    def change(a, g, lo, hi):
        return {"a": a, "b": "unedited", "group": g, "field": "score", **_ci(lo, hi)}
    changes = [change("rome", "implication_symmetric", 0, 0), change("rome", "implication_transitive", 0.6, 0.8),
               change("rome", "loud_fact", -0.4, -0.2), change("rome", "neighbourhood", -0.02, 0.01),
               change("rome", "nplus", -0.2, -0.1), change("ft", "loud_fact", -0.5, -0.3)]
    paired = [{"a": "rome", "b": "ft-l", "group": "nplus", "field": "score", **_ci(-0.2, -0.1)}]
    verdicts = {c["id"]: c["verdict"] for c in evaluate_claims(summary, changes, paired)}
    assert verdicts == {"symmetric": REPRODUCED, "transitive": REFUTED, "loud_facts": REPRODUCED,
                        "nplus_invisible": REPRODUCED, "rome_worse_than_ftl_nplus": REPRODUCED,
                        "ft_transitive_loud": REPRODUCED, "ft_unspecific": NOT_MEASURED}
    text = claims_markdown(evaluate_claims(summary, changes, paired))
    assert "**refuted at 95%**: ROME does not respect transitive implications" in text
    assert "transitive implication respected (ROME): 0.80 [0.70, 0.90] (40 edits)" in text
    assert text.startswith("Seed claims: 5 reproduced, 1 refuted, 1 not measured.")
