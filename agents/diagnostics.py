"""Post-mortems of played games: where did the agent let a game slip, by the exact oracle?

`play_games(..., keep_moves=True)` keeps every game's actions; `game_slips` replays one
game and asks the game's exact oracle (``action_values``: win / draw / loss of every
action for the side to move) at every ply from `from_ply` on: a move *slips* when it is
worth less than the mover's best move. `where_games_slip` sums that up over games (by
default those the agent did not win): was the game already not a win for the agent when
the oracle started looking (lost in the opening phase, or by the random opening itself),
or did the agent hold a win and let it go (at which ply, and was the slip visible one ply
ahead)?

Connect Four positions with few stones take the solver seconds to minutes each, so the
replay starts at the game's ``fast_oracle_ply`` by default: a slip before it shows up as
an *entry value* below a win.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np

from agents.evaluation import error_kind
from games.base import Game

_OUTCOMES = (("win", 1), ("draw", 0), ("loss", -1))


@dataclass
class Slip:
    """One move worth less than the mover's best: at `ply` (stones before the move), by
    ``"agent"`` or ``"opponent"``, from game value `best` to `got` (the mover's view; +1
    win, 0 draw, -1 loss); for the agent's slips, `kind` is `agents.evaluation.error_kind`."""

    ply: int
    who: str
    action: int
    best: int
    got: int
    kind: str | None = None


@dataclass
class GameSlips:
    """A replayed game: the agent's seat and result, the agent's game value when the oracle
    started looking (None when the game ended before), and every slip after that."""

    seat: int
    result: int
    plies: int
    entry_ply: int
    entry_value: int | None
    slips: list[Slip] = field(default_factory=list)

    @property
    def agent_slips(self) -> list[Slip]:
        return [s for s in self.slips if s.who == "agent"]

    @property
    def opponent_slips(self) -> list[Slip]:
        return [s for s in self.slips if s.who == "opponent"]

    @property
    def best_value_held(self) -> int | None:
        """The best game value the agent held from the entry ply on (None: the game ended before)."""
        if self.entry_value is None:
            return None
        return max([self.entry_value] + [s.best for s in self.agent_slips])

    @property
    def held_a_win(self) -> bool:
        """The agent held a won position at some point from the entry ply on (at entry, after
        an opponent's slip into a loss, or before a slip of its own), or won."""
        return (self.result > 0 or self.entry_value == 1 or any(s.got == -1 for s in self.opponent_slips)
                or any(s.best == 1 for s in self.agent_slips))

    @property
    def verdict(self) -> str:
        """``"won"``; ``"decided_before"`` (not won, and the agent never held more than its
        result once the oracle looked); ``"let_a_win_go"`` or ``"let_a_draw_go"`` (it held
        that, and slipped)."""
        held = self.best_value_held
        if self.result > 0:
            return "won"
        if held is None or held <= self.result:
            return "decided_before"
        return "let_a_win_go" if held == 1 else "let_a_draw_go"


def game_slips(game: Game, actions: Iterable[int], seat: int, result: int, from_ply: int = 0) -> GameSlips:
    """Replay one game and find every slip from `from_ply` on (see the module docstring).

    :param game: the game (its exact oracle labels the positions).
    :param actions: every action from the empty board.
    :param seat: the agent's seat (0 moves first).
    :param result: the game's result for the agent (+1 / 0 / -1), as recorded.
    :param from_ply: first ply looked at (positions with fewer stones are not solved).
    """
    actions = [int(a) for a in actions]
    if from_ply < 0:
        raise ValueError(f"from_ply must be >= 0, got {from_ply}")
    state = game.initial_state()
    out = GameSlips(seat=int(seat), result=int(result), plies=len(actions), entry_ply=from_ply, entry_value=None)
    for ply, action in enumerate(actions):
        if game.is_terminal(state):
            raise ValueError(f"the game is over after {ply} actions but {len(actions)} were given")
        if not game.legal_mask(state)[action]:
            raise ValueError(f"action {action} at ply {ply} is illegal")
        if ply >= from_ply:
            mover = game.to_play(state)
            values = np.asarray(game.action_values(state), dtype=np.float64)
            best, got = int(np.nanmax(values)), int(values[action])
            if out.entry_value is None:
                out.entry_value = best if mover == seat else -best
            if got < best:
                who = "agent" if mover == seat else "opponent"
                kind = error_kind(game, state, action) if who == "agent" else None
                out.slips.append(Slip(ply, who, action, best, got, kind))
        state = game.play(state, action)
    if not game.is_terminal(state):
        raise ValueError(f"the game is not over after its {len(actions)} actions")
    if game.returns(state, seat) != result:
        raise ValueError(f"the recorded result {result} is not the replayed one {game.returns(state, seat)}")
    return out


def where_games_slip(game: Game, games: list[dict], from_ply: int | None = None, only_unwon: bool = True,
                     progress: bool = True) -> dict:
    """Where the agent's games slipped, summed up (plus every replayed game).

    :param game: the game.
    :param games: ``play_games(..., keep_moves=True)["moves"]``.
    :param from_ply: first ply the oracle looks at (default: the game's ``fast_oracle_ply``).
    :param only_unwon: replay only the games the agent did not win (the others cost time
        and cannot have lost a win).
    :param progress: show a progress bar.
    :returns: ``{"summary": {...}, "games": [GameSlips as dicts, with their verdict]}``;
        the summary counts, over the replayed games: the agent's entry value (win / draw /
        loss / ended before), the results by entry value (with ``only_unwon=False``: how
        often the agent converts a win it holds at the entry ply), the games in which the
        agent held a win at some point, per seat, and how many of them it won, the verdicts
        (`GameSlips.verdict`: won; decided before the oracle looked; or a win or a draw the
        agent held and let go), the one-ply kinds of the agent's slips and the plies of its
        first ones, and the opponent's slips.
    """
    from tqdm.auto import tqdm

    if from_ply is None:
        from_ply = game.fast_oracle_ply
    chosen = [g for g in games if not (only_unwon and g["result"] > 0)]
    replayed = [game_slips(game, g["actions"], g["seat"], g["result"], from_ply)
                for g in tqdm(chosen, desc="replaying games with the oracle", disable=not progress, leave=False)]
    entry = {"win": 0, "draw": 0, "loss": 0, "ended_before": 0}
    for g in replayed:
        entry[{None: "ended_before", 1: "win", 0: "draw", -1: "loss"}[g.entry_value]] += 1
    first = [g.agent_slips[0] for g in replayed if g.agent_slips]
    kinds = [s.kind for g in replayed for s in g.agent_slips]
    first_plies = [s.ply for s in first]
    summary = {
        "replayed": len(replayed),
        "by_result": {name: sum(g.result == r for g in replayed) for name, r in _OUTCOMES},
        "from_ply": from_ply,
        "entry_value": entry,
        "result_by_entry_value": {
            e: {r: sum(g.entry_value == ev and g.result == rv for g in replayed) for r, rv in _OUTCOMES}
            for e, ev in _OUTCOMES
        },
        "verdict": {v: sum(g.verdict == v for g in replayed) for v in ("won", "decided_before", "let_a_win_go",
                                                                           "let_a_draw_go")},
        "held_a_win": {seat_name: {"games": sum(g.held_a_win for g in mine),
                                   "won": sum(g.held_a_win and g.result > 0 for g in mine)}
                       for seat_name, mine in (("first", [g for g in replayed if g.seat == 0]),
                                               ("second", [g for g in replayed if g.seat == 1]))},
        "no_agent_slip": sum(not g.agent_slips for g in replayed),
        "agent_slips": len(kinds),
        "agent_slip_kinds": {kind: kinds.count(kind) for kind in ("missed_immediate_win", "allowed_immediate_loss",
                                                                  "deeper")},
        "first_slip_ply": _quartiles(first_plies),
        "opponent_slips": sum(len(g.opponent_slips) for g in replayed),
        "games_with_opponent_slip": sum(bool(g.opponent_slips) for g in replayed),
    }
    return {"summary": summary,
            "games": [{**asdict(g), "verdict": g.verdict, "held_a_win": g.held_a_win} for g in replayed]}


def _quartiles(values: list[int]) -> dict:
    if not values:
        return {"n": 0}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"n": len(values), "min": int(min(values)), "q1": float(q1), "median": float(median), "q3": float(q3),
            "max": int(max(values))}
