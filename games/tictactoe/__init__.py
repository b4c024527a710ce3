"""Tic-tac-toe: the game (`game`) and its concepts (`concepts`)."""

from games.tictactoe.game import TicTacToe, TicTacToeState

__all__ = ["TicTacToe", "TicTacToeState"]
