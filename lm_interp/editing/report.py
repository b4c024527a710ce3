"""The ROME result folder: the one module that writes and reads it.

``summary.json`` (`RomeReport`), ``table.md`` (generated from it: metrics with 95 % bootstrap
intervals over edits, paired tests, changes from the unedited model, the seed-claim verdicts and
the cost), ``edits/<editor>/<case>.json`` (one record per single edit, written as it finishes so
a killed run resumes; a record carries the key of its case and settings, `record_key`, and is
redone when they differ), ``causal_trace.png`` and ``probabilities.png``. Older folders (without
intervals, tests or cost) read back with those fields empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np

from common.atomic import atomic_save_figure, atomic_write_json, atomic_write_text
from lm_interp.editing.claims import claims_markdown
from lm_interp.editing.comparisons import changes_markdown, paired_markdown
from lm_interp.editing.evaluation import markdown_table
from lm_interp.editing.rome import ROMEConfig
from lm_interp.machinery.tracing import plot_trace

log = logging.getLogger(__name__)

RECORD_VERSION = 2  # bump when a record's content changes meaning: old records are then redone
EDITOR_LABELS = {"unedited": "unedited", "rome": "ROME", "rome-legacy": "ROME (legacy keys)", "ft": "FT",
                 "ft-l": "FT-L"}


@dataclass
class RomeReport:
    """``summary.json``: one run of single edits on one model.

    :param candidates: per candidate fact, whether the unedited model knows it (`keep_known`).
    :param rome_config: the first ROME editor's `config_dict` (None without a ROME editor).
    :param ft: the fine-tuning baselines' layer, learning rate, steps and FT-L bound.
    :param summary: per column (``unedited`` and every editor) the `summarise_edits` aggregates.
    :param causal_trace: `causal_trace_cases`' output (None when skipped).
    :param seconds: wall seconds of the invocation that wrote the report (a resumed run: only its part).
    :param paired: `paired_tests` of ROME against FT and FT-L; :param changes: `changes_from_unedited`.
    :param claims: `evaluate_claims`; :param intervals: how intervals were computed.
    :param cost: wall seconds of the whole experiment, summed over every edit record (resumes included),
        and of this invocation; :param command: the command line that wrote the folder.
    :param relations: edits per relation (``city``, ``antonym``, ...).
    """

    model: str
    description: str
    setting: str
    editors: list[str]
    n_candidates: int
    n_known: int
    n_edits: int
    known_check: str
    candidates: list[dict]
    rome_config: dict | None
    ft: dict
    summary: dict[str, dict]
    causal_trace: dict | None
    seconds: float
    paired: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)
    intervals: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    command: str = ""
    relations: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The ``summary.json`` dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> RomeReport:
        """Rebuild a report from its ``summary.json`` dict (fields added later may be missing)."""
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data or f.name in required})


def edits_by_kind(report: RomeReport) -> str:
    """``"37 city, 34 antonym, 1 spouse; 37 transitive- and 35 symmetric-implication cases"``."""
    rel = ", ".join(f"{n} {r}" for r, n in report.relations.items())
    unedited = report.summary.get("unedited", {})
    kinds = [f"{unedited[g]['score']['n_edits']} {k}" for k, g in (("transitive", "implication_transitive"),
                                                                   ("symmetric", "implication_symmetric"))
             if g in unedited]
    return "; ".join(x for x in (rel, " and ".join(kinds) + "-implication cases" if kinds else "") if x)


def cost_markdown(cost: dict) -> str:
    """One paragraph on the wall-clock cost (`run_cost`)."""
    if not cost:
        return "Cost not recorded (older run)."
    per = ", ".join(f"{EDITOR_LABELS.get(k, k)} {v['mean']:.1f} s" for k, v in cost["per_edit_seconds"].items())
    return (f"Wall time of the experiment: {cost['experiment_seconds']:.0f} s summed over every edit record "
            f"(per edit, probes included: {per}) plus {cost['setup_seconds']:.0f} s of loading, ROME preparation "
            f"and causal tracing in the last invocation; the last invocation took {cost['invocation_seconds']:.0f} s "
            f"and computed {cost['edits_computed']} edit records ({cost['edits_resumed']} were read back). "
            f"{cost['machine']}; load average at the end {cost.get('load_average_at_end', '-')}.")


def table_markdown(report: RomeReport, name: str, cfg: ROMEConfig) -> str:
    """``table.md``: header, metric table with intervals, paired tests, changes, seed claims, cost."""
    boot = report.intervals
    header = (f"# ROME hazards on {name}\n\n{report.description}\n\n{report.n_edits} single edits "
              f"({edits_by_kind(report)}), drawn from the {report.n_known} of {report.n_candidates} candidate facts "
              f"the unedited model knows ({report.known_check}); ROME layer {cfg.layer}, key mode {cfg.key_mode}, "
              f"C: {cfg.covariance} ({cfg.cov_corpus}), ridge {cfg.ridge}, {cfg.v_steps} v* steps.\n"
              + (f"Command: `{report.command}`\n" if report.command else "")
              + "\nScores are fractions of prompts where the first object beats the second (per-token "
              "probabilities, CounterFact style), averaged over edits; KL in nats. "
              + (f"Each cell: mean over edits [{boot['level']:.0%} percentile-bootstrap interval over edits, "
                 f"{boot['n_boot']} resamples]." if boot else "") + "\n\n")
    columns = report.summary
    labels = {k: EDITOR_LABELS.get(k, k) for k in columns}
    table_cols = {labels[k]: v for k, v in columns.items()}
    extra = {"relative update norm ‖ΔW‖/‖W‖": {labels[k]: f"{v['edit']['relative_fro']['mean']:.3f}"
                                                for k, v in columns.items() if "edit" in v},
             "seconds per edit (editor only)": {labels[k]: f"{v['edit']['seconds']['mean']:.1f}"
                                                for k, v in columns.items() if "edit" in v}}
    parts = [header + markdown_table(table_cols, extra, intervals=bool(boot))]
    if report.paired:
        parts.append("## Paired tests: ROME against FT and FT-L (same edits)\n\nPer-edit differences A − B; "
                     "interval: percentile bootstrap over edits of the mean difference; p: two-sided Wilcoxon "
                     "signed-rank test of the per-edit differences (zero differences dropped).\n\n"
                     + paired_markdown(report.paired, labels))
    if report.changes:
        parts.append("## Change from the unedited model (same edits, paired 95% intervals)\n\n"
                     + changes_markdown(report.changes, labels))
    if report.claims:
        parts.append("## Seed claims (research notes) against these numbers\n\n" + claims_markdown(report.claims))
    parts.append("## Cost\n\n" + cost_markdown(report.cost))
    return "\n\n".join(parts)


def plot_probabilities(columns: dict, path: Path, title: str) -> None:
    """Bar chart of the mean P(new object) per probe group and column, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("efficacy", "p_good", "efficacy"), ("paraphrase", "p_good", "paraphrase"),
              ("neighbourhood", "p_bad", "neighbourhood"), ("nplus", "p_bad", "N+"),
              ("loud_fact", "p_bad", "loud fact")]
    names = list(columns)
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = [columns[name].get(g, {}).get(f, {}).get("mean", np.nan) for g, f, _ in groups]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=EDITOR_LABELS[name])
    ax.set_xticks(x, [lab for _, _, lab in groups])
    ax.set_ylabel("mean P(new object)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)


def write_rome_report(report: RomeReport, out_dir: str | Path, name: str, cfg: ROMEConfig) -> list[Path]:
    """Write summary.json, table.md and the PNGs (the causal trace only when measured); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if report.causal_trace is not None:
        n_traced = len(report.causal_trace["traces"])
        plot_trace(report.causal_trace, out / "causal_trace.png",
                   f"{name}: causal tracing (mean over {n_traced} facts)")
        paths.append(out / "causal_trace.png")
    plot_probabilities(report.summary, out / "probabilities.png", f"{name}: single edits, mean over edits")
    paths.append(out / "probabilities.png")
    paths.append(atomic_write_json(report.to_json(), out / "summary.json"))
    paths.append(atomic_write_text(table_markdown(report, name, cfg) + "\n", out / "table.md"))
    return paths


def read_rome_report(out_dir: str | Path) -> RomeReport:
    """The `RomeReport` recorded in `out_dir`/summary.json (ValueError naming the file if it is not one)."""
    path = Path(out_dir) / "summary.json"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; run scripts/lm_rome.py --out {out_dir} first")
    try:
        return RomeReport.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a ROME summary ({exc})") from None


def edit_record_path(out_dir: str | Path, editor: str, case_id: str) -> Path:
    """Where the record of one edit lives: ``out_dir/edits/<editor>/<case_id>.json``."""
    return Path(out_dir) / "edits" / editor / f"{case_id}.json"


def record_key(case: dict, settings: dict) -> str:
    """A short hash of one edit's case (`EditCase.to_dict`) and its editor's settings (model included)."""
    text = json.dumps({"version": RECORD_VERSION, "case": case, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_edit_record(out_dir: str | Path, editor: str, case_id: str, key: str | None = None) -> dict | None:
    """The recorded `evaluate_edit` record of one edit, or None if it is not there, unreadable (a file cut
    short) or was made with another case or settings (its ``key`` differs from `key`; None: any key)."""
    path = edit_record_path(out_dir, editor, case_id)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        log.warning("%s is unreadable; redoing that edit", path)
        return None
    if key is not None and record.get("key") != key:
        log.info("%s was made with other settings or another case; redoing it", path)
        return None
    return record


def write_edit_record(record: dict, out_dir: str | Path, editor: str, case_id: str) -> Path:
    """Write one edit's record atomically (a killed run keeps every finished edit)."""
    return atomic_write_text(json.dumps(record, indent=1), edit_record_path(out_dir, editor, case_id))


def prune_edit_records(out_dir: str | Path, editor: str, keep: set[str]) -> list[Path]:
    """Delete ``edits/<editor>/*.json`` whose case id is not in `keep` (left by an earlier run); returns them."""
    folder = Path(out_dir) / "edits" / editor
    stale = sorted(p for p in folder.glob("*.json") if p.stem not in keep) if folder.is_dir() else []
    for p in stale:
        p.unlink()
    if stale:
        log.info("removed %d edit records of %s from an earlier run (%s, ...)", len(stale), editor, stale[0].name)
    return stale
