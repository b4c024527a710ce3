"""Experiment: reversible weight edits (`weights`), ROME (`rome`), fine-tuning baselines (`finetune`), edit
cases (`cases`), hazard metrics (`evaluation`) and the whole run with its result folder (`run`,
`scripts/lm_rome.py`)."""
