"""Interpretability experiments on transformer language models (TransformerLens `TransformerBridge`).

* `lm_interp.models`: `load_model("tiny" | "smollm2" | folder | hub name)` -> `LoadedLM`;
* `lm_interp.world`, `lm_interp.corpus`: the synthetic world and the generated corpus with
  IOI / fact / distractor / filler sentences and evaluation prompts (`IOIPrompt`, `FactPrompt`);
* `lm_interp.real_facts`: real landmarks, cities and countries for pretrained models;
* `lm_interp.tokenizer`: the tiny model's word-level tokenizer, `encode` to padded batches;
* `lm_interp.train`: training and evaluating the tiny model;
* `lm_interp.hooks`: hook names, cached runs, activations at positions (for `probes/`);
* `lm_interp.ablation`, `lm_interp.patching`: zero / mean / resample ablations, activation patching;
* `lm_interp.metrics`: logit differences (`ioi_metric`), recall.
"""

from lm_interp.models import LoadedLM, ModelNotAvailableError, load_model

__all__ = ["LoadedLM", "ModelNotAvailableError", "load_model"]
