"""Bitboard primitives for Connect Four on W x H boards, compiled with numba.

These kernels are the single source of truth for the rules: the Python `Position`
class, the solver and the vectorised environments all call them.

Layout (7x6 shown; every board uses columns of H+1 bits with a sentinel on top)::

    .  .  .  .  .  .  .        <- sentinel row: never holds a stone
    5 12 19 26 33 40 47        <- top row (row H-1)
    4 11 18 25 32 39 46
    3 10 17 24 31 38 45
    2  9 16 23 30 37 44
    1  8 15 22 29 36 43
    0  7 14 21 28 35 42        <- bottom row (row 0)

Bit ``col * (H + 1) + row`` is the square in column ``col`` (0-based, left to right) and
``row`` (0-based, bottom up). A position is two words: ``current`` (stones of the side
to move) and ``mask`` (all stones). ``(H + 1) * W <= 64`` must hold.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from common.intrinsics import popcount64

ONE = np.uint64(1)
ZERO = np.uint64(0)


@njit(cache=True, inline="always")
def u64(x):
    """Cast to uint64 (numba promotes int64 with uint64 to float64 otherwise)."""
    return uint64(x)


@njit(cache=True, inline="always")
def bottom_mask(width, height):
    """One bit at the bottom of every column."""
    m = ZERO
    for col in range(width):
        m |= ONE << u64(col * (height + 1))
    return m


@njit(cache=True, inline="always")
def board_mask(width, height):
    """Every playable square (all bits except the sentinels)."""
    return bottom_mask(width, height) * ((ONE << u64(height)) - ONE)


@njit(cache=True, inline="always")
def column_mask(col, height):
    """The H playable squares of column `col`."""
    return ((ONE << u64(height)) - ONE) << u64(col * (height + 1))


@njit(cache=True, inline="always")
def top_mask_col(col, height):
    """The topmost playable square of column `col`."""
    return ONE << u64(height - 1 + col * (height + 1))


@njit(cache=True, inline="always")
def bottom_mask_col(col, height):
    """The bottom square of column `col`."""
    return ONE << u64(col * (height + 1))


@njit(cache=True, inline="always")
def popcount(x):
    """Number of set bits of a uint64."""
    return np.int64(popcount64(uint64(x)))


@njit(cache=True, inline="always")
def can_play(mask, col, height):
    """True if column `col` still has an empty square."""
    return (mask & top_mask_col(col, height)) == ZERO


@njit(cache=True, inline="always")
def possible_moves(mask, bottom, full):
    """Bitmap of the playable squares: the lowest empty square of every open column."""
    return (mask + bottom) & full


@njit(cache=True, inline="always")
def winning_squares(stones, mask, height, full):
    """Empty squares (playable or not) that would complete a four for `stones`.

    Each line adds to ``r`` the squares that end or fill a gap in three aligned stones
    along one direction; the final ``& (full ^ mask)`` keeps empty on-board squares.
    """
    h1 = u64(height + 1)
    # vertical: three stones directly below the square
    r = (stones << ONE) & (stones << u64(2)) & (stones << u64(3))
    # horizontal (shift by h1), then the two diagonals (shift by h1 - 1 and h1 + 1)
    for shift in (h1, h1 - ONE, h1 + ONE):
        p = (stones << shift) & (stones << (u64(2) * shift))
        r |= p & (stones << (u64(3) * shift))  # three to the left
        r |= p & (stones >> shift)  # two left, one right
        p = (stones >> shift) & (stones >> (u64(2) * shift))
        r |= p & (stones << shift)  # one left, two right
        r |= p & (stones >> (u64(3) * shift))  # three to the right
    return r & (full ^ mask)


@njit(cache=True, inline="always")
def has_four(stones, height):
    """True if `stones` contains four in a row in any direction."""
    h1 = u64(height + 1)
    for shift in (ONE, h1, h1 - ONE, h1 + ONE):
        m = stones & (stones >> shift)  # pairs
        if m & (m >> (u64(2) * shift)):  # two pairs in line
            return True
    return False


@njit(cache=True, inline="always")
def mirror(bits, width, height):
    """Reflect a bitmap left-right (column c goes to column W-1-c)."""
    h1 = height + 1
    col_bits = (ONE << u64(h1)) - ONE
    out = ZERO
    for col in range(width):
        out |= ((bits >> u64(col * h1)) & col_bits) << u64((width - 1 - col) * h1)
    return out


@njit(cache=True, inline="always")
def position_key(current, mask):
    """Unique key of a position (Pons): ``current + mask`` sets, per column, the bit above
    the stones and keeps the current player's stones below it, minus a constant."""
    return current + mask


@njit(cache=True, inline="always")
def canonical_key(current, mask, width, height):
    """Mirror-aware key: the smaller of the keys of the position and its reflection
    (the one definition: `Position.canonical_key`, opening books and the solver use it)."""
    k = position_key(current, mask)
    km = position_key(mirror(current, width, height), mirror(mask, width, height))
    return k if k < km else km
