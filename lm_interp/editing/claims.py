"""The research notes' ROME claims ("seed claims") judged against a run's numbers, with their intervals.

Every claim is stated as a direction on a measured quantity and judged at 95 % from the
bootstrap intervals over edits (`lm_interp.editing.stats`):

* a **level** claim ("ROME does not respect transitive implications") compares the fraction of
  implication prompts respected with `THRESHOLD` (0.5: respected for most prompts): reproduced
  when the whole interval is on the claimed side, refuted when it is on the other side;
* an **effect** claim ("loud facts": the loud-fact score drops from the unedited model; "ROME is
  worse than FT-L on Specificity+") uses the paired interval of the difference: reproduced when
  it excludes 0 in the claimed direction, refuted when it excludes an effect of `MARGIN` (0.05) or
  more in that direction (an equivalence margin: "no drop of 0.05 or more"); an **unchanged**
  claim is reproduced when the interval lies within ±`MARGIN`;
* a claim of several parts is reproduced when every part is, refuted when any part is.

Anything else is *undecided*; a claim whose editor or probe was not run is *not measured*.
"""

from __future__ import annotations

from typing import Callable, Sequence

from lm_interp.editing.comparisons import UNEDITED, find_test

THRESHOLD = 0.5
MARGIN = 0.05
REPRODUCED, REFUTED, UNDECIDED, NOT_MEASURED = "reproduced", "refuted", "undecided", "not measured"


def fmt_interval(cell: dict, signed: bool = False) -> str:
    """``0.82 [0.70, 0.92]`` (``+0.12 [+0.03, +0.20]`` with `signed`) from a mean / ci_low / ci_high dict."""
    mean = cell.get("mean", cell.get("mean_diff"))
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(mean)} [{f.format(cell['ci_low'])}, {f.format(cell['ci_high'])}]"


def level_verdict(cell: dict | None, below: bool, threshold: float = THRESHOLD) -> str:
    """Is the mean's interval below (`below`) or above `threshold`? (see the module docstring)."""
    if cell is None or not cell.get("n_edits", cell.get("n", 0)):
        return NOT_MEASURED
    lo, hi = cell["ci_low"], cell["ci_high"]
    if (hi < threshold) if below else (lo > threshold):
        return REPRODUCED
    if (lo > threshold) if below else (hi < threshold):
        return REFUTED
    return UNDECIDED


def effect_verdict(test: dict | None, decrease: bool, margin: float = MARGIN) -> str:
    """Does the paired difference's interval show a decrease (`decrease`) or an increase? (module docstring)."""
    if test is None or not test.get("n"):
        return NOT_MEASURED
    lo, hi = test["ci_low"], test["ci_high"]
    if (hi < 0) if decrease else (lo > 0):
        return REPRODUCED
    if (lo > -margin) if decrease else (hi < margin):
        return REFUTED
    return UNDECIDED


def unchanged_verdict(test: dict | None, margin: float = MARGIN) -> str:
    """Is the paired difference within ±`margin` (reproduced) or clearly outside it (refuted)?"""
    if test is None or not test.get("n"):
        return NOT_MEASURED
    lo, hi = test["ci_low"], test["ci_high"]
    if -margin < lo and hi < margin:
        return REPRODUCED
    if hi < -margin or lo > margin:
        return REFUTED
    return UNDECIDED


def combine(verdicts: Sequence[str]) -> str:
    """All parts reproduced -> reproduced; any refuted -> refuted; any not measured -> not measured; else undecided."""
    if any(v == REFUTED for v in verdicts):
        return REFUTED
    if any(v == NOT_MEASURED for v in verdicts):
        return NOT_MEASURED
    return REPRODUCED if all(v == REPRODUCED for v in verdicts) else UNDECIDED


def _level(summary: dict, editor: str, group: str, field: str = "score") -> dict | None:
    return summary.get(editor, {}).get(group, {}).get(field)


def _text(what: str, cell: dict | None, signed: bool = False) -> str:
    if cell is None or not cell.get("n_edits", cell.get("n", 0)):
        return f"{what}: not measured"
    return f"{what}: {fmt_interval(cell, signed)} ({cell.get('n_edits', cell.get('n'))} edits)"


def evaluate_claims(summary: dict, changes: Sequence[dict], paired: Sequence[dict], margin: float = MARGIN,
                    threshold: float = THRESHOLD) -> list[dict]:
    """Each seed claim with its verdict and the numbers it rests on.

    :param summary: `summarise_edits` columns (``unedited``, ``rome``, ``ft``, ``ft-l``, ...).
    :param changes: `changes_from_unedited`; :param paired: `paired_tests` (ROME against FT and FT-L).
    :returns: dicts ``id``, ``claim``, ``source``, ``verdict``, ``evidence`` (text with intervals).
    """
    def change(editor: str, group: str) -> dict | None:
        return find_test(changes, editor, UNEDITED, group)

    def implication(kind: str) -> tuple[str, str]:
        cell = _level(summary, "rome", f"implication_{kind}")
        return (level_verdict(cell, below=True, threshold=threshold),
                _text(f"{kind} implication respected (ROME)", cell) + "; "
                + _text("change from unedited", change("rome", f"implication_{kind}"), True))

    def loud() -> tuple[str, str]:
        t = change("rome", "loud_fact")
        return effect_verdict(t, True, margin), _text("loud-fact score, ROME − unedited", t, True)

    def nplus_invisible() -> tuple[str, str]:
        ns, npl = change("rome", "neighbourhood"), change("rome", "nplus")
        return (combine([unchanged_verdict(ns, margin), effect_verdict(npl, True, margin)]),
                _text("NS, ROME − unedited", ns, True) + "; " + _text("Specificity+, ROME − unedited", npl, True))

    def rome_vs_ftl() -> tuple[str, str]:
        t = find_test(paired, "rome", "ft-l", "nplus")
        return (effect_verdict(t, True, margin), _text("Specificity+, ROME − FT-L", t, True) + "; "
                + _text("FT-L efficacy", _level(summary, "ft-l", "efficacy")))

    def ft_transitive_loud() -> tuple[str, str]:
        cell, t = _level(summary, "ft", "implication_transitive"), change("ft", "loud_fact")
        return (combine([level_verdict(cell, below=False, threshold=threshold), effect_verdict(t, True, margin)]),
                _text("transitive implication respected (FT)", cell) + "; " + _text("loud-fact score, FT − unedited",
                                                                                  t, True))

    def ft_unspecific() -> tuple[str, str]:
        t = find_test(paired, "rome", "ft", "neighbourhood")
        return effect_verdict(t, False, margin), _text("NS, ROME − FT", t, True)

    claims: list[tuple[str, str, str, Callable[[], tuple[str, str]]]] = [
        ("symmetric", "ROME does not respect symmetric implications (an edit s -> o does not give o -> s)",
         "hackathon, research notes §4", lambda: implication("symmetric")),
        ("transitive", "ROME does not respect transitive implications (a landmark moved to a city keeps its old "
         "country)", "hackathon, research notes §4 and §9.2", lambda: implication("transitive")),
        ("loud_facts", "ROME shows loud facts: mentioning the edited subject makes unrelated prompts give the new "
         "object", "hackathon, research notes §4 and §9.2", loud),
        ("nplus_invisible", "ROME's Specificity+ failure is invisible to standard NS (NS unchanged, N+ drops)",
         "CounterFact+, research notes §4 and §9.2", nplus_invisible),
        ("rome_worse_than_ftl_nplus", "ROME lowers Specificity+ more than FT-L does", "CounterFact+ table, research "
         "notes §4", rome_vs_ftl),
        ("ft_transitive_loud", "FT appears to respect transitive implications but also shows loud facts",
         "hackathon, research notes §4", ft_transitive_loud),
        ("ft_unspecific", "FT is less specific than ROME (NS)",
         "ROME paper Table 4 (recalled), research notes §2.3-2.4", ft_unspecific),
    ]
    out = []
    for cid, text, source, judge in claims:
        verdict, evidence = judge()
        out.append({"id": cid, "claim": text, "source": source, "verdict": verdict, "evidence": evidence})
    return out


def claims_markdown(claims: Sequence[dict], margin: float = MARGIN, threshold: float = THRESHOLD) -> str:
    """The generated statement of which seed claims reproduce (one bullet per claim) and the rule used."""
    lines = [f"- **{c['verdict']}{' at 95%' if c['verdict'] in (REPRODUCED, REFUTED) else ''}**: {c['claim']} "
             f"({c['source']}). {c['evidence']}." for c in claims]
    counts = {v: sum(c["verdict"] == v for c in claims) for v in (REPRODUCED, REFUTED, UNDECIDED, NOT_MEASURED)}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    rule = (f"Rule: a level claim is judged on the 95% interval of the fraction respected against {threshold}; an "
            f"effect claim on the paired 95% interval of the difference (reproduced when it excludes 0 in the claimed "
            f"direction, refuted when it excludes an effect of {margin} or more); 'unchanged' means within ±{margin}.")
    return f"Seed claims: {summary}.\n\n" + "\n".join(lines) + f"\n\n{rule}"
