"""Does head dropout make backup heads emerge in the tiny model? Train across rates x seeds and measure.

Each run trains a tiny GPT-2 with `lm_interp.train.train_tiny_lm` (``head_dropout`` = the
rate), boots it as a bridge, ablates its top-DLA name movers under a few distributions
(`lm_interp.backup.analysis.backup_analysis`) and summarises the backup strength: the largest ΔDLA
of a non-ablated head (own-run norm scale and frozen clean scale; only the frozen one
excludes final-norm rescaling), the smallest across distributions (robust backups), and
the compensation (logit difference recovered beyond the ablated heads' direct effects).
`run_emergence` runs a grid; this module owns its folder (emergence.json, summary.md,
backup_strength.png: `write_emergence_report`, `read_emergence_report`).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from common.atomic import atomic_save_figure, atomic_write_text
from lm_interp.backup.analysis import backup_analysis, ioi_dataset
from lm_interp.backup.results import BackupResult
from lm_interp.train import LMTrainConfig, train_tiny_lm

log = logging.getLogger(__name__)

# IOI-heavy mix so that IOI is learned sooner (the default corpus needs ~1 500 steps of batch 64); measured:
# 600 steps of batch 32 with 70 % IOI did not learn IOI at all (logit difference 0.01)
EMERGENCE_MIX = {"ioi": 0.9, "fact": 0.04, "distractor": 0.01, "filler": 0.05}
EMERGENCE_DISTRIBUTIONS = ("zero", "mean_abc", "resample_abc")


def emergence_config(head_dropout: float, seed: int, steps: int = 800, n_layer: int = 4, batch_size: int = 64,
                     **overrides) -> LMTrainConfig:
    """The training config of one emergence run (short, IOI-heavy, one thread)."""
    base = LMTrainConfig(seed=seed, steps=steps, n_layer=n_layer, batch_size=batch_size, head_dropout=head_dropout,
                       mix=dict(EMERGENCE_MIX), n_examples=8000, tokenizer_sentences=20000, eval_every=0,
                       eval_ioi_prompts=96, warmup_steps=min(100, steps // 5))
    return replace(base, **overrides)


def summarise_backup_strength(result: BackupResult) -> dict:
    """Backup strength of one analysis (level 0 of every distribution)."""
    per_dist = {}
    ablated = set(result.movers)
    negative = set(result.negative_heads)
    L, H = result.n_layers, result.n_heads
    heads = [(l, h) for l in range(L) for h in range(H) if f"{l}.{h}" not in ablated | negative]
    own = {d: np.array(v[0].delta_dla) for d, v in result.sweeps.items()}
    frozen = {d: np.array(v[0].delta_dla_frozen_scale) for d, v in result.sweeps.items()}
    for d, levels in result.sweeps.items():
        lv = levels[0]
        best = max(heads, key=lambda x: own[d][x]) if heads else None
        per_dist[d] = {"logit_diff": round(lv.logit_diff, 4), "compensation": round(lv.compensation, 4),
                       "top_head": f"{best[0]}.{best[1]}" if best else None,
                       "max_delta_dla": round(float(own[d][best]), 4) if best else 0.0,
                       "max_delta_dla_frozen_scale": round(float(max(frozen[d][x] for x in heads)), 4) if heads
                       else 0.0}
    robust = max((min(own[d][x] for d in own) for x in heads), default=0.0)
    robust_frozen = max((min(frozen[d][x] for d in frozen) for x in heads), default=0.0)
    removed = sum(result.movers_dla.values())
    intervals = result.intervals["splits"]["all"].get("robust_backup", {}) if result.intervals else {}
    return {"clean_logit_diff": round(result.clean.logit_diff, 4),
            "clean_accuracy": round(result.clean.accuracy, 4),
            "movers": result.movers_dla, "removed_dla": round(removed, 4),
            "robust_backup_delta_dla": round(float(robust), 4),
            "robust_backup_delta_dla_frozen_scale": round(float(robust_frozen), 4),
            "robust_backup_fraction_frozen_scale": round(float(robust_frozen / removed), 4) if removed > 0 else None,
            "robust_backup_interval": intervals,
            "per_distribution": per_dist}


def run_key(head_dropout: float, seed: int) -> str:
    """The file-name key of one (rate, seed) run: ``rate0.3_seed1``."""
    return f"rate{head_dropout:g}_seed{seed}"


def trained_model(config: LMTrainConfig, folder: Path | None, progress: bool = False) -> tuple[Path, dict, bool]:
    """The checkpoint of `config` in `folder`, trained and written there (atomically) unless already present.

    :returns: the folder, its recipe and whether it was trained now. With ``folder=None`` the model goes to a
        temporary folder that the caller removes.
    """
    if folder is not None and (folder / "recipe.json").is_file():
        recipe = json.loads((folder / "recipe.json").read_text())
        if recipe.get("config") != json.loads(json.dumps(asdict(config))):
            raise ValueError(f"{folder} holds a model trained with another config; remove it or choose another --out")
        return folder, recipe, False
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="tiny-backup-")) / "model"
    recipe = train_tiny_lm(config, folder, progress=progress, command="lm_interp.backup.emergence")
    return folder, recipe, True


def emergence_run(head_dropout: float, seed: int, steps: int = 800, n_layer: int = 4, n_movers: int = 2,
                  n_per_template: int = 24, progress: bool = False, model_dir: str | Path | None = None,
                  **overrides) -> dict:
    """Train one tiny model (or reuse the one in `model_dir`) and measure its backup heads; a JSON-ready dict.

    :param model_dir: keep the trained checkpoint here, so that a re-run only re-analyses it (None: discard it).
    """
    import shutil

    from lm_interp.models.loading import load_model

    config = emergence_config(head_dropout, seed, steps, n_layer, **overrides)
    t0 = time.perf_counter()
    folder, recipe, trained = trained_model(config, Path(model_dir) if model_dir is not None else None, progress)
    try:
        lm = load_model(str(folder))
        train_s = time.perf_counter() - t0
        groups = ioi_dataset(lm, n_per_template, "all", seed=seed)
        result = backup_analysis(lm, groups, n_movers=n_movers, distributions=EMERGENCE_DISTRIBUTIONS, depth=0,
                                 n_patch=0, progress=False)
    finally:
        if model_dir is None:
            shutil.rmtree(folder.parent, ignore_errors=True)
    row = {"head_dropout": head_dropout, "seed": seed, "steps": steps, "n_layer": n_layer,
           "train_seconds": round(train_s, 1) if trained else recipe.get("train_seconds"),
           "analysis_seconds": round(time.perf_counter() - t0 - train_s, 1),
           "final_loss": round(recipe["final_loss"], 4),
           "ioi_heldout_accuracy": recipe["metrics"]["ioi_heldout"]["accuracy"],
           **summarise_backup_strength(result), "config": asdict(config)}
    log.info("head dropout %.2f seed %d: LD %.2f, movers %s, robust backup ΔDLA %.3f (frozen %.3f)", head_dropout,
             seed, row["clean_logit_diff"], row["movers"], row["robust_backup_delta_dla"],
             row["robust_backup_delta_dla_frozen_scale"])
    return row


@dataclass
class EmergenceReport:
    """A grid of emergence runs (``emergence.json``): the options, the time taken and one row per (rate, seed).

    :param rates: ... :param seeds: the grid as given on the command line (comma-separated).
    :param runs: `emergence_run` rows (the JSON adds ``per_rate``, `rate_summaries` of them).
    """

    rates: str
    seeds: str
    steps: int
    n_layer: int
    n_movers: int
    seconds: float
    command: str
    runs: list[dict] = field(default_factory=list)
    what: str = "backup strength of tiny models vs head-dropout rate"

    def to_json(self) -> dict:
        """The ``emergence.json`` dict (same key order as the recorded results)."""
        return {"what": self.what, "rates": self.rates, "seeds": self.seeds, "steps": self.steps,
                "n_layer": self.n_layer, "n_movers": self.n_movers, "seconds": self.seconds,
                "command": self.command, "per_rate": rate_summaries(self.runs), "runs": self.runs}


def parse_grid(rates: str, seeds: str) -> list[tuple[float, int]]:
    """``"0,0.3"``, ``"0,1"`` -> every (rate, seed); ValueError naming the options on bad input."""
    try:
        return [(float(r), int(s)) for r in rates.split(",") for s in seeds.split(",")]
    except ValueError as exc:
        raise ValueError(f"--rates takes numbers and --seeds integers, comma-separated ({exc})") from None


def check_emergence_options(rates: str, seeds: str, steps: int, n_layer: int, n_movers: int
                            ) -> list[tuple[float, int]]:
    """The grid of (rate, seed); ValueError naming the option if any is out of range."""
    grid = parse_grid(rates, seeds)
    if steps < 1 or n_movers < 1 or n_layer < 1:
        raise ValueError(f"--steps, --n-layer and --n-movers must be at least 1, got {steps}, {n_layer}, {n_movers}")
    return grid


def run_emergence(rates: str, seeds: str, steps: int, n_layer: int, n_movers: int, out_dir: str | Path,
                  command: str, progress: bool = True) -> EmergenceReport:
    """Train and analyse every (rate, seed) of the grid, write the folder and return the report."""
    grid = check_emergence_options(rates, seeds, steps, n_layer, n_movers)
    t0 = time.perf_counter()
    items = grid
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(grid, desc="emergence", unit="model")
    out = Path(out_dir)
    rows = []
    for r, s in items:
        # resumable: a finished run's row is kept in runs/, its checkpoint in models/
        cached = out / "runs" / f"{run_key(r, s)}.json"
        if cached.is_file():
            row = json.loads(cached.read_text())
            if (row.get("steps") == steps and row.get("n_layer") == n_layer and len(row.get("movers", {})) == n_movers
                    and row.get("robust_backup_interval")):  # rows of an older analysis are re-analysed
                rows.append(row)
                continue
        row = emergence_run(r, s, steps, n_layer, n_movers, model_dir=out / "models" / run_key(r, s))
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(row, indent=1), cached)
        rows.append(row)
    report = EmergenceReport(rates=rates, seeds=seeds, steps=steps, n_layer=n_layer, n_movers=n_movers,
                             seconds=round(time.perf_counter() - t0, 1), command=command, runs=rows)
    write_emergence_report(report, out_dir)
    return report


BACKUP_FRACTION = 0.05  # a run has a robust backup when the frozen-scale interval's lower bound exceeds this x removed


def seed_interval(values: list[float], level: float = 0.95) -> dict[str, float]:
    """Mean over seeds and its Student-t interval (NaN bounds with fewer than two seeds)."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": int(len(v))}
    half = float(t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return {"mean": round(mean, 4), "low": round(mean - half, 4), "high": round(mean + half, 4), "n": int(len(v))}


def has_robust_backup(row: dict) -> bool | None:
    """Whether the run's strongest robust backup (frozen scale) is above `BACKUP_FRACTION` of the removed DLA,
    by its bootstrap interval over prompts (None when the row has no interval)."""
    iv = (row.get("robust_backup_interval") or {}).get("frozen_scale")
    if not iv:
        return None
    return bool(iv["low"] > BACKUP_FRACTION * max(row["removed_dla"], 0.0))


def rate_summaries(rows: list[dict]) -> list[dict]:
    """Per head-dropout rate, across seeds: t-intervals of backup strength and how many seeds have a backup."""
    out = []
    for rate in sorted({r["head_dropout"] for r in rows}):
        runs = [r for r in rows if r["head_dropout"] == rate]
        verdicts = [has_robust_backup(r) for r in runs]
        out.append({"head_dropout": rate, "seeds": [r["seed"] for r in runs],
                    "robust_backup_delta_dla_frozen_scale": seed_interval(
                        [r["robust_backup_delta_dla_frozen_scale"] for r in runs]),
                    "robust_backup_fraction_frozen_scale": seed_interval(
                        [r["robust_backup_fraction_frozen_scale"] or 0.0 for r in runs]),
                    "clean_logit_diff": seed_interval([r["clean_logit_diff"] for r in runs]),
                    "ioi_heldout_accuracy": seed_interval([r["ioi_heldout_accuracy"] for r in runs]),
                    "seeds_with_robust_backup": sum(v is True for v in verdicts),
                    "seeds_judged": sum(v is not None for v in verdicts)})
    return out


def _ci(iv: dict, digits: int = 3) -> str:
    low, high = iv.get("low"), iv.get("high")
    if low is None or high is None or np.isnan(low) or np.isnan(high):
        return f"{iv['mean']:+.{digits}f}"
    return f"{iv['mean']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def emergence_markdown(report: EmergenceReport) -> str:
    """The Markdown summary of a grid, generated from the report."""
    lines = ["# Backup-head emergence vs head dropout (tiny model)", "",
             f"{report.steps} steps, {report.n_layer} layers, top {report.n_movers} DLA heads ablated; "
             f"training {sum(r.get('train_seconds') or 0 for r in report.runs):.0f} s over the runs (timed when each "
             f"was trained), this invocation {report.seconds} s. `{report.command}`", "",
             "## Per head-dropout rate, across seeds (95% Student-t intervals over seeds)", "",
             "| head dropout | seeds | IOI acc (held-out) | clean LD | robust backup ΔDLA, frozen scale | "
             "as a fraction of the removed DLA | seeds with a robust backup |", "|---|---|---|---|---|---|---|"]
    for s in rate_summaries(report.runs):
        lines.append(f"| {s['head_dropout']} | {len(s['seeds'])} | {_ci(s['ioi_heldout_accuracy'], 2)} | "
                     f"{_ci(s['clean_logit_diff'], 2)} | {_ci(s['robust_backup_delta_dla_frozen_scale'])} | "
                     f"{_ci(s['robust_backup_fraction_frozen_scale'])} | "
                     f"{s['seeds_with_robust_backup']} of {s['seeds_judged']} |")
    lines += ["", f"A seed has a robust backup when the lower bound of its interval over prompts (below) exceeds "
              f"{BACKUP_FRACTION} x the movers' summed clean DLA.", "",
              "## Per run (intervals: 95% bootstrap over prompts, stratified by template)", "",
              "| head dropout | seed | IOI acc | clean LD | movers (DLA) | robust backup ΔDLA (own scale / frozen) "
              "| frozen-scale interval (head) | per distribution: LD after, top riser ΔDLA (frozen max) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report.runs:
        per = "; ".join(f"{d}: {v['logit_diff']:.2f}, {v['top_head']} {v['max_delta_dla']:+.3f} "
                        f"({v['max_delta_dla_frozen_scale']:+.3f})" for d, v in r["per_distribution"].items())
        movers = ", ".join(f"{h} {v:+.2f}" for h, v in r["movers"].items())
        iv = (r.get("robust_backup_interval") or {}).get("frozen_scale")
        frozen_iv = f"{_ci(iv)} ({iv['head']})" if iv else "-"
        lines.append(f"| {r['head_dropout']} | {r['seed']} | {r['ioi_heldout_accuracy']:.2f} | "
                     f"{r['clean_logit_diff']:.2f} | {movers} | {r['robust_backup_delta_dla']:+.3f} / "
                     f"{r['robust_backup_delta_dla_frozen_scale']:+.3f} | {frozen_iv} | {per} |")
    lines += ["", "Robust backup ΔDLA: the best head's smallest ΔDLA across the distributions. Frozen scale uses "
              "the clean run's final-norm scale, so it excludes norm rescaling; heads upstream of (or in the same "
              "layer as) every ablated head can only change through the norm.", ""]
    return "\n".join(lines)


def _plot_strength(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = np.array([r["head_dropout"] for r in rows], dtype=float)
    ax.scatter(x - 0.005, [r["robust_backup_delta_dla"] for r in rows], s=12, label="seeds, own-run norm scale")
    ax.scatter(x + 0.005, [r["robust_backup_delta_dla_frozen_scale"] for r in rows], marker="x", s=14,
               label="seeds, frozen clean norm scale")
    summaries = rate_summaries(rows)
    means = [s["robust_backup_delta_dla_frozen_scale"] for s in summaries]
    ax.errorbar([s["head_dropout"] + 0.015 for s in summaries], [m["mean"] for m in means],
                yerr=[[m["mean"] - m["low"] if np.isfinite(m["low"]) else 0 for m in means],
                      [m["high"] - m["mean"] if np.isfinite(m["high"]) else 0 for m in means]],
                fmt="o", color="black", ms=4, capsize=3, label="frozen scale: mean, 95% t-interval over seeds")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("head-dropout rate")
    ax.set_ylabel("robust backup ΔDLA (logits)")
    ax.set_title("backup strength after ablating the top-DLA heads", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)


def write_emergence_report(report: EmergenceReport, out_dir: str | Path) -> list[Path]:
    """Write emergence.json, summary.md and backup_strength.png into `out_dir`; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write_text(json.dumps(report.to_json(), indent=1), out / "emergence.json"),
             atomic_write_text(emergence_markdown(report), out / "summary.md")]
    _plot_strength(report.runs, out / "backup_strength.png")
    return paths + [out / "backup_strength.png"]


def read_emergence_report(out_dir: str | Path) -> EmergenceReport:
    """The `EmergenceReport` recorded in `out_dir`/emergence.json (ValueError naming the file if it is not one)."""
    path = Path(out_dir) / "emergence.json"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; run scripts/lm_backup_emergence.py --out {out_dir} first")
    try:
        data = json.loads(path.read_text())
        data.pop("per_rate", None)  # derived from the runs
        return EmergenceReport(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path} is not an emergence report ({exc})") from None
