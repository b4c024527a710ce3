"""The game registry: every layer takes a game by name, ``games.get("nim", heaps=(3, 4, 5))``."""

from __future__ import annotations

import importlib
from typing import Callable, Union

from games.base import Game

Factory = Union[Callable[..., Game], str]  # a callable, or "module:attribute" imported on first use

_REGISTRY: dict[str, Factory] = {
    "connect4": "games.connect4.game:ConnectFour",
    "tictactoe": "games.tictactoe:TicTacToe",
    "nim": "games.nim:Nim",
}


def register(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Make `games.get(name, **kwargs)` build a game with ``factory(**kwargs)``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a game named {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Names of the registered games."""
    return sorted(_REGISTRY)


def get(name: str | Game, **kwargs) -> Game:
    """Build a registered game (a `Game` instance is returned as is, if no kwargs are given)."""
    if isinstance(name, Game):
        if kwargs:
            raise ValueError(f"got a Game instance and keyword arguments {sorted(kwargs)}; pass a name to build a new game")
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown game {name!r}; registered games: {', '.join(available())}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad options {kwargs} for game {name!r}: {exc}") from exc


def opening_book_users() -> list[str]:
    """Titles of the registered games (default options) whose oracle consults opening books."""
    return [game.title for game in map(get, available()) if game.uses_opening_book]
