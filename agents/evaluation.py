"""Strength of a policy network measured against ground truth: the network alone, no search.

Two families of measurements, for any registered game:

* **Move quality** on fixed positions with exact per-action scores: the *perfect-move
  rate* (the chosen action has the best score) and the *good-move rate* (it keeps the
  game value: win stays win, draw stays draw; in a lost position every move is good).
  Sets: the game's `evaluation_sets` (Pons' End / Middle / Begin-Easy test sets for Connect
  Four 7x6, shipped in ``data/connect4``) plus a fixed, seeded sample of **decisive**
  positions (the legal moves reach at least two outcome classes, so the choice matters).
  Every record names the sets it used (``"sets"``: size, origin, hash of the positions);
  a fixed set that cannot be found is left out with a warning (see the game's method).
* **Games** against a ladder of opponents (uniform random, then the game's
  `baseline_players`), half as first player and half as second, with the agent playing
  its most likely legal move. Games start from random two-move openings, each played once
  with each colour, so that a greedy agent against a near-deterministic searcher does not
  replay one game; opponents also break ties at random.

The agent measured is the network alone, greedy, no search; by default it averages its
log-probabilities over the game's symmetric views of the board (Connect Four: the board and
its mirror image), which makes the policy exactly symmetric and cancels much of the
network's orientation-dependent noise (`PolicyPlayer`; ``symmetrize=False`` measures the
raw network). Records say which (``views``).

Per-action scores come from the game's exact oracle and are cached on disk
(``$SOLVEDLENS_CACHE/eval_sets``), so evaluating checkpoint after checkpoint is cheap. The
labels of the default Connect Four sets ship in ``data/eval_sets`` (labelling every move of
Pons' Begin-Easy set takes the solver about 7 minutes: its positions are easy, their
children are not).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from agents.pool import sample_actions
from agents.records import EvaluationRecord
from games.base import Game, Symmetry
from games.envs.opponents import random_opponent

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- the agent
class PolicyPlayer:
    """A maskable SB3 policy that plays its most likely legal action (batched or one state).

    With `symmetries` (a game's ``symmetries()``, identity included) the player looks at
    every symmetric view of the board and plays the legal action with the highest mean
    log-probability over the views, each mapped back to the real board: one network, no
    search, no look-ahead, but a policy that is exactly symmetric where the network alone is
    only roughly so (for Connect Four, the board and its mirror image: two forward passes).

    :param policy: an SB3 policy (or a model with ``.policy``).
    :param name: how the player is described (e.g. its checkpoint path).
    :param symmetries: views to average over (None or only the identity: the network as is).
    """

    def __init__(self, policy: Any, name: str = "policy", symmetries: Sequence[Symmetry] | None = None) -> None:
        self.policy = getattr(policy, "policy", policy)
        self.name = name
        self.symmetries = list(symmetries or [])
        if self.symmetries and self.symmetries[0].name != "identity":
            raise ValueError(f"symmetries must start with the identity, got {self.symmetries[0].name!r} first")

    def __repr__(self) -> str:
        views = f", {len(self.symmetries)} views" if len(self.symmetries) > 1 else ""
        return f"PolicyPlayer({self.name}{views})"

    def act(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Greedy legal actions for a batch of observations and legal-action masks."""
        masks = np.asarray(masks, dtype=bool)
        if not masks.any(axis=1).all():
            raise ValueError("every state handed to the agent needs at least one legal action")
        obs = np.asarray(obs, dtype=np.float32)
        if len(self.symmetries) <= 1:
            return sample_actions(self.policy, obs, masks, deterministic=True)
        return np.where(masks, self.mean_log_probs(obs, masks), -np.inf).argmax(axis=1)

    def mean_log_probs(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Log-probabilities of every action (``[N, A]``; illegal ones very negative), averaged over the views."""
        if not self.symmetries:
            return self._log_probs(obs, masks)
        total = sum(self._log_probs(sym.apply_planes(obs), sym.apply_actions(masks))[:, sym.action_perm]  # real board
                    for sym in self.symmetries)
        return total / len(self.symmetries)

    def _log_probs(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The policy's log-probabilities on one view, normalised over its legal actions."""
        with torch.no_grad():
            obs_t = torch.as_tensor(np.ascontiguousarray(obs), device=self.policy.device)
            dist = self.policy.get_distribution(obs_t, action_masks=masks)
            return dist.distribution.logits.cpu().numpy().astype(np.float64)

    def __call__(self, game: Game, state: Any, rng: np.random.Generator) -> int:
        obs = game.observation(state)[None]
        return int(self.act(obs, game.legal_mask(state)[None])[0])


# ---------------------------------------------------------------------------- labelled positions
@dataclass
class LabelledSet:
    """Positions (as the game's text) with the exact score of every action (NaN = illegal).

    :param source: where the positions come from, for the record (e.g. "the game's
        evaluation set", or how a decisive sample was drawn).
    """

    name: str
    texts: list[str]
    scores: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def description(self) -> dict:
        """What an evaluation record says about this set: size, origin and a hash of its positions."""
        digest = hashlib.sha256("\n".join(self.texts).encode()).hexdigest()[:16]
        return {"n": len(self), "source": self.source, "positions_sha256": digest}


SHIPPED_LABELS = Path(__file__).resolve().parents[1] / "data" / "eval_sets"
FIXED_SET_SOURCE = "fixed set of the game (Game.evaluation_sets)"


def _cache_file(game: Game, kind: str, payload: str) -> Path:
    """Where the labels of a set live: shipped with the project if present, else the user cache."""
    from common.provenance import cache_dir

    digest = hashlib.sha256(f"{game!r}|{kind}|{payload}".encode()).hexdigest()[:16]
    name = f"{game.name}-{kind}-{digest}.json"
    shipped = SHIPPED_LABELS / name
    return shipped if shipped.exists() else cache_dir() / "eval_sets" / name


def _read_cache(path: Path, name: str) -> LabelledSet | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return LabelledSet(name, data["texts"], np.array(data["scores"], dtype=np.float64))
    except (ValueError, KeyError) as exc:
        log.warning("ignoring unreadable evaluation cache %s (%s)", path, exc)
        return None


def _write_cache(path: Path, labelled: LabelledSet) -> None:
    from common.atomic import atomic_write_text

    scores = np.where(np.isnan(labelled.scores), None, labelled.scores).tolist()
    atomic_write_text(json.dumps({"texts": labelled.texts, "scores": scores}), path)


def label_set(game: Game, name: str, texts: list[str]) -> LabelledSet:
    """Exact per-action scores of `texts` (cached on disk by content)."""
    texts = list(texts)
    path = _cache_file(game, "set", "\n".join(texts))
    cached = _read_cache(path, name)
    if cached is not None:
        cached.source = FIXED_SET_SOURCE
        return cached
    from tqdm.auto import tqdm

    scores = [game.action_scores(game.parse(t)) for t in tqdm(texts, desc=f"labelling {name}", leave=False)]
    labelled = LabelledSet(name, texts, np.array(scores, dtype=np.float64), FIXED_SET_SOURCE)
    _write_cache(path, labelled)
    return labelled


def decisive_positions(game: Game, n: int = 300, seed: int = 0, min_ply: int | None = None) -> LabelledSet:
    """A fixed sample of up to `n` distinct decisive positions from random games (cached by arguments).

    Positions come from uniformly random play, at a uniformly drawn ply from `min_ply` on
    (default: the game's `fast_oracle_ply`; Connect Four positions with fewer stones are
    slow to label exactly); a position is kept when its legal actions reach at least two
    different game values. Small games may have fewer than `n` such positions: sampling
    stops after ``50 * n`` random games with what it found.
    """
    if min_ply is None:
        min_ply = game.fast_oracle_ply
    path = _cache_file(game, "decisive", f"{n}|{seed}|{min_ply}")
    source = f"sampled decisive positions (up to {n}, seed {seed}, from ply {min_ply})"
    cached = _read_cache(path, "decisive")
    if cached is not None:
        cached.source = source
        return cached
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    texts: list[str] = []
    scores: list[np.ndarray] = []
    seen: set = set()
    attempts = 0
    with tqdm(total=n, desc="sampling decisive positions", leave=False) as bar:
        while len(texts) < n:
            attempts += 1
            if attempts > 50 * n:
                if not texts:
                    raise RuntimeError(f"no decisive positions of {game!r} from ply {min_ply} in {attempts} random games")
                log.warning("only %d decisive positions of %r found in %d random games", len(texts), game, attempts)
                break
            state = game.initial_state()
            trajectory = []
            while not game.is_terminal(state):
                trajectory.append(state)
                state = game.play(state, random_opponent(game, state, rng))
            if len(trajectory) <= min_ply:
                continue
            state = trajectory[min_ply + int(rng.integers(len(trajectory) - min_ply))]
            key = game.canonical_key(state)
            if key in seen:
                continue
            seen.add(key)
            action_scores = np.asarray(game.action_scores(state), dtype=np.float64)
            legal = action_scores[~np.isnan(action_scores)]
            if len(np.unique(np.sign(legal))) >= 2:
                texts.append(game.to_text(state))
                scores.append(action_scores)
                bar.update(1)
    labelled = LabelledSet("decisive", texts, np.array(scores), source)
    _write_cache(path, labelled)
    return labelled


def _planes(game: Game, states: list) -> tuple[np.ndarray, np.ndarray]:
    """Observations and legal masks of `states`, stacked."""
    return (np.stack([game.observation(s) for s in states]).astype(np.float32),
            np.stack([game.legal_mask(s) for s in states]))


def _greedy_moves(player: PolicyPlayer, obs: np.ndarray, masks: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """`player`'s action on every position, in batches."""
    return np.concatenate([player.act(obs[i:i + batch_size], masks[i:i + batch_size])
                           for i in range(0, len(obs), batch_size)])


def move_quality(player: PolicyPlayer, game: Game, labelled: LabelledSet, batch_size: int = 1024) -> dict:
    """Perfect- and good-move rates of `player` on a labelled set."""
    if len(labelled) == 0:
        return {"n": 0, "perfect_rate": float("nan"), "good_rate": float("nan"), "errors": dict.fromkeys(ERROR_KINDS, 0)}
    states = [game.parse(t) for t in labelled.texts]
    chosen = _greedy_moves(player, *_planes(game, states), batch_size=batch_size)
    scores = labelled.scores
    picked = scores[np.arange(len(states)), chosen]
    if np.isnan(picked).any():
        raise ValueError(f"the agent chose an illegal action on {labelled.name}; its masks are broken")
    best = np.nanmax(scores, axis=1)
    perfect = picked == best
    good = np.sign(picked) == np.sign(best)
    kinds = [error_kind(game, states[i], int(chosen[i])) for i in np.flatnonzero(~good)]
    return {"n": len(states), "perfect_rate": float(perfect.mean()), "good_rate": float(good.mean()),
            "errors": {kind: kinds.count(kind) for kind in ERROR_KINDS}}


def symmetry_consistency(player: PolicyPlayer, game: Game, texts: Sequence[str], batch_size: int = 1024) -> float:
    """How symmetric a player plays: the share of positions on which its move on every
    symmetric view of the board is the image of its move on the board as given (for the
    network alone, ``PolicyPlayer(policy)``; a player over all views scores 1 up to ties).

    Positions that a symmetry maps onto themselves are left out (there the two moves may
    differ only by a tie). NaN when the game has no symmetry besides the identity or no
    position is left.
    """
    symmetries = game.symmetries()[1:]
    if not symmetries or not texts:
        return float("nan")
    obs, masks = _planes(game, [game.parse(t) for t in texts])
    chosen = _greedy_moves(player, obs, masks, batch_size)
    consistent, fixed = np.ones(len(texts), bool), np.zeros(len(texts), bool)
    for sym in symmetries:
        view_obs = sym.apply_planes(obs)
        fixed |= (view_obs == obs).reshape(len(obs), -1).all(axis=1)
        consistent &= _greedy_moves(player, view_obs, sym.apply_actions(masks), batch_size) == sym.action_perm[chosen]
    return float(consistent[~fixed].mean()) if (~fixed).any() else float("nan")


ERROR_KINDS = ("missed_immediate_win", "allowed_immediate_loss", "deeper")


def _winning_actions(game: Game, state: Any) -> list[int]:
    """Actions that win on the spot for the side to move."""
    mover = game.to_play(state)
    return [a for a in game.legal_actions(state) if game.returns(game.play(state, a), mover) > 0]


def error_kind(game: Game, state: Any, action: int) -> str:
    """Why a value-losing move was wrong, as far as one ply tells.

    ``missed_immediate_win``: a move that wins at once was there; ``allowed_immediate_loss``:
    after the move the opponent wins at once (a threat left unblocked, or a stone played
    under the opponent's threat square); ``deeper``: the mistake needs more than one ply of
    look-ahead to see.
    """
    if _winning_actions(game, state):
        return "missed_immediate_win"
    after = game.play(state, action)
    if not game.is_terminal(after) and _winning_actions(game, after):
        return "allowed_immediate_loss"
    return "deeper"


# ---------------------------------------------------------------------------- games
def play_games(game: Game, player: PolicyPlayer | Callable, opponent: Callable, n_games: int, seed: int = 0,
               opening_plies: int = 0, keep_moves: bool = False) -> dict:
    """`n_games` games against `opponent` (half as first player, half as second), batched.

    `player` is the side measured: a `PolicyPlayer` (its moves batched over all live games)
    or any player ``(game, state, rng) -> action`` such as the scripted opponents, so that
    the ladder itself can be measured on the same openings.

    With ``opening_plies > 0`` games come in pairs that start from the same opening of that
    many uniformly random moves, the agent taking one seat in the first game of the pair and
    the other seat in the second: a greedy agent against a nearly deterministic opponent
    (alpha-beta whose ties are rare) would otherwise replay one game per colour, and a win
    rate over such games measures a single game.

    Returns wins, draws and losses for each colour and overall, from the agent's side; with
    `keep_moves` also ``"moves"``: one ``{"seat", "actions", "result"}`` per game (the
    agent's seat, every action from the empty board, opening included, and the result for
    the agent), for post-mortems such as `agents.diagnostics.where_games_slip`.
    """
    if n_games < 2:
        raise ValueError(f"n_games must be at least 2 (one per colour), got {n_games}")
    if opening_plies < 0:
        raise ValueError(f"opening_plies must be >= 0, got {opening_plies}")
    rng = np.random.default_rng(seed)
    seats = np.arange(n_games) % 2  # the agent's seat in each game
    openings, opening_actions = [], []
    for _ in range((n_games + 1) // 2):
        opening, actions = game.initial_state(), []
        for _ in range(opening_plies):
            if game.is_terminal(opening):
                break
            actions.append(int(rng.choice(game.legal_actions(opening))))
            opening = game.play(opening, actions[-1])
        openings.append(opening)
        opening_actions.append(actions)
    states = [openings[i // 2] for i in range(n_games)]  # game 2j and 2j+1 share opening j (states are immutable)
    history = [list(opening_actions[i // 2]) for i in range(n_games)]

    def move(i: int, action: int) -> None:
        states[i] = game.play(states[i], action)
        history[i].append(action)

    while True:
        live = [i for i, s in enumerate(states) if not game.is_terminal(s)]
        if not live:
            break
        agent_turn = [i for i in live if game.to_play(states[i]) == seats[i]]
        agent_moved = set(agent_turn)
        if agent_turn and hasattr(player, "act"):
            obs = np.stack([game.observation(states[i]) for i in agent_turn])
            masks = np.stack([game.legal_mask(states[i]) for i in agent_turn])
            for i, a in zip(agent_turn, player.act(obs, masks)):
                move(i, int(a))
        else:
            for i in agent_turn:
                move(i, int(player(game, states[i], rng)))
        for i in live:
            if i not in agent_moved and not game.is_terminal(states[i]):
                move(i, int(opponent(game, states[i], rng)))
    results = np.array([game.returns(s, int(seat)) for s, seat in zip(states, seats)])
    out: dict = {"games": n_games, "opening_plies": opening_plies}
    for label, sel in (("as_first", seats == 0), ("as_second", seats == 1), ("all", np.ones(n_games, bool))):
        r = results[sel]
        out[label] = {"win": float((r > 0).mean()), "draw": float((r == 0).mean()), "loss": float((r < 0).mean())}
    if keep_moves:
        out["moves"] = [{"seat": int(seat), "actions": actions, "result": int(result)}
                        for seat, actions, result in zip(seats, history, results)]
    return out


# ---------------------------------------------------------------------------- everything
def ladder_opponents(game: Game) -> dict[str, Callable]:
    """The opponents the agent is measured against, weakest first: uniform random, then the
    game's `baseline_players` (Connect Four: win-or-block, depth-2 and depth-4 alpha-beta)."""
    return {"random": random_opponent, **game.baseline_players()}


DEFAULT_OPPONENT = {"connect4": "alphabeta-2"}  # the opponent of the README's targets


def default_opponent(game: Game) -> str:
    """The ladder opponent a single-opponent measurement (a post-mortem) uses by default:
    depth-2 alpha-beta for Connect Four, else the game's strongest ladder opponent (the last;
    tic-tac-toe and Nim: the perfect player)."""
    ladder = ladder_opponents(game)
    name = DEFAULT_OPPONENT.get(game.name)
    return name if name in ladder else list(ladder)[-1]


def validate_suite_settings(games_per_opponent: int, decisive: int, max_positions: int | None = None,
                            opening_plies: int = 0) -> None:
    """Raise `ValueError` naming the first setting of an evaluation that cannot be met."""
    if games_per_opponent < 0 or games_per_opponent == 1:
        raise ValueError(f"games per opponent must be 0 (no games) or at least 2 (one per colour), "
                         f"got {games_per_opponent}")
    if decisive < 0:
        raise ValueError(f"the decisive set size must be >= 0 (0: none), got {decisive}")
    if max_positions is not None and max_positions < 0:
        raise ValueError(f"the cap on positions per set must be >= 0 (0: all), got {max_positions}")
    if opening_plies < 0:
        raise ValueError(f"opening plies must be >= 0, got {opening_plies}")


@dataclass
class EvaluationSuite:
    """The fixed positions and opponents a run is measured against (built once, reused).

    :param game: the game.
    :param games_per_opponent: games against each ladder opponent (split between colours).
    :param decisive: size of the sampled decisive set (0 to skip).
    :param max_positions: cap on positions used from each named set (None = all).
    :param seed: seeds the decisive sample, the openings and the opponents' tie-breaking.
    :param opening_plies: games start from random openings of this many moves, each opening
        played once with each colour (see `play_games`).
    :param symmetrize: the agent averages its policy over the game's symmetric views of the
        board (see `PolicyPlayer`); False measures the network on the board as given.
    """

    game: Game
    games_per_opponent: int = 200
    decisive: int = 300
    max_positions: int | None = None
    seed: int = 0
    opening_plies: int = 2
    symmetrize: bool = True

    def __post_init__(self) -> None:
        validate_suite_settings(self.games_per_opponent, self.decisive, self.max_positions, self.opening_plies)
        self.sets: list[LabelledSet] = []
        for name, texts in self.game.evaluation_sets().items():
            labelled = label_set(self.game, name, texts)  # whole sets: their labels ship with the project
            if self.max_positions:
                cap = self.max_positions
                labelled = LabelledSet(name, labelled.texts[:cap], labelled.scores[:cap], f"{labelled.source}, first {cap}")
            self.sets.append(labelled)
        if self.decisive:
            self.sets.append(decisive_positions(self.game, self.decisive, seed=self.seed))
        self.opponents = ladder_opponents(self.game)
        log.info("evaluation of %r: move quality on %s; games against %s", self.game,
                 ", ".join(f"{s.name} ({len(s)})" for s in self.sets) or "no position set", ", ".join(self.opponents))

    def player(self, policy: Any) -> PolicyPlayer:
        """The agent as this suite measures it: greedy, over the symmetric views if `symmetrize`."""
        return PolicyPlayer(policy, symmetries=self.game.symmetries() if self.symmetrize else None)

    def run(self, policy: Any) -> dict:
        """Evaluate a policy: move quality on every set (and how symmetric the network alone
        plays there), then games against every opponent.

        Returns the evaluation entries of a record's JSON object (``views``, ``sets``, ``move_quality``,
        ``games``, ``symmetry_consistency``), to be completed by the caller and read or written as an
        `agents.records.EvaluationRecord`, which defines them."""
        player = self.player(policy)
        record: dict = {"views": max(len(player.symmetries), 1),
                        "sets": {labelled.name: labelled.description() for labelled in self.sets},
                        "move_quality": {}, "games": {}}
        for labelled in self.sets:
            record["move_quality"][labelled.name] = move_quality(player, self.game, labelled)
        if len(self.game.symmetries()) > 1:  # the network alone, whatever the agent's views
            network = PolicyPlayer(policy)
            record["symmetry_consistency"] = {labelled.name: symmetry_consistency(network, self.game, labelled.texts)
                                              for labelled in self.sets}
        for name, opponent in self.opponents.items():
            if self.games_per_opponent:
                record["games"][name] = play_games(self.game, player, opponent, self.games_per_opponent, seed=self.seed,
                                                   opening_plies=self.opening_plies)
        return record


def agent_description(record: EvaluationRecord) -> str:
    """How the agent of an evaluation record played, e.g. "network alone, greedy, mean of 2 symmetric views"."""
    views = record.agent_views
    return "network alone, greedy" + (f", mean of {views} symmetric views" if views > 1 else ", one view")


def summarise(record: EvaluationRecord) -> list[tuple[str, str]]:
    """``(metric, value)`` rows of an evaluation record, for tables and logs."""
    rows = []
    for name, q in (record.move_quality or {}).items():
        rows.append((f"{name}: good / perfect moves", f"{q.good_rate:.1%} / {q.perfect_rate:.1%}  (n={q.n})"))
        if q.errors and sum(q.errors.values()):
            e = q.errors
            rows.append((f"{name}: errors by kind", f"{e['allowed_immediate_loss']} allow a win / "
                                                     f"{e['missed_immediate_win']} miss a win / {e['deeper']} deeper"))
    for name, rate in (record.symmetry_consistency or {}).items():
        rows.append((f"{name}: network alone, moves consistent under symmetry", f"{rate:.1%}"))
    for name, g in (record.games or {}).items():
        f, s = g.as_first, g.as_second
        rows.append((f"vs {name}: W/D/L first | second",
                     f"{f.win:.0%}/{f.draw:.0%}/{f.loss:.0%} | {s.win:.0%}/{s.draw:.0%}/{s.loss:.0%}"))
    return rows
