"""The backup-head experiment on one model, from options to its result folder (`scripts/lm_backup_heads.py`).

`check_backup_options` validates the counts, `run_backup_heads` loads the model, builds the IOI
groups, runs `lm_interp.backup.analysis.backup_analysis` and writes the folder through
`lm_interp.backup.report` (the module that owns its format).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from lm_interp.backup.analysis import (
    DISTRIBUTIONS,
    backup_analysis,
    ioi_dataset,
    parse_heads,
)
from lm_interp.backup.report import write_backup_report
from lm_interp.backup.results import BackupResult


def check_backup_options(n_per_template: int, n_movers: int, depth: int, backups_per_level: int,
                         n_patch: int, n_boot: int = 1000) -> None:
    """ValueError naming the option if a count is below its least value."""
    for name, value, least in (("--n-per-template", n_per_template, 1), ("--n-movers", n_movers, 1),
                               ("--depth", depth, 0), ("--backups-per-level", backups_per_level, 1),
                               ("--n-patch", n_patch, 0), ("--n-boot", n_boot, 0)):
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")


def run_backup_heads(model: str, out_dir: str | Path, n_per_template: int = 24, split: str = "all",
                     templates: Sequence[str] | None = None, movers: str | None = None, n_movers: int = 3,
                     distributions: Sequence[str] | None = None, depth: int = 2, backups_per_level: int = 1,
                     n_patch: int = 8, backup_fraction: float = 0.05, negative_fraction: float = 0.1,
                     seed: int = 0, backup_pool: str = "positive", command: str | None = None,
                     progress: bool = True, n_boot: int = 1000) -> BackupResult:
    """Run the whole experiment on `model` (see `backup_analysis` for the options) and write `out_dir`.

    Resumable: each finished ablation distribution is cached in ``out_dir/cache`` (per-prompt records,
    kept), so running the same command again after an interruption picks up there, and a finished run
    can be re-summarised (e.g. with another ``n_boot``) without running the model again.
    :param movers: comma-separated ``L.H`` heads to ablate (None: the top `n_movers` by DLA).
    :param command: the command line recorded in the result.
    :param n_boot: bootstrap resamples over prompts for the intervals (0: none).
    """

    from lm_interp.models.loading import load_model

    check_backup_options(n_per_template, n_movers, depth, backups_per_level, n_patch, n_boot)
    t0 = time.perf_counter()
    lm = load_model(model)
    cfg = lm.model.cfg
    chosen = parse_heads(movers, cfg.n_layers, cfg.n_heads)
    dists = list(distributions) if distributions else list(DISTRIBUTIONS)
    groups = ioi_dataset(lm, n_per_template, split, list(templates) if templates else None, seed)
    result = backup_analysis(lm, groups, n_movers, chosen, dists, depth, backups_per_level, n_patch,
                             backup_fraction, negative_fraction, seed, backup_pool, progress=progress,
                             n_boot=n_boot, cache_dir=Path(out_dir) / "cache")
    result = replace(result, model=lm.spec, description=lm.description,
                     seconds=round(time.perf_counter() - t0, 1), command=command)
    write_backup_report(result, out_dir)
    return result
