"""The ROME result folder: the one module that writes and reads it.

``summary.json`` (`RomeReport`), ``table.md`` (generated from it), ``edits/<editor>/<case>.json``
(one record per single edit, written as it finishes so a killed run resumes),
``causal_trace.png`` and ``probabilities.png``. Old ``results/lm_rome_*`` folders read back as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from common.atomic import atomic_save_figure, atomic_write_json, atomic_write_text
from lm_interp.editing.evaluation import markdown_table
from lm_interp.editing.rome import ROMEConfig
from lm_interp.machinery.tracing import plot_trace

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

    def to_json(self) -> dict:
        """The ``summary.json`` dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> RomeReport:
        """Rebuild a report from its ``summary.json`` dict."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def table_markdown(report: RomeReport, name: str, cfg: ROMEConfig) -> str:
    """The header and metric table of ``table.md`` (`name`: the model's short name)."""
    header = (f"# ROME hazards on {name}\n\n{report.description}\n\n{report.n_edits} single edits "
              f"({report.n_known} of {report.n_candidates} candidate facts known to the unedited model); ROME layer "
              f"{cfg.layer}, key mode {cfg.key_mode}, C: {cfg.covariance} ({cfg.cov_corpus}), ridge {cfg.ridge}.\n"
              "Scores are fractions of prompts where the first object beats the second (per-token "
              "probabilities, CounterFact style), averaged over edits; KL in nats.\n\n")
    columns = report.summary
    table_cols = {EDITOR_LABELS[k]: v for k, v in columns.items()}
    extra = {"relative update norm ‖ΔW‖/‖W‖": {EDITOR_LABELS[k]: f"{v['edit']['relative_fro']['mean']:.3f}"
                                                for k, v in columns.items() if "edit" in v},
             "seconds per edit": {EDITOR_LABELS[k]: f"{v['edit']['seconds']['mean']:.1f}"
                                  for k, v in columns.items() if "edit" in v}}
    return header + markdown_table(table_cols, extra)


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


def read_edit_record(out_dir: str | Path, editor: str, case_id: str) -> dict | None:
    """The recorded `evaluate_edit` record of one edit, or None if it has not been written yet."""
    path = edit_record_path(out_dir, editor, case_id)
    return json.loads(path.read_text()) if path.exists() else None


def write_edit_record(record: dict, out_dir: str | Path, editor: str, case_id: str) -> Path:
    """Write one edit's record atomically (a killed run keeps every finished edit)."""
    return atomic_write_text(json.dumps(record, indent=1), edit_record_path(out_dir, editor, case_id))
