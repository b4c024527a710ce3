"""Interpretability experiments on transformer language models (TransformerLens `TransformerBridge`).

Grouped by what each part is for:

* `lm_interp.models`: loading (`load_model("tiny" | "smollm2" | folder | hub name)` -> `LoadedLM`),
  tokenizers, token positions / raw forward passes / sampling (`tokens`), the synthetic world
  and generated corpus (`world`, `corpus`, `real_facts`);
* `lm_interp.train`: training and evaluating the tiny model (`LMTrainConfig`, `train_tiny_lm`);
* `lm_interp.machinery`: hook names and cached runs (`hooks`), ablations, activation patching,
  direct logit attribution (`dla`), metrics, causal tracing and linear probes on LM activations
  (`probing`, with the probe demonstration of `scripts/lm_probe_demo.py`) - all on the bridge's
  hook points;
* `lm_interp.mae`: causal-aware minimal activating examples of MLP neurons, substitution
  variants, N2G-style predictors and their fidelity (`scripts/lm_mae.py`);
* `lm_interp.backup`: backup and backup-backup name-mover heads under five ablation
  distributions, and their emergence under head dropout (`scripts/lm_backup_heads.py`,
  `scripts/lm_backup_emergence.py`);
* `lm_interp.editing`: reversible weight edits, ROME (consistent and legacy keys), FT / FT-L
  baselines, edit cases and the hazard metrics (Specificity+, loud facts, implications;
  `scripts/lm_rome.py`).

Dependencies point one way: `models` -> `machinery` -> `train` and the experiment packages
(`mae`, `backup`, `editing`); `lm_interp` imports none of games/, solver/, agents/.
Each experiment has one module that writes and reads its result folder (`backup.report`,
`backup.emergence`, `editing.report`, `mae.run`, `machinery.probing`).
"""

from lm_interp.models.loading import LoadedLM, ModelNotAvailableError, load_model

__all__ = ["LoadedLM", "ModelNotAvailableError", "load_model"]
