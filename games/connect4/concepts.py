"""Ground-truth Connect Four concepts, relative to the side to move ("me") and its opponent.

Definitions follow ``../shared/research/probing.md`` section 4 (bitboard formulas after
Pons and Allis). Rows are counted 1..H from the bottom (Allis): a threat square is
*odd* in rows 1, 3, 5 and *even* in rows 2, 4, 6. A threat square of a side is an empty
square that would complete four of its stones, playable or not. Spatial labels are the
``H*W`` squares row-major with row 0 on top (as the observation planes).

Tiers: ``static`` (bitboard arithmetic), ``search`` (a few plies), ``rules`` (instances
of Allis' nine strategic rules), ``solver`` (exact solution, through a shared solver and
optionally an SQLite `SolutionCache` passed as ``cache["solution_cache"]``).

One name per concept: ``forced_win_in_k`` is registered for k = 3, 5, 7; k = 1 is exactly
``win_in_1`` (a forced win within one ply is a win at once), so ``forced_win_in_1`` is an
alias of ``win_in_1`` (`games.concepts.aliases`), not a second concept. ``n_lowinverse``
and ``n_highinverse`` are both kept although they are equal on boards of even height
(7x6, 5x4, 6x4): a column's empty squares are contiguous up to the top row, so there
every Vertical (lower square in an even row) is the lower pair of a Highinverse triple and
the two counts agree; on odd heights (6x5, 8x7) the topmost Vertical of a column has no
square above it and the counts differ. Their square maps differ on every size (a
Highinverse also uses the square above). `games.datasets.near_duplicate_concepts`
reports such pairs per dataset.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from numba import njit

from games.concepts import Concept, register_alias, register_concept
from games.connect4.bitboard import ONE, ZERO, winning_squares
from games.connect4.position import Position
from games.connect4.tables import board_tables
from solver import default_solver
from solver.benchmarks import remaining_plies

GAME = "connect4"


def _arrays(states: Sequence[Position]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cur = np.array([s.current for s in states], dtype=np.uint64)
    mask = np.array([s.mask for s in states], dtype=np.uint64)
    moves = np.array([s.moves for s in states], dtype=np.int64)
    return cur, mask, moves


@njit(cache=True)
def _threat_maps(cur, mask, height, full, out_me, out_opp):
    for i in range(cur.shape[0]):
        out_me[i] = winning_squares(cur[i], mask[i], height, full)
        out_opp[i] = winning_squares(cur[i] ^ mask[i], mask[i], height, full)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).astype(np.int64)


def _spatial(bits: np.ndarray, tables: dict) -> np.ndarray:
    return ((bits[:, None] >> tables["square_bits"][None, :]) & np.uint64(1)).astype(bool)


class _Features:
    """Bitmaps shared by the static concepts of one batch (computed once per batch)."""

    def __init__(self, game, states: Sequence[Position]) -> None:
        self.t = board_tables(game.width, game.height)
        size = self.t["size"]
        self.cur, self.mask, self.moves = _arrays(states)
        self.opp = self.cur ^ self.mask
        full = np.uint64(size.full)
        self.playable = (self.mask + np.uint64(size.bottom)) & full
        self.w_me = np.zeros_like(self.cur)
        self.w_opp = np.zeros_like(self.cur)
        if len(states):
            _threat_maps(self.cur, self.mask, size.height, full, self.w_me, self.w_opp)
        self.win_now = (self.w_me & self.playable) != 0
        self.opp_now = self.w_opp & self.playable  # squares I must block


def _features(game, states, cache: dict) -> _Features:
    """The batch's shared bitmaps, computed once per `label` call."""
    if "connect4_features" not in cache:
        cache["connect4_features"] = _Features(game, states)
    return cache["connect4_features"]


# ------------------------------------------------------------------------------ static concepts
def _static(name: str, kind: str, perspective: str, doc: str, tier: str = "static", params: dict | None = None):
    """Register `fn(features) -> labels` as a concept computed from the batch's bitmaps."""

    def decorator(fn):
        register_concept(GAME, Concept(name, kind, perspective, tier, doc,
                                       lambda game, states, cache: fn(_features(game, states, cache)), params or {}))
        return fn

    return decorator


@_static("playable_squares", "spatial", "none", "The lowest empty square of every column that is not full.")
def _playable(f):
    return _spatial(f.playable, f.t)


@_static("threat_squares_me", "spatial", "me", "Empty squares that would complete four of my stones, playable or not.")
def _threats_me_map(f):
    return _spatial(f.w_me, f.t)


@_static("threat_squares_opp", "spatial", "opp", "Empty squares that would complete four of the opponent's stones.")
def _threats_opp_map(f):
    return _spatial(f.w_opp, f.t)


@_static("win_in_1", "binary", "me", "I can complete four with my next move (alias: forced_win_in_1).",
         params={"columns": "winning_moves"})
def _win_in_1(f):
    return f.win_now


@_static("forced_block", "binary", "opp", "I cannot win at once and the opponent has a playable threat I must block.",
         params={"columns": "blocking_moves"})
def _forced_block(f):
    return ~f.win_now & (f.opp_now != 0)


@_static("winning_moves", "per_column", "me", "Legal columns that complete four of mine at once.")
def _winning_moves(f):
    out = np.zeros((f.cur.size, f.t["columns"].size), dtype=bool)
    for c, (col, bottom) in enumerate(zip(f.t["columns"], f.t["bottoms"])):
        out[:, c] = (((f.mask + bottom) & col) & f.w_me) != 0
    return out


@_static("blocking_moves", "per_column", "opp",
         "When I cannot win at once: legal columns that take a square where the opponent would complete four.")
def _blocking_moves(f):
    out = np.zeros((f.cur.size, f.t["columns"].size), dtype=bool)
    for c, (col, bottom) in enumerate(zip(f.t["columns"], f.t["bottoms"])):
        out[:, c] = ((((f.mask + bottom) & col) & f.w_opp) != 0) & ~f.win_now
    return out


@_static("lost_in_1", "binary", "opp", "I cannot win at once and the opponent has two or more playable threats.",
         params={"columns": "blocking_moves"})
def _lost_in_1(f):
    return ~f.win_now & (_popcount(f.opp_now) >= 2)


@_static("poisoned_squares", "spatial", "opp", "Playable squares directly below an opponent threat: playing there lets it win.")
def _poisoned(f):
    return _spatial(f.playable & (f.w_opp >> np.uint64(1)), f.t)


@_static("n_threats_me", "count", "me", "Number of my threat squares (playable or not).")
def _n_threats_me(f):
    return _popcount(f.w_me)


@_static("n_threats_opp", "count", "opp", "Number of the opponent's threat squares (playable or not).")
def _n_threats_opp(f):
    return _popcount(f.w_opp)


@_static("n_odd_threats_me", "count", "me", "My threat squares not yet playable in odd rows (1, 3, 5 from the bottom).")
def _n_odd_me(f):
    return _popcount(f.w_me & ~f.playable & f.t["odd_rows"])


@_static("n_even_threats_me", "count", "me", "My threat squares not yet playable in even rows (2, 4, 6 from the bottom).")
def _n_even_me(f):
    return _popcount(f.w_me & ~f.playable & f.t["even_rows"])


@_static("n_odd_threats_opp", "count", "opp", "The opponent's threat squares not yet playable in odd rows.")
def _n_odd_opp(f):
    return _popcount(f.w_opp & ~f.playable & f.t["odd_rows"])


@_static("n_even_threats_opp", "count", "opp", "The opponent's threat squares not yet playable in even rows.")
def _n_even_opp(f):
    return _popcount(f.w_opp & ~f.playable & f.t["even_rows"])


@_static("n_stacked_threats_me", "count", "me", "Pairs of my threat squares directly on top of each other.")
def _stacked_me(f):
    return _popcount(f.w_me & (f.w_me >> np.uint64(1)))


@_static("n_stacked_threats_opp", "count", "opp", "Pairs of the opponent's threat squares directly on top of each other.")
def _stacked_opp(f):
    return _popcount(f.w_opp & (f.w_opp >> np.uint64(1)))


@_static("n_shared_threat_squares", "count", "both", "Empty squares that complete four for both sides.")
def _shared(f):
    return _popcount(f.w_me & f.w_opp)


@_static("centre_control", "count", "both", "My stones minus the opponent's stones in the centre column(s).")
def _centre(f):
    return _popcount(f.cur & f.t["centre"]) - _popcount(f.opp & f.t["centre"])


@_static("first_player_to_move", "binary", "none", "The side to move is the first player (an even number of stones).")
def _first(f):
    return f.moves % 2 == 0


@_static("follow_up_parity", "binary", "opp",
         "The first player is to move and every column has an even number of empty squares, so the second player "
         "can answer in the same column and take every even square (Allis' follow-up).")
def _follow_up(f):
    size = f.t["size"]
    empties = np.stack([size.height - _popcount(f.mask & col) for col in f.t["columns"]], axis=1)
    return (f.moves % 2 == 0) & np.all(empties % 2 == 0, axis=1)


@_static("n_open_lines_me", "count", "me", "Lines of four that hold none of the opponent's stones (still open for me).")
def _open_me(f):
    return np.sum((f.t["lines"][None, :] & f.opp[:, None]) == 0, axis=1)


@_static("n_open_lines_opp", "count", "opp", "Lines of four that hold none of my stones (still open for the opponent).")
def _open_opp(f):
    return np.sum((f.t["lines"][None, :] & f.cur[:, None]) == 0, axis=1)


@_static("safe_moves", "per_column", "me", "Legal columns after which the opponent cannot win at once (a winning move is safe).")
def _safe(f):
    out = np.zeros((f.cur.size, f.t["columns"].size), dtype=bool)
    for c, (col, bottom) in enumerate(zip(f.t["columns"], f.t["bottoms"])):
        mv = (f.mask + bottom) & col
        wins = (mv & f.w_me) != 0
        leaves_threat = (f.opp_now & ~mv) != 0  # an opponent threat stays playable
        under_threat = (f.w_opp & (mv << np.uint64(1))) != 0  # it opens the square above to the opponent
        out[:, c] = (mv != 0) & (wins | ~(leaves_threat | under_threat))
    return out


# ------------------------------------------------------------------------------ short search
def _child_maps(f: _Features):
    """Per column: its index and the bit a stone dropped there lands on (0 if full)."""
    for c, (col, bottom) in enumerate(zip(f.t["columns"], f.t["bottoms"])):
        yield c, (f.mask + bottom) & col


@_static("double_threat_moves", "per_column", "me",
         "Non-winning legal columns after which I have two or more playable threats and the opponent cannot win at "
         "once (a fork).", tier="search")
def _forks(f):
    size = f.t["size"]
    full = np.uint64(size.full)
    out = np.zeros((f.cur.size, size.width), dtype=bool)
    for c, mv in _child_maps(f):
        me2, mask2 = f.cur | mv, f.mask | mv
        p2 = (mask2 + np.uint64(size.bottom)) & full
        w_me2 = np.zeros_like(me2)
        w_opp2 = np.zeros_like(me2)
        if me2.size:
            _threat_maps(me2, mask2, size.height, full, w_me2, w_opp2)
        # _threat_maps gives (threats of me2, threats of mask2 ^ me2 = the opponent)
        legal = mv != 0
        wins = (mv & f.w_me) != 0
        out[:, c] = legal & ~wins & (_popcount(w_me2 & p2) >= 2) & ((w_opp2 & p2) == 0)
    return out


@_static("losing_moves", "per_column", "me", "Legal columns after which the opponent can win at once (complement of safe moves).",
         tier="search")
def _losing(f):
    legal = np.stack([((f.mask + b) & col) != 0 for col, b in zip(f.t["columns"], f.t["bottoms"])], axis=1)
    return legal & ~_safe(f)


@njit(cache=True)
def _forced_win(cur, mask, plies, height, bottom, full):
    """True if the side to move can force four within `plies` plies (its own moves included)."""
    possible = (mask + bottom) & full
    if winning_squares(cur, mask, height, full) & possible:
        return plies >= 1
    if plies < 3:
        return False
    opp = cur ^ mask
    opp_win = winning_squares(opp, mask, height, full)
    rest = possible
    while rest:
        mv = rest & (ZERO - rest)
        rest ^= mv
        if (opp_win & possible & ~mv) or (opp_win & (mv << ONE)):
            continue  # the opponent would win at once
        mask2 = mask | mv
        me2 = cur | mv
        replies = (mask2 + bottom) & full
        if replies == ZERO:
            continue  # the board is full: a draw
        all_lose = True
        rr = replies
        while rr:
            reply = rr & (ZERO - rr)
            rr ^= reply
            if not _forced_win(me2, mask2 | reply, plies - 2, height, bottom, full):
                all_lose = False
                break
        if all_lose:
            return True
    return False


@njit(cache=True)
def _forced_win_batch(cur, mask, plies, height, bottom, full, out):
    for i in range(cur.shape[0]):
        out[i] = _forced_win(cur[i], mask[i], plies, height, bottom, full)


def forced_win_concept(plies: int) -> Concept:
    """The concept "I can force four within `plies` plies" (register it for other odd depths;
    ``plies=1`` is ``win_in_1``, registered as the alias ``forced_win_in_1``)."""
    if plies < 1:
        raise ValueError(f"plies must be >= 1, got {plies}")

    def compute(game, states, cache):
        f = _features(game, states, cache)
        size = f.t["size"]
        out = np.zeros(f.cur.size, dtype=bool)
        if out.size:
            _forced_win_batch(f.cur, f.mask, plies, size.height, np.uint64(size.bottom), np.uint64(size.full), out)
        return out

    return Concept(f"forced_win_in_{plies}", "binary", "me", "search",
                   f"I can force four within {plies} plies (my moves and the opponent's replies), whatever the opponent does.",
                   compute, {"plies": plies})


for _k in (3, 5, 7):
    register_concept(GAME, forced_win_concept(_k))
register_alias(GAME, "forced_win_in_1", "win_in_1", "a forced win within 1 ply is a win at once")


# ------------------------------------------------------------------------------ solver
def _solved(game, states, cache: dict) -> dict:
    """Exact scores of the states and of every column (computed once per batch).

    If ``cache["solution_cache"]`` holds a `solver.cache.SolutionCache`, known positions
    are read from it and new solutions are written to it.
    """
    if "connect4_solved" in cache:
        return cache["connect4_solved"]
    solver = default_solver(game.width, game.height)
    store = cache.get("solution_cache")
    known = store.get_many(states) if store is not None else [None] * len(states)
    todo = [i for i, k in enumerate(known) if k is None]
    scores = np.zeros(len(states), dtype=np.int64)
    columns = np.full((len(states), game.width), np.nan)
    for i, k in enumerate(known):
        if k is not None:
            scores[i] = k[0]
            columns[i] = [np.nan if v is None else v for v in k[1]]
    if todo:
        fresh = [states[i] for i in todo]
        scores[todo], _ = solver.solve_many(fresh)
        children, where = [], []
        for i in todo:
            s = states[i]
            for c in s.legal_moves():
                if s.is_winning_move(c):
                    columns[i, c] = (game.width * game.height + 1 - s.moves) // 2
                else:
                    children.append(s.play(c))
                    where.append((i, c))
        child_scores, _ = solver.solve_many(children)  # one compiled loop for the whole batch
        for (i, c), v in zip(where, child_scores):
            columns[i, c] = -v
        if store is not None:
            store.put_many(fresh, scores[todo], [list(columns[i]) for i in todo])
    cache["connect4_solved"] = {"score": scores, "columns": columns}
    return cache["connect4_solved"]


def _solver_concept(name: str, kind: str, doc: str):
    def decorator(fn):
        register_concept(GAME, Concept(name, kind, "me", "solver", doc, lambda game, states, cache: fn(game, states, _solved(game, states, cache))))
        return fn

    return decorator


@_solver_concept("value", "categorical", "Game value for me under perfect play: -1 loss, 0 draw, +1 win.")
def _value(game, states, s):
    return np.sign(s["score"]).astype(np.int64)


@_solver_concept("score", "count", "Exact score for me (Pons: positive wins, 22 - k on 7x6 for a win with my k-th stone).")
def _score(game, states, s):
    return s["score"].astype(np.int64)


@_solver_concept("column_scores", "per_column", "Exact score for me of playing each column (NaN if full).")
def _column_scores(game, states, s):
    return s["columns"]


@_solver_concept("optimal_moves", "per_column", "Columns with the best exact score.")
def _optimal(game, states, s):
    best = np.nanmax(np.where(np.isnan(s["columns"]), -np.inf, s["columns"]), axis=1, initial=-np.inf)
    return s["columns"] == best[:, None]


@_solver_concept("good_moves", "per_column", "Columns that keep the game value (win stays win, draw stays draw).")
def _good(game, states, s):
    value = np.sign(s["score"])[:, None]
    return ~np.isnan(s["columns"]) & (np.sign(np.nan_to_num(s["columns"], nan=-99)) == value)


@_solver_concept("n_good_moves", "count", "Number of value-preserving columns.")
def _n_good(game, states, s):
    return _good(game, states, s).sum(axis=1)


@_solver_concept("only_move", "binary", "Exactly one column keeps the game value.")
def _only(game, states, s):
    return _good(game, states, s).sum(axis=1) == 1


@_solver_concept("decisive", "binary", "The legal moves reach at least two outcome classes (win / draw / loss).")
def _decisive(game, states, s):
    signs = np.sign(s["columns"])
    classes = [np.any(signs == v, axis=1) for v in (-1, 0, 1)]
    return np.sum(classes, axis=0) >= 2


@_solver_concept("moves_to_end", "count", "Plies until the game ends under perfect play (the winner wins fast, the loser lasts).")
def _to_end(game, states, s):
    return np.array([remaining_plies(int(sc), st.moves, game.width, game.height) for sc, st in zip(s["score"], states)],
                    dtype=np.int64)


# ------------------------------------------------------------------------------ Allis' rules
# Static enumerations of the instances of Allis' nine strategic rules ("A Knowledge-based
# Approach of Connect-Four", 1988; requirements as tabulated in probing.md 4.4). Rows are
# Allis' 1..H from the bottom. Rules that do not depend on whose stones are where
# (Claimeven, Baseinverse, Vertical, Lowinverse, Highinverse, Baseclaim) are labelled
# once; the group-based ones (Aftereven, Before, Specialbefore) once for each side taken
# as the controller of zugzwang. Counting instances is not VICTOR's search for a
# compatible set of them: these are the building blocks, not a proof.
_RULE_DOCS = {
    "claimeven": "two vertically adjacent empty squares, the upper in an even row",
    "baseinverse": "two directly playable squares",
    "vertical": "two vertically adjacent empty squares, the upper in an odd row",
    "lowinverse": "two Verticals in different columns",
    "highinverse": "two columns each with three adjacent empty squares (even, odd, even rows from below)",
    "baseclaim": "three directly playable squares a, b, c with the square above b in an even row",
    "aftereven": "a group of the controller whose every empty square is the upper square of a Claimeven, none in the top row",
    "before": "a non-vertical group of the controller with no empty square in the top row, each odd empty square with an "
              "empty square below (so each empty square has a Vertical or Claimeven)",
    "specialbefore": "a Before with exactly one directly playable empty square, with another directly playable square "
                     "outside the group's columns",
}
# Said in the docs of the count concepts (not of the square maps, which differ on every board).
_RULE_NOTES = {
    "lowinverse": " Equals n_highinverse on boards of even height (7x6, 5x4), where every Vertical is the lower pair "
                  "of a Highinverse column; differs on odd heights (6x5, 8x7).",
    "highinverse": " Equals n_lowinverse on boards of even height (7x6, 5x4); differs on odd heights (6x5, 8x7).",
}


@functools.lru_cache(maxsize=None)
def _rule_tables(width: int, height: int) -> dict:
    t = dict(board_tables(width, height))
    size = t["size"]
    t["top"] = np.uint64(sum(size.bit(c, height - 1) for c in range(width)))
    t["bottom"] = np.uint64(size.bottom)
    non_vertical, line_columns = [], []
    for c in range(width):
        for r in range(height):
            for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
                cells = [(c + k * dc, r + k * dr) for k in range(4)]
                if all(0 <= cc < width and 0 <= rr < height for cc, rr in cells):
                    non_vertical.append(dc != 0)
                    line_columns.append(sum(((1 << height) - 1) << (cc * (height + 1)) for cc in {cc for cc, _ in cells}))
    t["non_vertical"] = np.array(non_vertical, dtype=bool)
    t["line_columns"] = np.array(line_columns, dtype=np.uint64)
    return t


def _column_counts(bits: np.ndarray, t: dict) -> np.ndarray:
    return np.stack([_popcount(bits & col) for col in t["columns"]], axis=1)


def _pairs_across_columns(per_column: np.ndarray) -> np.ndarray:
    total = per_column.sum(axis=1)
    return (total * total - (per_column * per_column).sum(axis=1)) // 2


def allis_rules(game, states, cache: dict) -> dict:
    """Counts and square bitmaps of every rule's instances (computed once per batch)."""
    if "connect4_allis" in cache:
        return cache["connect4_allis"]
    f = _features(game, states, cache)
    t = _rule_tables(game.width, game.height)
    one = np.uint64(1)
    empty = np.uint64(t["size"].full) & ~f.mask
    odd, even = t["odd_rows"], t["even_rows"]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # lower squares of the pairs / triples
    claim_low = empty & (empty >> one) & odd
    vert_low = empty & (empty >> one) & even
    high_low = empty & (empty >> one) & (empty >> np.uint64(2)) & even
    out["claimeven"] = (_popcount(claim_low), claim_low | (claim_low << one))
    out["vertical"] = (_popcount(vert_low), vert_low | (vert_low << one))
    k = _popcount(f.playable)
    out["baseinverse"] = (k * (k - 1) // 2, np.where(k >= 2, f.playable, np.uint64(0)))
    for name, low, span in (("lowinverse", vert_low, 2), ("highinverse", high_low, 3)):
        per_col = _column_counts(low, t)
        squares = low
        for s in range(1, span):
            squares = squares | (low << np.uint64(s))
        enough = (per_col > 0).sum(axis=1) >= 2
        out[name] = (_pairs_across_columns(per_col), np.where(enough, squares, np.uint64(0)))
    b = f.playable & (empty >> one) & odd  # playable squares whose upper neighbour is even
    count = _popcount(b) * np.maximum(k - 1, 0) * np.maximum(k - 2, 0) // 2
    out["baseclaim"] = (count, np.where(count > 0, f.playable | (b << one), np.uint64(0)))
    lines = t["lines"]
    for side, (mine, theirs) in (("me", (f.cur, f.opp)), ("opp", (f.opp, f.cur))):
        free = (lines[None, :] & theirs[:, None]) == 0  # groups the side can still complete
        e = lines[None, :] & empty[:, None]
        has_empty = e != 0
        no_top = (e & t["top"]) == 0
        after = free & has_empty & no_top & ((e & ~even) == 0) & (((e >> one) & empty[:, None]) == (e >> one))
        odd_e = e & odd
        before = (free & has_empty & no_top & t["non_vertical"][None, :] & ((odd_e & t["bottom"]) == 0)
                  & (((odd_e >> one) & empty[:, None]) == (odd_e >> one)))
        playable_e = _popcount(e & f.playable[:, None])
        outside = _popcount(f.playable[:, None] & ~t["line_columns"][None, :])
        special = before & (playable_e == 1) & (outside > 0)

        def squares(sel, extra):
            return np.bitwise_or.reduce(np.where(sel, extra, np.uint64(0)), axis=1)

        out[f"aftereven_{side}"] = (after.sum(axis=1), squares(after, e | (e >> one)))
        out[f"before_{side}"] = (before.sum(axis=1), squares(before, e | (e << one)))
        out[f"specialbefore_{side}"] = (np.where(special, outside, 0).sum(axis=1),
                                        squares(special, e | (e << one) | (f.playable[:, None] & ~t["line_columns"][None, :])))
    cache["connect4_allis"] = {k: (np.asarray(c, dtype=np.int64), bits) for k, (c, bits) in out.items()}
    return cache["connect4_allis"]


def _register_rule(key: str, rule: str, perspective: str) -> None:
    who = {"none": "", "me": " (me as the controller of zugzwang)", "opp": " (the opponent as the controller)"}[perspective]
    doc = _RULE_DOCS[rule] + who + "."
    register_concept(GAME, Concept(f"n_{key}", "count", perspective, "rules",
                                   f"Number of {rule.capitalize()} instances: " + doc + _RULE_NOTES.get(key, ""),
                                   lambda game, states, cache: allis_rules(game, states, cache)[key][0]))
    register_concept(GAME, Concept(f"{key}_squares", "spatial", perspective, "rules",
                                   f"Squares used by some {rule.capitalize()} instance: " + doc,
                                   lambda game, states, cache: _spatial(allis_rules(game, states, cache)[key][1],
                                                                        board_tables(game.width, game.height))))


for _rule in ("claimeven", "baseinverse", "vertical", "lowinverse", "highinverse", "baseclaim"):
    _register_rule(_rule, _rule, "none")
for _rule in ("aftereven", "before", "specialbefore"):
    for _side in ("me", "opp"):
        _register_rule(f"{_rule}_{_side}", _rule, _side)
