"""Experiment: reversible weight edits (`weights`), ROME (`rome`), fine-tuning baselines (`finetune`), edit
cases (`cases`: synthetic world and the known check; `real_cases`: the real-fact file in `data/`), hazard
metrics (`evaluation`), intervals and paired tests over edits (`stats`, `comparisons`), the research notes'
claims judged (`claims`) and the whole run with its result folder (`run`, `report`, `scripts/lm_rome.py`)."""
