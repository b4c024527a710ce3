"""Numba search kernels of the exact Connect Four solver.

Negamax with alpha-beta pruning in the line of Pascal Pons' solver (blog "Solving
Connect Four", part 12): only non-losing moves are searched, moves are ordered by the
number of threats they create (centre first on ties), a transposition table (TT) keeps
upper and lower bounds, and the root bisects the score range with null-window searches.
Each addition is a switch in `flags`, measured by `scripts/bench_solver.py`:

* ``USE_PREFETCH``: fetch the children's TT slots when a node is entered (speed only);
* ``USE_TT_MOVE``: the TT stores the move that cut or raised alpha; it is searched first,
  and the other moves are ordered only if it fails to cut;
* ``USE_ETC``: enhanced transposition cutoffs, a child already known to refute beta cuts
  before any child is searched (only where at least `ETC_MIN_EMPTY` squares are empty);
* ``USE_LAZY_ETC``: the same check, but only once the first move failed to cut;
  both ETCs run only once a search has grown onto the main table (small searches do not
  repay the extra probes);
* ``USE_TWO_TIER``: two slots per bucket, one kept for the bigger subtree, one always
  replaced (instead of one always-replaced slot);
* ``USE_SYMMETRY``: a position and its mirror image share a TT entry in the opening.

With every switch off the algorithm is Pons' part 12. Every solve starts on a small
table that stays in the CPU cache and moves to the main table once it has searched
`ESCALATE_AT` nodes (the two tables never share entries, so no key can be misread).

What each idea buys, mean time per position on the first 300 positions of each set, the
ideas added one at a time, each configuration on its own specialised kernel
(results/bench_solver.json, AMD EPYC, 2026-12-07; End-Easy / Middle-Easy / Middle-Medium /
Begin-Easy / Begin-Medium). Timings on this virtual machine drift by 10-30% between runs
minutes apart, so only the large effects are firm: prefetch 1.3x / 1.4x / 1.8x / 1.4x /
1.7x (the search is bound by TT cache misses; fetching the children's slots on entry
overlaps them with move ordering). Two slots per bucket cost 2-13% on these short searches
(and about 12% a node on 5x4 and 6x4 boards) but halve long ones: without them the 4-stone
position ``4453`` took 6.4-7.1 s instead of 3.6-3.9 s (`scripts/bench_coldstart.py`; the
one-slot run's JSON was overwritten) and the 1-stone ``3`` 118-132 s instead of 53-59 s,
with a 2^22-slot main table; choosing the slot count per table at run time (one slot in
the small table) cost more than it saved (5x4 1.35x slower, Begin-Easy 1.15x), so both
tables have two. The small table 1.0-1.2x (small searches stay in cache); the TT move
first 1.0x. Compiling the switches into the kernel as constants (`kernels(W, H, flags)`,
what every default `Solver` uses) against reading them at run time: 1.36x / 0.92x / 1.10x /
1.07x / 1.08x here, 1.1-1.2x in interleaved A/B runs. Eager or lazy ETC and symmetry cut
nodes by a few percent but not time, so they are off. The main table's size barely
matters once buckets have two slots: 2^22 slots (32 MiB) ran Begin-Medium, Begin-Hard,
``4453`` and ``3`` as fast as 2^24 (128 MiB), hence the default; raise `tt_log2` for solves
of many minutes. Move ordering is the hottest code (about 40% of the samples of `perf` on
5x4 searches); reading the centre-first order from one folded constant instead of
recomputing it per column made it cheaper.

Against Pons' C++ built on the same machine and run interleaved on the same positions
(`scripts/bench_vs_pons.py`, results/bench_vs_pons.json, 2026-12-07) this search is 1.4x to
1.8x faster on all six 7x6 sets and 1.06x on 6x5, but 0.92x on 6x4 and 0.75x on 5x4: on
small boards his table fits in the CPU's cache, his search stops waiting on memory, and
ours spends more instructions per node (46 ns against his 35 ns on 5x4).

The board size is folded into the machine code: the search functions take W and H as
arguments and are inlined into one kernel compiled per size, which captures only those
two integers (so numba's disk cache recognises it in the next process). The recursion is
an explicit stack in one function: numba calls pass arrays with reference counting,
which costs more than a node.

Compilation: a kernel is compiled for exactly one signature (`KERNEL_SIGNATURE`) when
`kernels` is first called for a board size and a setting of the switches (or none: the
kernel that reads them at run time), and cached on disk by numba (``__pycache__`` next to this file,
or ``$NUMBA_CACHE_DIR``). On a fresh install that first compile takes 25 s on an idle
2-core machine (50-75 s on a busy one), nearly all of it in numba's typing and inlining
passes (LLVM's part is ~2 s), so a warning says so before it starts, and ``make install``
does it once at install time; later processes load the cache in 0.3-0.4 s
(`scripts/bench_coldstart.py`, results/bench_coldstart.json). Letting LLVM inline the small helpers instead of numba
made the compile slower (106 s against 63 s, measured together on a loaded 2-core machine).

Scores follow the benchmark convention (see `solver/__init__.py`).
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np
from numba import njit, types, uint64

from common.intrinsics import cycle_counter, leading_zeros64, prefetch
from games.connect4.bitboard import (ONE, ZERO, board_mask, bottom_mask, canonical_key, mirror, popcount,
                                     winning_squares)
from games.connect4.position import BoardSize

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- TT layout
# 2^k uint64 slots, grouped in buckets of two adjacent slots (one 16-byte pair, never
# split across cache lines). A slot holds, from the low bits up:
#     bound code (7) | best column + 1 (4) | work = bit length of subtree size (6) | key mod 2^47
# The bucket index is the top k-1 bits of key * HASH_MULT (odd). Two keys with equal low
# 47 bits differ by m * 2^47, which moves the product by an odd multiple of 2^47, so they
# fall in different buckets when k - 1 >= 17: the stored bits and the bucket identify the
# key exactly (no false hits) on every board size. An all-zero slot is empty (codes >= 1).
BOUND_BITS = 7
MOVE_BITS = 4
WORK_BITS = 6
MOVE_SHIFT = BOUND_BITS
WORK_SHIFT = BOUND_BITS + MOVE_BITS
INFO_BITS = BOUND_BITS + MOVE_BITS + WORK_BITS  # 17
KEY_BITS = 64 - INFO_BITS  # 47
MIN_TT_LOG2 = 64 - KEY_BITS + 1  # 18: buckets must number at least 2^17
HASH_MULT = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio (odd)
KEY_LOW = np.uint64((1 << KEY_BITS) - 1)
BOUND_MASK = np.uint64((1 << BOUND_BITS) - 1)
MOVE_MASK = np.uint64((1 << MOVE_BITS) - 1)
WORK_MASK = np.uint64((1 << WORK_BITS) - 1)

# indices into the int64 `stats` array shared with Python
NODES = 0  # nodes searched so far (all solves)
SHIFT_SMALL = 1  # 64 - log2(buckets) of the small table
SHIFT_MAIN = 2  # 64 - log2(buckets) of the main table
ESCALATE_AT = 3  # a solve moves from the small to the main table after this many nodes
SOLVE_START = 4  # NODES when the current solve began
BOOK_DEPTH = 5  # positions with at most this many stones are looked up in the book (-1: none)
BOOK_HITS = 6  # book lookups that found the position
MAIN_DIRTY = 7  # 1 once a search has written to the main table since it was last zeroed
N_STATS = 8

# bits of `flags`
USE_TT_MOVE = 1
USE_ETC = 2
USE_SYMMETRY = 4
USE_PREFETCH = 8
USE_TWO_TIER = 16
USE_LAZY_ETC = 32
ALL_FLAGS = USE_TT_MOVE | USE_ETC | USE_SYMMETRY | USE_PREFETCH | USE_TWO_TIER | USE_LAZY_ETC
PONS_PART12 = 0  # every switch off: the reference algorithm

ILLEGAL_SCORE = -1000  # marks a full column in per-column scores
SYMMETRY_MAX_MOVES = 12  # mirror keys cost 2W shifts per node: used only early on
ETC_MIN_EMPTY = 12  # eager ETC probes are paid at every node: only deep subtrees repay them

# the int64 stack: per ply, fixed fields then (column, score) pairs of the move list
S_ALPHA, S_BETA, S_NEXT, S_BEST, S_MOVES, S_COL, S_MIRRORED, S_NODES0, S_COUNT, S_PENDING = range(10)
S_LIST = 10
# the uint64 stack: per ply
U_CUR, U_MASK, U_KEY, U_CANDIDATES = range(4)
ROW_U = 4


def stack_sizes(width: int, height: int) -> tuple[int, int]:
    """Lengths of the uint64 and int64 stacks a search on a W x H board needs."""
    plies = width * height + 1
    return plies * ROW_U, plies * (S_LIST + 2 * width)


# ---------------------------------------------------------------------------- helpers
@njit(cache=True, inline="always")
def _bit_length(x):
    return np.int64(64 - leading_zeros64(uint64(x)))


@njit(cache=True)
def book_find(keys, key):
    """Index of `key` in the sorted array `keys`, or -1."""
    lo = 0
    hi = keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < keys.shape[0] and keys[lo] == key:
        return lo
    return -1


@njit(cache=True, inline="always")
def tdiv2(x):
    """Integer division by two rounding toward zero (C semantics, as in the reference solver)."""
    return -((-x) // 2) if x < 0 else x // 2


@njit(cache=True, inline="always")
def column_bits(col, height):
    """The `height` squares of column `col`."""
    return ((ONE << uint64(height)) - ONE) << uint64(col * (height + 1))


@njit(cache=True, inline="always")
def centre_first(i, width):
    """The i-th column in centre-first order: 3, 2, 4, 1, 5, 0, 6 on seven columns."""
    return width // 2 + (1 - 2 * (i % 2)) * ((i + 1) // 2)


@njit(cache=True, inline="always")
def tt_key(cur, mask, moves, use_symmetry, width, height):
    """TT key (``cur + mask``; early on, the smaller of it and the mirror's) and whether mirrored."""
    key = cur + mask
    if use_symmetry and moves <= SYMMETRY_MAX_MOVES:
        mkey = mirror(cur, width, height) + mirror(mask, width, height)
        if mkey < key:
            return mkey, True
    return key, False


@njit(cache=True, inline="always")
def bucket(key, shift):
    """First slot of the bucket of `key` (Fibonacci hashing on the top bits)."""
    return np.int64((key * HASH_MULT) >> uint64(shift)) * 2


@njit(cache=True, inline="always")
def tt_lookup(tt, key, shift, two_tier):
    """The slot content stored for `key` (0 if none)."""
    b = bucket(key, shift)
    tag = key & KEY_LOW
    e = tt[b]
    if (e >> uint64(INFO_BITS)) == tag:
        return e
    if two_tier:
        e = tt[b + 1]
        if (e >> uint64(INFO_BITS)) == tag:
            return e
    return ZERO


@njit(cache=True, inline="always")
def tt_store(tt, key, shift, two_tier, code, move1, work):
    """Store a bound; with `two_tier`, the first slot keeps the entry with more work."""
    b = bucket(key, shift)
    tag = key & KEY_LOW
    entry = (tag << uint64(INFO_BITS)) | (uint64(work) << uint64(WORK_SHIFT)) | (uint64(move1) << uint64(MOVE_SHIFT)) | uint64(code)
    if not two_tier:
        tt[b] = entry
        return
    e0 = tt[b]
    same = (e0 >> uint64(INFO_BITS)) == tag
    if same or work >= np.int64((e0 >> uint64(WORK_SHIFT)) & WORK_MASK):
        if not same:
            tt[b + 1] = e0  # demote the smaller-work entry to the always-replace slot
        tt[b] = entry
    else:
        tt[b + 1] = entry


@njit(cache=True, inline="always")
def stored_move(col, mirrored, width):
    """The TT move field for column `col` (-1: none), in the frame of the stored key."""
    if col < 0:
        return 0
    return width - col if mirrored else col + 1


@njit(cache=True, inline="always")
def refuting_child(tt, shift, two_tier, use_symmetry, stack_i, base, last, cur, mask, candidates, moves, beta, width, height):
    """Enhanced transposition cutoff over the move list entries ``last, last-1, ..., 0``.

    A child with a stored upper bound u gives the parent at least -u. Returns the index
    of the first child with ``-u >= beta`` and that value, or (-1, 0).
    """
    upper_base = 1 + width * height // 2 - 3
    upper_max_code = (width * height + 1) // 2 - 3 + upper_base
    for j in range(last, -1, -1):
        col = stack_i[uint64(base + S_LIST + 2 * j)]
        child_mask = mask | (candidates & column_bits(col, height))
        ckey = tt_key(cur ^ mask, child_mask, moves + 1, use_symmetry, width, height)[0]
        e = tt_lookup(tt, ckey, shift, two_tier)
        if e:
            code = np.int64(e & BOUND_MASK)
            if code <= upper_max_code and upper_base - code >= beta:
                return j, upper_base - code
    return -1, 0


@njit(cache=True, inline="always")
def order_moves(stack_i, bi, cur, mask, candidates, W, H, full):
    """Write `candidates` to the move list of the frame at `bi`, best last; return their number.

    Insertion sort by the number of threats the move leaves (Pons' ordering), stable in
    centre-first order; a single candidate needs no score.
    """
    if candidates & (candidates - ONE) == ZERO:
        stack_i[uint64(bi + S_LIST)] = popcount(candidates - ONE) // (H + 1)
        return 1
    # the centre-first order packed 4 bits per column: W is a constant, so this folds to one
    # constant and each step reads its column with a shift instead of recomputing the order
    order = ZERO
    for k in range(W):
        order |= uint64(centre_first(k, W)) << uint64(4 * k)
    n = 0
    for k in range(W - 1, -1, -1):
        col = np.int64((order >> uint64(4 * k)) & uint64(15))
        mv = candidates & column_bits(col, H)
        if mv:
            score = popcount(winning_squares(cur | mv, mask, H, full))
            p = n
            n += 1
            while p and stack_i[uint64(bi + S_LIST + 1 + 2 * (p - 1))] > score:
                stack_i[uint64(bi + S_LIST + 2 * p)] = stack_i[uint64(bi + S_LIST + 2 * (p - 1))]
                stack_i[uint64(bi + S_LIST + 1 + 2 * p)] = stack_i[uint64(bi + S_LIST + 1 + 2 * (p - 1))]
                p -= 1
            stack_i[uint64(bi + S_LIST + 2 * p)] = col
            stack_i[uint64(bi + S_LIST + 1 + 2 * p)] = score
    return n


@njit(cache=True, inline="always")
def push_child(stack_u, stack_i, bu, bi, row_i, child_cur, child_mask, alpha, beta, moves):
    """Write the child (the opponent to move, window negated) in the stack frame above."""
    stack_u[uint64(bu + ROW_U + U_CUR)] = child_cur
    stack_u[uint64(bu + ROW_U + U_MASK)] = child_mask
    stack_i[uint64(bi + row_i + S_ALPHA)] = -beta
    stack_i[uint64(bi + row_i + S_BETA)] = -alpha
    stack_i[uint64(bi + row_i + S_MOVES)] = moves + 1


# ---------------------------------------------------------------------------- search
@njit(cache=True, inline="always")
def negamax(W, H, cur0, mask0, moves0, alpha0, beta0, tables, book_keys, book_scores, stats, stack_u, stack_i, flags):
    """Score of a position within (alpha0, beta0); outside it, a bound (fail-soft).

    Precondition: the side to move cannot win at once (the caller checked).

    :param W: board width, :param H: board height (constants after inlining).
    :param cur0: uint64 stones of the side to move; :param mask0: uint64 all stones.
    :param moves0: number of stones played.
    :param tables: (small, main) uint64 TTs.
    :param book_keys: sorted uint64 canonical keys of the opening book; :param book_scores: its scores.
    :param stats: int64 counters and settings (`NODES`, `SHIFT_*`, `ESCALATE_AT`, ...).
    :param stack_u: uint64 scratch (`U_*` fields per ply); :param stack_i: int64 scratch (`S_*` fields per ply).
    :param flags: bit set of the `USE_*` switches.
    """
    n_squares = W * H
    bottom = bottom_mask(W, H)
    full = board_mask(W, H)
    max_score = (n_squares + 1) // 2 - 3
    min_score = -(n_squares // 2) + 3
    lower_base = max_score - 2 * min_score + 2  # code of a lower bound s: s + lower_base
    upper_base = 1 - min_score  # code of an upper bound s: s + upper_base
    upper_max_code = max_score - min_score + 1  # codes above are lower bounds
    row_i = S_LIST + 2 * W
    use_tt_move = (flags & USE_TT_MOVE) != 0
    use_symmetry = (flags & USE_SYMMETRY) != 0
    use_etc = (flags & USE_ETC) != 0
    use_lazy_etc = (flags & USE_LAZY_ETC) != 0
    use_prefetch = (flags & USE_PREFETCH) != 0
    two_tier = (flags & USE_TWO_TIER) != 0
    # small searches use the small table, which stays in cache; big ones the main table
    small = stats[NODES] - stats[SOLVE_START] < stats[ESCALATE_AT]
    tt = tables[0] if small else tables[1]
    shift = stats[SHIFT_SMALL] if small else stats[SHIFT_MAIN]
    if not small:
        stats[MAIN_DIRTY] = 1

    d = 0
    stack_u[uint64(U_CUR)] = cur0
    stack_u[uint64(U_MASK)] = mask0
    stack_i[uint64(S_ALPHA)] = alpha0
    stack_i[uint64(S_BETA)] = beta0
    stack_i[uint64(S_MOVES)] = moves0
    value = 0
    while True:
        # =========================================================== enter the node at ply d
        bi = d * row_i
        bu = d * ROW_U
        cur = stack_u[uint64(bu + U_CUR)]
        mask = stack_u[uint64(bu + U_MASK)]
        alpha = stack_i[uint64(bi + S_ALPHA)]
        beta = stack_i[uint64(bi + S_BETA)]
        moves = stack_i[uint64(bi + S_MOVES)]
        stats[NODES] += 1
        if small and stats[NODES] - stats[SOLVE_START] >= stats[ESCALATE_AT]:
            small = False
            tt = tables[1]
            shift = stats[SHIFT_MAIN]
            stats[MAIN_DIRTY] = 1
        done = True
        possible = (mask + bottom) & full
        if use_prefetch:
            # start fetching the children's TT slots; they are read after move ordering
            if use_symmetry and moves < SYMMETRY_MAX_MOVES:
                for col in range(W):
                    mv = possible & column_bits(col, H)
                    if mv:
                        prefetch(tt, bucket(tt_key(cur ^ mask, mask | mv, moves + 1, True, W, H)[0], shift))
            else:
                base = mask + mask - cur  # a child's key (cur ^ mask) + (mask | mv) is base + mv
                for col in range(W):
                    mv = possible & column_bits(col, H)
                    if mv:
                        prefetch(tt, bucket(base + mv, shift))
        opp_win = winning_squares(cur ^ mask, mask, H, full)
        forced = possible & opp_win
        candidates = ZERO
        if forced and (forced & (forced - ONE)):
            value = -((n_squares - moves) // 2)  # two threats to block: lost
        else:
            if forced:
                possible = forced
            candidates = possible & ~(opp_win >> ONE)  # never play below an opponent threat
            if candidates == ZERO:
                value = -((n_squares - moves) // 2)
            elif moves >= n_squares - 2:
                value = 0
            else:
                done = False
        if not done:
            lo = -((n_squares - 2 - moves) // 2)  # the opponent cannot win at its next move
            hi = (n_squares - 1 - moves) // 2  # we cannot win at our next move
            if alpha < lo:
                alpha = lo
                if alpha >= beta:
                    value = alpha
                    done = True
            if not done and beta > hi:
                beta = hi
                if alpha >= beta:
                    value = beta
                    done = True
        if not done and moves <= stats[BOOK_DEPTH]:
            found = book_find(book_keys, canonical_key(cur, mask, W, H))
            if found >= 0:
                stats[BOOK_HITS] += 1
                value = np.int64(book_scores[found])
                done = True
        key = ZERO
        mirrored = False
        tt_move = 0
        if not done:
            key, mirrored = tt_key(cur, mask, moves, use_symmetry, W, H)
            e = tt_lookup(tt, key, shift, two_tier)
            if e:
                code = np.int64(e & BOUND_MASK)
                tt_move = np.int64((e >> uint64(MOVE_SHIFT)) & MOVE_MASK)
                if mirrored and tt_move:
                    tt_move = W + 1 - tt_move  # stored in the mirror image's frame
                if code > upper_max_code:  # lower bound
                    lo = code - lower_base
                    if alpha < lo:
                        alpha = lo
                        if alpha >= beta:
                            value = alpha
                            done = True
                else:  # upper bound
                    hi = code - upper_base
                    if beta > hi:
                        beta = hi
                        if alpha >= beta:
                            value = beta
                            done = True
        n = 0
        pending = False
        if not done:
            if use_tt_move and tt_move and candidates & column_bits(tt_move - 1, H) and candidates & (candidates - ONE):
                # search the stored best move first; order the others only if it does not cut
                stack_i[uint64(bi + S_LIST)] = tt_move - 1
                n = 1
                pending = True
            else:
                n = order_moves(stack_i, bi, cur, mask, candidates, W, H, full)
                if use_etc and not small and n_squares - moves >= ETC_MIN_EMPTY:
                    j, v = refuting_child(tt, shift, two_tier, use_symmetry, stack_i, bi, n - 1, cur, mask, candidates, moves, beta, W, H)
                    if j >= 0:
                        value = v
                        col = stack_i[uint64(bi + S_LIST + 2 * j)]
                        tt_store(tt, key, shift, two_tier, v + lower_base, stored_move(col, mirrored, W), 1)
                        done = True
        if not done:
            col = stack_i[uint64(bi + S_LIST + 2 * (n - 1))]
            stack_u[uint64(bu + U_KEY)] = key
            stack_u[uint64(bu + U_CANDIDATES)] = candidates
            stack_i[uint64(bi + S_ALPHA)] = alpha
            stack_i[uint64(bi + S_BETA)] = beta
            stack_i[uint64(bi + S_BEST)] = -1
            stack_i[uint64(bi + S_MIRRORED)] = mirrored
            stack_i[uint64(bi + S_NODES0)] = stats[NODES]
            stack_i[uint64(bi + S_COUNT)] = n
            stack_i[uint64(bi + S_PENDING)] = pending
            stack_i[uint64(bi + S_NEXT)] = n - 2
            stack_i[uint64(bi + S_COL)] = col
            push_child(stack_u, stack_i, bu, bi, row_i, cur ^ mask, mask | (candidates & column_bits(col, H)), alpha, beta, moves)
            d += 1
            continue

        # =========================================================== return `value` upwards
        while True:
            if d == 0:
                return value
            d -= 1
            bi = d * row_i
            bu = d * ROW_U
            score = -value
            alpha = stack_i[uint64(bi + S_ALPHA)]
            beta = stack_i[uint64(bi + S_BETA)]
            mirrored = stack_i[uint64(bi + S_MIRRORED)] != 0
            if score >= beta:  # cut: store a lower bound
                work = _bit_length(stats[NODES] - stack_i[uint64(bi + S_NODES0)])
                col = stack_i[uint64(bi + S_COL)]
                tt_store(tt, stack_u[uint64(bu + U_KEY)], shift, two_tier, score + lower_base, stored_move(col, mirrored, W), work)
                value = score
                continue
            if score > alpha:
                alpha = score
                stack_i[uint64(bi + S_ALPHA)] = alpha
                stack_i[uint64(bi + S_BEST)] = stack_i[uint64(bi + S_COL)]
            j = stack_i[uint64(bi + S_NEXT)]
            cur = stack_u[uint64(bu + U_CUR)]
            mask = stack_u[uint64(bu + U_MASK)]
            candidates = stack_u[uint64(bu + U_CANDIDATES)]
            # lazy ETC: once the first move failed to cut, is another one known to cut?
            etc_now = use_lazy_etc and j >= 0 and j == stack_i[uint64(bi + S_COUNT)] - 2
            if stack_i[uint64(bi + S_PENDING)]:
                # the stored best move did not cut: only now order the other moves
                stack_i[uint64(bi + S_PENDING)] = 0
                rest = candidates & ~column_bits(stack_i[uint64(bi + S_COL)], H)
                n = order_moves(stack_i, bi, cur, mask, rest, W, H, full)
                stack_i[uint64(bi + S_COUNT)] = n + 1
                j = n - 1
                etc_now = use_lazy_etc or (use_etc and n_squares - stack_i[uint64(bi + S_MOVES)] >= ETC_MIN_EMPTY)
            if etc_now and not small:
                # the first move did not cut: is one of the others already known to?
                jj, v = refuting_child(tt, shift, two_tier, use_symmetry, stack_i, bi, j, cur, mask, candidates,
                                       stack_i[uint64(bi + S_MOVES)], beta, W, H)
                if jj >= 0:
                    col = stack_i[uint64(bi + S_LIST + 2 * jj)]
                    tt_store(tt, stack_u[uint64(bu + U_KEY)], shift, two_tier, v + lower_base, stored_move(col, mirrored, W), 1)
                    value = v
                    continue
            if j < 0:  # every move searched: store an upper bound
                work = _bit_length(stats[NODES] - stack_i[uint64(bi + S_NODES0)])
                best = stack_i[uint64(bi + S_BEST)]
                tt_store(tt, stack_u[uint64(bu + U_KEY)], shift, two_tier, alpha + upper_base, stored_move(best, mirrored, W), work)
                value = alpha
                continue
            # ---- descend into the next child
            col = stack_i[uint64(bi + S_LIST + 2 * j)]
            stack_i[uint64(bi + S_NEXT)] = j - 1
            stack_i[uint64(bi + S_COL)] = col
            push_child(stack_u, stack_i, bu, bi, row_i, cur ^ mask, mask | (candidates & column_bits(col, H)), alpha, beta,
                       stack_i[uint64(bi + S_MOVES)])
            d += 1
            break


@njit(cache=True)
def wipe_tables(tables, stats):
    """Zero the tables; the main one only if a search wrote to it since the last wipe."""
    if stats[MAIN_DIRTY]:
        tables[1][:] = 0
        stats[MAIN_DIRTY] = 0
    tables[0][:] = 0


@njit(cache=True, inline="always")
def solve_root(W, H, cur, mask, moves, weak, tables, book_keys, book_scores, stats, stack_u, stack_i, flags):
    """Exact score of a live position, or with `weak` only its sign (-1, 0, +1)."""
    n_squares = W * H
    full = board_mask(W, H)
    found = -1
    if moves <= stats[BOOK_DEPTH]:
        found = book_find(book_keys, canonical_key(cur, mask, W, H))
    if winning_squares(cur, mask, H, full) & ((mask + bottom_mask(W, H)) & full):
        score = (n_squares + 1 - moves) // 2
    elif found >= 0:
        stats[BOOK_HITS] += 1
        score = np.int64(book_scores[found])
    else:
        stats[SOLVE_START] = stats[NODES]
        lo = -((n_squares - moves) // 2)
        hi = (n_squares + 1 - moves) // 2
        if weak:
            lo = -1
            hi = 1
        while lo < hi:  # bisect the score range with null-window searches
            med = lo + (hi - lo) // 2
            if med <= 0 and tdiv2(lo) < med:
                med = tdiv2(lo)
            elif med >= 0 and tdiv2(hi) > med:
                med = tdiv2(hi)
            r = negamax(W, H, cur, mask, moves, med, med + 1, tables, book_keys, book_scores, stats, stack_u, stack_i, flags)
            if r <= med:
                hi = r
            else:
                lo = r
        score = lo
    if weak:
        return np.int64((score > 0) - (score < 0))
    return score


_U64 = types.Array(types.uint64, 1, "C")
_I64 = types.Array(types.int64, 1, "C")
#: the one signature `solver.engine.Solver` calls the batch kernel with (compiled eagerly, cached on disk)
KERNEL_SIGNATURE = (_U64, _U64, _I64, types.boolean, types.boolean, types.UniTuple(_U64, 2), _U64,
                    types.Array(types.int8, 1, "C"), _I64, _U64, _I64, types.int64, _I64, _I64, _I64)
COLD_COMPILE_S = 30  # first compile of one board size's kernel: 25 s on an idle 2-core machine (results/bench_coldstart.json)


def _in_disk_cache(dispatcher, signature) -> bool:
    """Whether numba's disk cache holds `dispatcher` compiled for `signature` (False if it cannot tell)."""
    try:  # numba's cache object is not public API: on any surprise, assume a compile is coming
        return dispatcher._cache.load_overload(signature, dispatcher.targetctx) is not None
    except Exception:  # noqa: BLE001
        return False


def _cache_location(dispatcher) -> str:
    try:
        return str(dispatcher._cache._cache_path)
    except Exception:  # noqa: BLE001
        return "numba's cache directory"


@functools.lru_cache(maxsize=None)
def kernels(width: int = 7, height: int = 6, flags: int | None = None):
    """The compiled batch solver for a W x H board (loaded from numba's disk cache if there).

    With `flags`, the kernel is specialised for those search switches (they become
    constants of the machine code and its `flags` argument is ignored); without, it reads
    them from its argument at run time.

    The returned function is ``solve_batch(currents, masks, moves, weak, wipe_tt, tables,
    book_keys, book_scores, stats, stack_u, stack_i, flags, scores, nodes, cycles)``; it
    solves every live position of the arrays and fills `scores`, `nodes` and `cycles`
    (time-stamp-counter ticks of each solve). With `wipe_tt` the tables are zeroed
    before each position, outside the timed part (the reference benchmark protocol).
    It releases the GIL: threads with their own stacks and stats can run it at once.

    The kernel is compiled (or loaded from numba's disk cache) here, for `KERNEL_SIGNATURE`;
    when the cache is cold, a warning says that the first run compiles and for how long.
    """
    size = BoardSize(width, height)
    W, H = size.width, size.height
    if flags is not None and flags & ~ALL_FLAGS:
        raise ValueError(f"unknown search flags {flags & ~ALL_FLAGS:#x}; known switches are solver.search.USE_*")
    F = -1 if flags is None else int(flags)  # a closure constant: -1 means "read the argument"

    @njit(cache=True, nogil=True)
    def solve_batch(currents, masks, moves, weak, wipe_tt, tables, book_keys, book_scores, stats, stack_u, stack_i, flags,
                    scores, nodes, cycles):
        if F >= 0:
            flags = F
        for i in range(currents.shape[0]):
            if wipe_tt:
                wipe_tables(tables, stats)
            before = stats[NODES]
            t0 = cycle_counter()
            scores[i] = solve_root(W, H, currents[i], masks[i], moves[i], weak, tables, book_keys, book_scores, stats, stack_u,
                                   stack_i, flags)
            cycles[i] = cycle_counter() - t0
            nodes[i] = stats[NODES] - before

    if not _in_disk_cache(solve_batch, KERNEL_SIGNATURE):
        logger.warning("compiling the %dx%d Connect Four solver (first run only, ~%d s on 2 cores; cached in %s)...",
                       W, H, COLD_COMPILE_S, _cache_location(solve_batch))
    start = time.perf_counter()
    solve_batch.compile(KERNEL_SIGNATURE)
    logger.debug("solver kernel for %dx%d ready in %.1f s", W, H, time.perf_counter() - start)
    return solve_batch
