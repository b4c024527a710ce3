"""Nim: the game (`game`) and its concepts (`concepts`)."""

from games.nim.game import Nim, NimState

__all__ = ["Nim", "NimState"]
