"""The Connect Four position: an immutable bitboard with parsing, rendering and rules.

`Position` is the Python face of the bitboard kernels in `bitboard.py`: it validates
input and names things, the kernels do the bit work. Columns are 0-based in the API and
1-based in move strings (``"4453"``), as in Pascal Pons' benchmark files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from games.connect4 import bitboard as bb

MIN_SIZE = 4
MAX_WIDTH = 9  # move strings use one digit per move


@dataclass(frozen=True)
class BoardSize:
    """A validated Connect Four board size (columns x rows)."""

    width: int = 7
    height: int = 6

    def __post_init__(self) -> None:
        w, h = self.width, self.height
        if not (isinstance(w, (int, np.integer)) and isinstance(h, (int, np.integer))):
            raise ValueError(f"board size must be integers, got width={w!r}, height={h!r}")
        if w < MIN_SIZE or h < MIN_SIZE:
            raise ValueError(f"a {w}x{h} board is too small: width and height must be at least {MIN_SIZE}")
        if w > MAX_WIDTH:
            raise ValueError(f"a {w}x{h} board is too wide: move strings use one digit per column, so width <= {MAX_WIDTH}")
        if (h + 1) * w > 64:
            raise ValueError(
                f"a {w}x{h} board needs ({h}+1)*{w} = {(h + 1) * w} bits; bitboards hold at most 64 ((height+1)*width <= 64)"
            )
        object.__setattr__(self, "width", int(w))
        object.__setattr__(self, "height", int(h))

    @property
    def n_squares(self) -> int:
        return self.width * self.height

    @property
    def bottom(self) -> int:
        """Bitmap with the bottom square of every column."""
        return sum(1 << (c * (self.height + 1)) for c in range(self.width))

    @property
    def full(self) -> int:
        """Bitmap of every playable square (sentinels excluded)."""
        return self.bottom * ((1 << self.height) - 1)

    def bit(self, col: int, row: int) -> int:
        """The bit of square (col, row), both 0-based, row 0 at the bottom."""
        return 1 << (col * (self.height + 1) + row)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


_U = np.uint64


@dataclass(frozen=True, eq=False)
class Position:
    """An immutable Connect Four position.

    :param size: the board size.
    :param current: bitmap of the stones of the side to move.
    :param mask: bitmap of all stones.
    :param moves: number of stones played.
    :param history: the 1-based move string that led here, or None if unknown
        (positions built from an array have no history).
    """

    size: BoardSize
    current: int
    mask: int
    moves: int
    history: str | None = ""

    # ----------------------------------------------------------------- construction
    @classmethod
    def empty(cls, width: int = 7, height: int = 6) -> "Position":
        return cls(BoardSize(width, height), 0, 0, 0, "")

    @classmethod
    def from_moves(cls, moves: str, width: int = 7, height: int = 6) -> "Position":
        """Play a 1-based move string (``"4453"``) from the empty board.

        Raises `ValueError` naming the offending move on a non-digit, an out-of-range
        column, a full column or a move after the game was already won.
        """
        pos = cls.empty(width, height)
        if not isinstance(moves, str):
            raise ValueError(f"moves must be a string of column digits, got {type(moves).__name__}")
        w = pos.size.width
        for i, ch in enumerate(moves.strip()):
            where = f"move {i + 1} in {moves.strip()!r}"
            if not ch.isdigit() or not ch.isascii():
                raise ValueError(f"{where} is {ch!r}; moves are digits 1..{w}")
            col = int(ch) - 1
            if not 0 <= col < w:
                raise ValueError(f"{where} is column {col + 1}; columns are 1..{w}")
            if pos.is_terminal():
                why = "the board is full" if pos.winner() == 0 else f"player {pos.winner_player()} already won"
                raise ValueError(f"{where} comes after the game ended ({why})")
            if not pos.can_play(col):
                raise ValueError(f"{where} plays column {col + 1}, which is full ({pos.size.height} stones)")
            pos = pos.play(col)
        return pos

    @classmethod
    def from_array(cls, board: np.ndarray) -> "Position":
        """Build a position from an H x W array: row 0 is the TOP row; 0 empty, 1 first player, 2 second.

        The side to move follows from the stone counts. Floating stones, wrong counts and
        unknown values raise `ValueError`.
        """
        arr = np.asarray(board)
        if arr.ndim != 2:
            raise ValueError(f"board array must be 2-D (rows x columns), got shape {arr.shape}")
        h, w = arr.shape
        size = BoardSize(w, h)
        bad = ~np.isin(arr, (0, 1, 2))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"board[{r}, {c}] = {arr[r, c].item()!r}; squares hold 0 (empty), 1 (first player) or 2 (second)")
        first = second = 0
        for c in range(w):
            column = arr[::-1, c]  # bottom up
            filled = int(np.count_nonzero(column))
            if filled and np.count_nonzero(column[:filled]) != filled:
                raise ValueError(f"column {c + 1} has a floating stone (an empty square below a stone)")
            for r in range(filled):
                if column[r] == 1:
                    first |= size.bit(c, r)
                else:
                    second |= size.bit(c, r)
        n1, n2 = bin(first).count("1"), bin(second).count("1")
        if n1 - n2 not in (0, 1):
            raise ValueError(f"the first player has {n1} stones and the second {n2}; the first must have the same or one more")
        moves = n1 + n2
        current = first if moves % 2 == 0 else second
        return cls(size, current, first | second, moves, None)

    # ----------------------------------------------------------------- conversion
    def to_array(self) -> np.ndarray:
        """H x W int8 array, row 0 on TOP: 0 empty, 1 first player, 2 second player."""
        w, h = self.size.width, self.size.height
        out = np.zeros((h, w), dtype=np.int8)
        first = self.first_player_stones
        for c in range(w):
            for r in range(h):
                bit = self.size.bit(c, r)
                if self.mask & bit:
                    out[h - 1 - r, c] = 1 if first & bit else 2
        return out

    def __str__(self) -> str:
        """Readable board: X = first player, O = second player, column numbers below."""
        symbols = {0: ".", 1: "X", 2: "O"}
        rows = [" ".join(symbols[int(v)] for v in row) for row in self.to_array()]
        rows.append(" ".join(str(c + 1) for c in range(self.size.width)))
        return "\n".join(rows)

    def __repr__(self) -> str:
        hist = f"moves={self.history!r}" if self.history is not None else f"key={self.key()}"
        return f"Position({self.size}, {hist})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Position)
            and self.size == other.size
            and self.current == other.current
            and self.mask == other.mask
        )

    def __hash__(self) -> int:
        return hash((self.size, self.current, self.mask))

    # ----------------------------------------------------------------- rules
    @property
    def opponent(self) -> int:
        """Bitmap of the stones of the side that just moved."""
        return self.current ^ self.mask

    @property
    def first_player_stones(self) -> int:
        return self.current if self.moves % 2 == 0 else self.opponent

    @property
    def first_player_to_move(self) -> bool:
        return self.moves % 2 == 0

    def can_play(self, col: int) -> bool:
        """True if `col` (0-based) is on the board and not full."""
        return 0 <= col < self.size.width and not (self.mask & self.size.bit(col, self.size.height - 1))

    def legal_moves(self) -> list[int]:
        """0-based columns that can be played; empty once the game is over."""
        if self.is_terminal():
            return []
        return [c for c in range(self.size.width) if self.can_play(c)]

    def legal_mask(self) -> np.ndarray:
        """Boolean array of length W: which columns can be played now."""
        out = np.zeros(self.size.width, dtype=bool)
        out[self.legal_moves()] = True
        return out

    def playable_squares(self) -> int:
        """Bitmap of the lowest empty square of every open column."""
        return (self.mask + self.size.bottom) & self.size.full

    def move_bit(self, col: int) -> int:
        """Bitmap of the square a stone dropped in `col` lands on."""
        return (self.mask + self.size.bit(col, 0)) & (((1 << self.size.height) - 1) << (col * (self.size.height + 1)))

    def play(self, col: int) -> "Position":
        """Return the position after the side to move drops a stone in `col` (0-based)."""
        if not isinstance(col, (int, np.integer)) or not 0 <= col < self.size.width:
            raise ValueError(f"column {col!r} is off the board; columns are 0..{self.size.width - 1} (0-based)")
        if self.is_terminal():
            raise ValueError("the game is over; no more moves can be played")
        if not self.can_play(col):
            raise ValueError(f"column {col} (0-based) is full")
        bit = self.move_bit(int(col))
        history = None if self.history is None else self.history + str(int(col) + 1)
        return Position(self.size, self.opponent, self.mask | bit, self.moves + 1, history)

    def play_moves(self, moves: Iterable[int]) -> "Position":
        """Play a sequence of 0-based columns."""
        pos = self
        for col in moves:
            pos = pos.play(col)
        return pos

    def winning_squares(self, of_current: bool = True) -> int:
        """Empty squares that would complete four for the side to move (or its opponent)."""
        stones = self.current if of_current else self.opponent
        return int(bb.winning_squares(_U(stones), _U(self.mask), self.size.height, _U(self.size.full)))

    def is_winning_move(self, col: int) -> bool:
        """True if dropping a stone in `col` wins at once for the side to move."""
        return self.can_play(col) and not self.is_terminal() and bool(self.winning_squares() & self.move_bit(col))

    def can_win_next(self) -> bool:
        """True if the side to move has an immediate win (False once the game is over)."""
        return not self.is_terminal() and bool(self.winning_squares() & self.playable_squares())

    def winner(self) -> int | None:
        """+1 if the first player has four, -1 if the second has, 0 for a full board, None if ongoing.

        Only the side that just moved can have four (games stop at the first four).
        """
        if self.moves and bb.has_four(_U(self.opponent), self.size.height):
            return 1 if self.moves % 2 == 1 else -1
        if self.moves == self.size.n_squares:
            return 0
        return None

    def winner_player(self) -> int:
        """1 or 2 for the player who won (call only when `winner()` is +-1)."""
        return 1 if self.winner() == 1 else 2

    def is_terminal(self) -> bool:
        return self.winner() is not None

    # ----------------------------------------------------------------- symmetry and keys
    def mirror(self) -> "Position":
        """The left-right reflection (its move string is mirrored too)."""
        w, h = self.size.width, self.size.height
        cur = int(bb.mirror(_U(self.current), w, h))
        msk = int(bb.mirror(_U(self.mask), w, h))
        history = None if self.history is None else "".join(str(w + 1 - int(c)) for c in self.history)
        return Position(self.size, cur, msk, self.moves, history)

    def key(self) -> int:
        """Unique 64-bit key of this position (``current + mask``, as in Pons' solver)."""
        return self.current + self.mask

    def canonical_key(self) -> int:
        """Mirror-aware key: equal for a position and its reflection."""
        return int(bb.canonical_key(_U(self.current), _U(self.mask), self.size.width, self.size.height))
