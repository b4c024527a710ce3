"""A deliberately simple Connect Four reference: a list-of-lists board and plain rules.

Independent of the bitboard code on purpose; tests compare the two.
"""

from __future__ import annotations


class RefBoard:
    """Board as rows[r][c], r = 0 at the bottom; 0 empty, 1 first player, 2 second player."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [[0] * width for _ in range(height)]
        self.moves = 0
        self.won_by = 0

    def copy(self) -> "RefBoard":
        b = RefBoard(self.width, self.height)
        b.rows = [r[:] for r in self.rows]
        b.moves, b.won_by = self.moves, self.won_by
        return b

    def to_move(self) -> int:
        return 1 if self.moves % 2 == 0 else 2

    def height_of(self, col: int) -> int:
        return sum(1 for r in range(self.height) if self.rows[r][col])

    def over(self) -> bool:
        return self.won_by != 0 or self.moves == self.width * self.height

    def legal(self) -> list[int]:
        if self.over():
            return []
        return [c for c in range(self.width) if self.height_of(c) < self.height]

    def four_through(self, r: int, c: int, player: int) -> bool:
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            n = 1
            for sign in (1, -1):
                rr, cc = r + sign * dr, c + sign * dc
                while 0 <= rr < self.height and 0 <= cc < self.width and self.rows[rr][cc] == player:
                    n += 1
                    rr, cc = rr + sign * dr, cc + sign * dc
            if n >= 4:
                return True
        return False

    def wins_by_playing(self, col: int) -> bool:
        r = self.height_of(col)
        if r >= self.height:
            return False
        p = self.to_move()
        self.rows[r][col] = p
        won = self.four_through(r, col, p)
        self.rows[r][col] = 0
        return won

    def play(self, col: int) -> None:
        r = self.height_of(col)
        p = self.to_move()
        self.rows[r][col] = p
        self.moves += 1
        if self.four_through(r, col, p):
            self.won_by = p

    def winning_squares(self, player: int) -> set[tuple[int, int]]:
        """Empty squares (playable or not) where `player` would complete four."""
        out = set()
        for r in range(self.height):
            for c in range(self.width):
                if self.rows[r][c] == 0:
                    self.rows[r][c] = player
                    if self.four_through(r, c, player):
                        out.add((c, r))
                    self.rows[r][c] = 0
        return out

    def key(self) -> tuple:
        return tuple(tuple(r) for r in self.rows)


_SCORES: dict[tuple, int] = {}


def ref_score(board: RefBoard) -> int:
    """Exact score for the side to move, straight from the definition (memoised negamax)."""
    memo_key = (board.width, board.height, board.key())
    if memo_key in _SCORES:
        return _SCORES[memo_key]
    n = board.width * board.height
    best = None
    for col in board.legal():
        if board.wins_by_playing(col):
            value = (n + 1 - board.moves) // 2
        else:
            child = board.copy()
            child.play(col)
            value = 0 if child.over() else -ref_score(child)
        best = value if best is None else max(best, value)
    _SCORES[memo_key] = best
    return best
