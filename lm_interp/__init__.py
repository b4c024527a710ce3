"""Interpretability experiments on transformer language models (transformer_lens)."""
