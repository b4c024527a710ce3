"""Solved games behind one protocol (`Game`), a registry, and their environments.

    import games
    game = games.get("connect4", width=7, height=6)      # or "tictactoe", "nim" (heaps=...)
    env = gymnasium.make("solvedlens/ConnectFour-v0", opponent="perfect", width=5, height=4)  # 7x6: ~1 min per early reply
    aec = games.pettingzoo_env("tictactoe")

Importing `games` registers the solvedlens/* gymnasium environments.
"""

from typing import Any

from games.base import BatchOps, Game, Symmetry
from games.registry import available, get, register


def pettingzoo_env(name: str | Game, **kwargs: Any) -> Any:
    """The PettingZoo AEC environment of a registered game (see `games.envs.aec`)."""
    from games.envs.aec import pettingzoo_env as make

    return make(name, **kwargs)


def _register_gym_envs() -> None:
    from games.envs.single_agent import register_gym_envs

    register_gym_envs()


_register_gym_envs()

__all__ = ["BatchOps", "Game", "Symmetry", "available", "get", "pettingzoo_env", "register"]
