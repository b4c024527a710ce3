"""Experiment: causal-aware minimal activating examples of MLP neurons (`examples`), the neurons of a loaded
model (`neurons`), substitution variants (`substitutes`), N2G-style predictors (`n2g`), the per-neuron
pipeline (`pipeline`), its result files (`report`) and the run over a model (`run`, `scripts/lm_mae.py`)."""
