"""Experiment: backup name-mover heads under several ablation distributions (`analysis`), the result folder
(`report`) and backup emergence against head dropout in tiny models (`emergence`;
`scripts/lm_backup_heads.py`, `scripts/lm_backup_emergence.py`)."""
