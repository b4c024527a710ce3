"""The bitboard position against a plain 2-D reference, on several board sizes."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games.connect4 import BoardSize, Position
from games.connect4.enumerate import positions_by_ply
from tests.reference_connect4 import RefBoard

SIZES = [(4, 4), (5, 4), (4, 5), (6, 5), (7, 6), (8, 7), (9, 5)]


@st.composite
def random_games(draw):
    """(width, height, columns played) for a random legal game prefix."""
    width, height = draw(st.sampled_from(SIZES))
    ref = RefBoard(width, height)
    cols = []
    n = draw(st.integers(0, width * height))
    for _ in range(n):
        legal = ref.legal()
        if not legal:
            break
        col = draw(st.sampled_from(legal))
        ref.play(col)
        cols.append(col)
    return width, height, cols


def bit_squares(bits: int, size: BoardSize) -> set[tuple[int, int]]:
    return {(c, r) for c in range(size.width) for r in range(size.height) if bits & size.bit(c, r)}


@settings(max_examples=300, deadline=None)
@given(random_games())
def test_position_matches_reference(game):
    width, height, cols = game
    ref = RefBoard(width, height)
    pos = Position.empty(width, height)
    for col in cols:
        assert pos.legal_moves() == ref.legal()
        for c in range(width):
            assert pos.is_winning_move(c) == ref.wins_by_playing(c)
        ref.play(col)
        pos = pos.play(col)
    assert pos.legal_moves() == ref.legal()
    assert pos.is_terminal() == ref.over()
    expected_winner = {0: (0 if ref.over() else None), 1: 1, 2: -1}[ref.won_by]
    assert pos.winner() == expected_winner
    me, opp = ref.to_move(), 3 - ref.to_move()
    assert bit_squares(pos.winning_squares(True), pos.size) == ref.winning_squares(me)
    assert bit_squares(pos.winning_squares(False), pos.size) == ref.winning_squares(opp)
    assert pos.can_win_next() == (not ref.over() and any(ref.wins_by_playing(c) for c in ref.legal()))
    # array and move-string round trips
    arr = pos.to_array()
    assert arr.shape == (height, width)
    assert [list(row) for row in arr[::-1]] == ref.rows
    assert Position.from_array(arr) == pos
    assert Position.from_moves(pos.history, width, height) == pos
    assert pos.moves == len(cols) == int(np.count_nonzero(arr))
    # mirror: an involution that keeps the canonical key
    m = pos.mirror()
    assert m.mirror() == pos
    assert m.canonical_key() == pos.canonical_key()
    assert np.array_equal(m.to_array(), arr[:, ::-1])
    assert Position.from_moves(m.history, width, height) == m
    assert pos.first_player_to_move == (len(cols) % 2 == 0)


def test_key_is_unique_per_position():
    seen = {}
    for level in positions_by_ply(6, 7, 6, canonical=False, include_terminal=True):
        for p in level:
            assert p.key() not in seen
            seen[p.key()] = p


def test_position_counts_match_oeis_a212693():
    # distinct positions after n plies, won positions included but never expanded
    expected = [1, 7, 49, 238, 1120, 4263, 16422]
    levels = positions_by_ply(6, 7, 6, canonical=False, include_terminal=True)
    assert [len(level) for level in levels] == expected


def test_render_and_repr():
    pos = Position.from_moves("4453")
    text = str(pos)
    assert text.splitlines()[-1] == "1 2 3 4 5 6 7"
    assert text.splitlines()[-2] == ". . O X X . ."
    assert text.splitlines()[-3] == ". . . O . . ."
    assert "4453" in repr(pos)


@pytest.mark.parametrize(
    "moves, message",
    [
        ("44a5", "move 3 in '44a5' is 'a'; moves are digits 1..7"),
        ("44445", "xx"),
        ("448", "move 3 in '448' is column 8; columns are 1..7"),
        ("440", "move 3 in '440' is column 0; columns are 1..7"),
        ("4444444", "move 7 in '4444444' plays column 4, which is full (6 stones)"),
        ("12121212", "move 8 in '12121212' comes after the game ended (player 1 already won)"),
    ],
)
def test_bad_move_strings_name_the_problem(moves, message):
    if message == "xx":
        assert Position.from_moves(moves).moves == 5
        return
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Position.from_moves(moves)


@pytest.mark.parametrize(
    "width, height, fragment",
    [
        (9, 7, "needs (7+1)*9 = 72 bits"),
        (3, 6, "too small"),
        (7, 3, "too small"),
        (10, 4, "too wide"),
        (8, 8, "needs (8+1)*8 = 72 bits"),
    ],
)
def test_bad_board_sizes(width, height, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Position.empty(width, height)


def test_largest_boards_fit_64_bits():
    for w, h in [(8, 7), (9, 6), (4, 15)]:
        pos = Position.empty(w, h)
        for col in range(w):
            pos = pos.play(col)
        assert pos.moves == w
    pos = Position.from_moves("1" * 7 + "2" * 7, 8, 7)
    assert not pos.can_play(0) and not pos.can_play(1)
    assert pos.key() < 2**64


def test_from_array_validation():
    good = np.zeros((6, 7), dtype=int)
    good[5, 3] = 1
    assert Position.from_array(good) == Position.from_moves("4")
    floating = good.copy()
    floating[3, 2] = 2
    with pytest.raises(ValueError, match="column 3 has a floating stone"):
        Position.from_array(floating)
    wrong_counts = good.copy()
    wrong_counts[5, 4] = 1
    with pytest.raises(ValueError, match="the first player has 2 stones and the second 0"):
        Position.from_array(wrong_counts)
    bad_value = good.copy()
    bad_value[5, 0] = 7
    with pytest.raises(ValueError, match=r"board\[5, 0\] = 7"):
        Position.from_array(bad_value)
    with pytest.raises(ValueError, match="must be 2-D"):
        Position.from_array(np.zeros(7))


def test_play_errors():
    pos = Position.from_moves("444444")
    with pytest.raises(ValueError, match="column 3 \\(0-based\\) is full"):
        pos.play(3)
    with pytest.raises(ValueError, match="off the board"):
        pos.play(7)
    won = Position.from_moves("1212121")
    assert won.winner() == 1 and won.legal_moves() == []
    with pytest.raises(ValueError, match="the game is over"):
        won.play(3)
