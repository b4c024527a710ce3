"""Interpretability experiments on transformer language models (TransformerLens `TransformerBridge`).

* `lm_interp.models`: `load_model("tiny" | "smollm2" | folder | hub name)` -> `LoadedLM`;
* `lm_interp.world`, `lm_interp.corpus`: the synthetic world and the generated corpus with
  IOI / fact / distractor / filler sentences and evaluation prompts (`IOIPrompt`, `FactPrompt`);
* `lm_interp.real_facts`: real landmarks, cities and countries for pretrained models;
* `lm_interp.tokenizer`: the tiny model's word-level tokenizer, `encode` to padded batches;
* `lm_interp.train`: training and evaluating the tiny model;
* `lm_interp.hooks`: hook names, cached runs, activations at positions (for `probes/`);
* `lm_interp.ablation`, `lm_interp.patching`: zero / mean / resample ablations, activation patching;
* `lm_interp.metrics`: logit differences (`ioi_metric`), recall;
* `lm_interp.mae` (+ `mae_model`, `mae_pipeline`, `mae_run`, `mae_report`), `lm_interp.substitutes`,
  `lm_interp.n2g`: causal-aware minimal activating examples of MLP neurons, substitution variants,
  N2G-style predictors and their fidelity (`scripts/lm_mae.py`);
* `lm_interp.dla`, `lm_interp.backup` (+ `backup_report`, `backup_emergence`): direct logit
  attribution through the final norm, name-mover discovery, backup and backup-backup heads
  under five ablation distributions (`scripts/lm_backup_heads.py`, `scripts/lm_backup_emergence.py`);
* `lm_interp.editing`, `lm_interp.rome`, `lm_interp.ft_edit`, `lm_interp.tracing`,
  `lm_interp.edit_cases`, `lm_interp.edit_eval`: reversible weight edits, ROME (consistent and
  legacy keys), FT / FT-L baselines, causal tracing, and the hazard metrics (Specificity+,
  loud facts, implications; `scripts/lm_rome.py`).
"""

from lm_interp.models import LoadedLM, ModelNotAvailableError, load_model

__all__ = ["LoadedLM", "ModelNotAvailableError", "load_model"]
