"""Connect Four on W x H boards: bitboard rules (`bitboard`), the `Position` class and enumeration."""

from games.connect4.position import BoardSize, Position

__all__ = ["BoardSize", "Position"]
