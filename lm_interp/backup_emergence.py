"""Does head dropout make backup heads emerge in the tiny model? Train across rates x seeds and measure.

Each run trains a tiny GPT-2 with `lm_interp.train.train_tiny_lm` (``head_dropout`` = the
rate), boots it as a bridge, ablates its top-DLA name movers under a few distributions
(`lm_interp.backup.backup_analysis`) and summarises the backup strength: the largest ΔDLA
of a non-ablated head (own-run norm scale and frozen clean scale; only the frozen one
excludes final-norm rescaling), the smallest across distributions (robust backups), and
the compensation (logit difference recovered beyond the ablated heads' direct effects).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from lm_interp.backup import backup_analysis, ioi_dataset
from lm_interp.train import TrainConfig, train_tiny_lm

log = logging.getLogger(__name__)

# IOI-heavy mix so that IOI is learned sooner (the default corpus needs ~1 500 steps of batch 64); measured:
# 600 steps of batch 32 with 70 % IOI did not learn IOI at all (logit difference 0.01)
EMERGENCE_MIX = {"ioi": 0.9, "fact": 0.04, "distractor": 0.01, "filler": 0.05}
EMERGENCE_DISTRIBUTIONS = ("zero", "mean_abc", "resample_abc")


def emergence_config(head_dropout: float, seed: int, steps: int = 800, n_layer: int = 4, batch_size: int = 64,
                     **overrides) -> TrainConfig:
    """The training config of one emergence run (short, IOI-heavy, one thread)."""
    base = TrainConfig(seed=seed, steps=steps, n_layer=n_layer, batch_size=batch_size, head_dropout=head_dropout,
                       mix=dict(EMERGENCE_MIX), n_examples=8000, tokenizer_sentences=20000, eval_every=0,
                       eval_ioi_prompts=96, warmup_steps=min(100, steps // 5))
    return replace(base, **overrides)


def summarise(result: dict) -> dict:
    """Backup strength of one analysis (level 0 of every distribution)."""
    per_dist = {}
    ablated = set(result["movers"])
    negative = set(result["negative_heads"])
    L, H = result["n_layers"], result["n_heads"]
    heads = [(l, h) for l in range(L) for h in range(H) if f"{l}.{h}" not in ablated | negative]
    own = {d: np.array(v[0]["delta_dla"]) for d, v in result["sweeps"].items()}
    frozen = {d: np.array(v[0]["delta_dla_frozen_scale"]) for d, v in result["sweeps"].items()}
    for d, levels in result["sweeps"].items():
        lv = levels[0]
        best = max(heads, key=lambda x: own[d][x]) if heads else None
        per_dist[d] = {"logit_diff": round(lv["logit_diff"], 4), "compensation": round(lv["compensation"], 4),
                       "top_head": f"{best[0]}.{best[1]}" if best else None,
                       "max_delta_dla": round(float(own[d][best]), 4) if best else 0.0,
                       "max_delta_dla_frozen_scale": round(float(max(frozen[d][x] for x in heads)), 4) if heads
                       else 0.0}
    robust = max((min(own[d][x] for d in own) for x in heads), default=0.0)
    robust_frozen = max((min(frozen[d][x] for d in frozen) for x in heads), default=0.0)
    removed = sum(result["movers_dla"].values())
    return {"clean_logit_diff": round(result["clean"]["logit_diff"], 4),
            "clean_accuracy": round(result["clean"]["accuracy"], 4),
            "movers": result["movers_dla"], "removed_dla": round(removed, 4),
            "robust_backup_delta_dla": round(float(robust), 4),
            "robust_backup_delta_dla_frozen_scale": round(float(robust_frozen), 4),
            "robust_backup_fraction_frozen_scale": round(float(robust_frozen / removed), 4) if removed > 0 else None,
            "per_distribution": per_dist}


def emergence_run(head_dropout: float, seed: int, steps: int = 800, n_layer: int = 4, n_movers: int = 2,
                  n_per_template: int = 12, progress: bool = False, **overrides) -> dict:
    """Train one tiny model and measure its backup heads; returns a JSON-ready dict."""
    from lm_interp import load_model

    config = emergence_config(head_dropout, seed, steps, n_layer, **overrides)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tiny-backup-") as tmp:
        folder = Path(tmp) / "model"
        recipe = train_tiny_lm(config, folder, progress=progress, command="lm_interp.backup_emergence")
        lm = load_model(str(folder))
        train_s = time.perf_counter() - t0
        groups = ioi_dataset(lm, n_per_template, "heldout", seed=seed)
        result = backup_analysis(lm, groups, n_movers=n_movers, distributions=EMERGENCE_DISTRIBUTIONS, depth=0,
                                 n_patch=0, progress=False)
    row = {"head_dropout": head_dropout, "seed": seed, "steps": steps, "n_layer": n_layer,
           "train_seconds": round(train_s, 1), "analysis_seconds": round(time.perf_counter() - t0 - train_s, 1),
           "final_loss": round(recipe["final_loss"], 4),
           "ioi_heldout_accuracy": recipe["metrics"]["ioi_heldout"]["accuracy"],
           **summarise(result), "config": asdict(config)}
    log.info("head dropout %.2f seed %d: LD %.2f, movers %s, robust backup ΔDLA %.3f (frozen %.3f)", head_dropout,
             seed, row["clean_logit_diff"], row["movers"], row["robust_backup_delta_dla"],
             row["robust_backup_delta_dla_frozen_scale"])
    return row
