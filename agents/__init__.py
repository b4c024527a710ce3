"""RL agents (MaskablePPO self-play) and their evaluation against the solver; see the open issues."""
