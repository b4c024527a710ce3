"""Environments over any registered game: gymnasium (single agent), PettingZoo (AEC) and a
vectorised self-play SB3 VecEnv."""
