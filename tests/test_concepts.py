"""Concepts against independent slow references (plain Python over 2-D boards, brute force)."""

from __future__ import annotations

import random

import numpy as np
import pytest

import games
from games.concepts import Concept, concepts, label, register_concept, select
from games.connect4 import Position
from tests.reference_connect4 import RefBoard, ref_score

REQUIRED = ["win_in_1", "forced_block", "lost_in_1", "n_threats_me", "n_threats_opp", "n_odd_threats_me",
            "n_even_threats_me", "n_odd_threats_opp", "n_even_threats_opp", "first_player_to_move", "value", "score",
            "n_good_moves", "only_move"]
SIZES = [(5, 4), (6, 5), (7, 6), (8, 7)]


def random_positions(width, height, n, rng, max_moves=None):
    """(Position, RefBoard) pairs of live positions from random games."""
    out = []
    while len(out) < n:
        pos, ref = Position.empty(width, height), RefBoard(width, height)
        target = rng.randint(0, max_moves if max_moves is not None else width * height - 1)
        for _ in range(target):
            col = rng.choice(pos.legal_moves())
            if pos.play(col).is_terminal():
                break
            pos = pos.play(col)
            ref.play(col)
        out.append((pos, ref))
    return out


def spatial_index(width, height, col, row):
    return (height - 1 - row) * width + col


def test_registry_holds_the_required_connect4_concepts():
    table = concepts("connect4")
    assert set(REQUIRED) <= set(table)
    assert len(table) >= 30
    for c in table.values():
        meta = c.metadata()
        assert meta["kind"] and meta["tier"] and meta["doc"]
    with pytest.raises(ValueError, match="unknown concept"):
        select("connect4", ["win_in_1", "telepathy"])
    with pytest.raises(ValueError, match="kind 'fuzzy' is not one of"):
        Concept("x", "fuzzy", "me", "static", "", lambda g, s, c: None)
    with pytest.raises(ValueError, match="already has a concept named 'win_in_1'"):
        register_concept("connect4", table["win_in_1"])
    assert {c.tier for c in select("connect4", tiers=["static"])} == {"static"}
    assert "fork_available" in concepts("tictactoe") and "nim_sum_zero" in concepts("nim")


@pytest.mark.parametrize("width, height", SIZES)
def test_static_connect4_concepts_match_the_reference(width, height):
    game = games.get("connect4", width=width, height=height)
    rng = random.Random(width * 10 + height)
    pairs = random_positions(width, height, 60, rng)
    states = [p for p, _ in pairs]
    names = [c.name for c in select("connect4", tiers=["static", "search"])]
    labels = label(game, states, names)
    n_sq = width * height
    centre_cols = [width // 2] if width % 2 else [width // 2 - 1, width // 2]
    for i, (pos, ref) in enumerate(pairs):
        me, opp = ref.to_move(), 3 - ref.to_move()
        heights = [ref.height_of(c) for c in range(width)]
        playable = {(c, heights[c]) for c in range(width) if heights[c] < height}
        w_me, w_opp = ref.winning_squares(me), ref.winning_squares(opp)
        win_now = bool(w_me & playable)
        opp_now = w_opp & playable

        def spatial(squares):
            out = np.zeros(n_sq, dtype=bool)
            for c, r in squares:
                out[spatial_index(width, height, c, r)] = True
            return out

        assert np.array_equal(labels["playable_squares"][i], spatial(playable))
        assert np.array_equal(labels["threat_squares_me"][i], spatial(w_me))
        assert np.array_equal(labels["threat_squares_opp"][i], spatial(w_opp))
        assert labels["win_in_1"][i] == win_now
        assert labels["forced_block"][i] == (not win_now and bool(opp_now))
        assert labels["lost_in_1"][i] == (not win_now and len(opp_now) >= 2)
        assert np.array_equal(labels["poisoned_squares"][i], spatial({(c, r) for c, r in playable if (c, r + 1) in w_opp}))
        assert labels["n_threats_me"][i] == len(w_me) and labels["n_threats_opp"][i] == len(w_opp)
        for side, w in (("me", w_me), ("opp", w_opp)):
            latent = {(c, r) for c, r in w if (c, r) not in playable}
            assert labels[f"n_odd_threats_{side}"][i] == sum((r + 1) % 2 == 1 for c, r in latent)
            assert labels[f"n_even_threats_{side}"][i] == sum((r + 1) % 2 == 0 for c, r in latent)
            assert labels[f"n_stacked_threats_{side}"][i] == sum((c, r + 1) in w for c, r in w)
        assert labels["n_shared_threat_squares"][i] == len(w_me & w_opp)
        assert labels["centre_control"][i] == sum(
            (ref.rows[r][c] == me) - (ref.rows[r][c] == opp) for c in centre_cols for r in range(height))
        assert labels["first_player_to_move"][i] == (ref.moves % 2 == 0)
        assert labels["follow_up_parity"][i] == (ref.moves % 2 == 0 and all((height - h) % 2 == 0 for h in heights))
        # lines of four without the other side's stones
        lines = []
        for c in range(width):
            for r in range(height):
                for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
                    cells = [(c + k * dc, r + k * dr) for k in range(4)]
                    if all(0 <= cc < width and 0 <= rr < height for cc, rr in cells):
                        lines.append(cells)
        assert labels["n_open_lines_me"][i] == sum(all(ref.rows[r][c] != opp for c, r in ln) for ln in lines)
        assert labels["n_open_lines_opp"][i] == sum(all(ref.rows[r][c] != me for c, r in ln) for ln in lines)
        # one-ply concepts by playing each move on the reference board
        for c in range(width):
            if heights[c] >= height:
                assert not labels["safe_moves"][i][c] and not labels["losing_moves"][i][c]
                assert not labels["double_threat_moves"][i][c]
                continue
            child = ref.copy()
            wins = child.wins_by_playing(c)
            child.play(c)
            opp_can_win = not wins and any(child.wins_by_playing(cc) for cc in child.legal())
            assert labels["safe_moves"][i][c] == (not opp_can_win), (pos.history, c)
            assert labels["losing_moves"][i][c] == opp_can_win
            if wins or opp_can_win:
                assert not labels["double_threat_moves"][i][c]
            else:
                hts = [child.height_of(cc) for cc in range(width)]
                mine = child.winning_squares(me)
                n_playable_threats = sum((cc, hts[cc]) in mine for cc in range(width) if hts[cc] < height)
                assert labels["double_threat_moves"][i][c] == (n_playable_threats >= 2)


def brute_forced_win(ref: RefBoard, plies: int) -> bool:
    """Can the side to move force a line within `plies` plies? (plain minimax)"""
    if plies < 1 or ref.over():
        return False
    for c in ref.legal():
        if ref.wins_by_playing(c):
            return True
    if plies < 3:
        return False
    for c in ref.legal():
        child = ref.copy()
        child.play(c)
        if child.over():
            continue
        replies = child.legal()
        ok = True
        for r in replies:
            if child.wins_by_playing(r):
                ok = False
                break
            grand = child.copy()
            grand.play(r)
            if not brute_forced_win(grand, plies - 2):
                ok = False
                break
        if ok and replies:
            return True
    return False


def test_forced_win_concepts_match_brute_force_and_the_solver():
    game = games.get("connect4", width=5, height=4)
    rng = random.Random(7)
    pairs = random_positions(5, 4, 80, rng)
    states = [p for p, _ in pairs]
    labels = label(game, states, ["forced_win_in_1", "forced_win_in_3", "forced_win_in_5", "moves_to_end", "score"])
    for i, (pos, ref) in enumerate(pairs):
        for k in (1, 3, 5):
            assert labels[f"forced_win_in_{k}"][i] == brute_forced_win(ref, k), (pos.history, k)
            # the exact score says how fast the side to move can force a win
            solver_says = labels["score"][i] > 0 and labels["moves_to_end"][i] <= k
            assert labels[f"forced_win_in_{k}"][i] == solver_says, (pos.history, k)


def test_solver_concepts_are_exact_and_consistent():
    game = games.get("connect4", width=5, height=4)
    rng = random.Random(11)
    pairs = random_positions(5, 4, 40, rng, max_moves=14)
    pairs = [(p, r) for p, r in pairs if p.moves >= 6]  # keep the reference minimax quick
    states = [p for p, _ in pairs]
    names = ["value", "score", "column_scores", "optimal_moves", "good_moves", "n_good_moves", "only_move", "decisive"]
    labels = label(game, states, names)
    for i, (pos, ref) in enumerate(pairs):
        score = ref_score(ref)
        assert labels["score"][i] == score and labels["value"][i] == np.sign(score)
        col_scores = []
        for c in range(5):
            if ref.height_of(c) >= 4:
                assert np.isnan(labels["column_scores"][i][c])
                col_scores.append(None)
                continue
            child = ref.copy()
            win = child.wins_by_playing(c)
            child.play(c)
            v = (20 + 1 - ref.moves) // 2 if win else (0 if child.over() else -ref_score(child))
            assert labels["column_scores"][i][c] == v
            col_scores.append(v)
        legal = [v for v in col_scores if v is not None]
        good = [v is not None and np.sign(v) == np.sign(score) for v in col_scores]
        assert list(labels["good_moves"][i]) == good
        assert list(labels["optimal_moves"][i]) == [v is not None and v == max(legal) for v in col_scores]
        assert labels["n_good_moves"][i] == sum(good) and labels["only_move"][i] == (sum(good) == 1)
        assert labels["decisive"][i] == (len({int(np.sign(v)) for v in legal}) >= 2)


def test_spatial_concepts_mirror_with_the_board():
    game = games.get("connect4")
    rng = random.Random(5)
    states = [p for p, _ in random_positions(7, 6, 30, rng)]
    mirrored = [s.mirror() for s in states]
    spatial = [c.name for c in select("connect4", tiers=["static", "search", "rules"]) if c.kind in ("spatial", "per_column")]
    a, b = label(game, states, spatial), label(game, mirrored, spatial)
    for name in spatial:
        x, y = a[name], b[name]
        if x.shape[1] == 7:
            assert np.array_equal(x[:, ::-1], y), name
        else:
            assert np.array_equal(x.reshape(-1, 6, 7)[:, :, ::-1], y.reshape(-1, 6, 7)), name


def test_tictactoe_and_nim_concepts():
    ttt = games.get("tictactoe")
    states = [ttt.parse(t) for t in ["xx..o....", "xo.......", "x.o.x.o..", "........."]]
    lab = label(ttt, states)
    assert list(lab["must_block"]) == [True, False, False, False]
    assert list(lab["win_in_1"]) == [False, False, True, False]  # x completes the diagonal 0-4-8
    assert lab["threat_squares_opp"][0][2] and lab["threat_squares_opp"][0].sum() == 1
    assert not lab["fork_available"][3] and lab["centre"][0] == 1 and lab["centre"][3] == 0
    assert lab["value"][3] == 0 and lab["n_good_moves"][3] == 9
    nim = games.get("nim", heaps=(3, 4, 5))
    s = [nim.initial_state(), nim.parse("1,4,5|1"), nim.parse("0,0,2|0")]
    lab = label(nim, s)
    assert list(lab["nim_sum"]) == [2, 0, 2] and list(lab["nim_sum_zero"]) == [False, True, False]
    assert list(lab["value"]) == [1, -1, 1] and list(lab["n_winning_moves"]) == [1, 0, 1]
    assert list(lab["n_nonempty_heaps"]) == [3, 3, 1]


def test_solution_cache_round_trip_and_reuse(tmp_path):
    from solver.cache import SolutionCache

    game = games.get("connect4", width=5, height=4)
    rng = random.Random(13)
    states = [p for p, _ in random_positions(5, 4, 20, rng, max_moves=14) if p.moves >= 6]
    states += [s.mirror() for s in states[:5]]  # mirror images share rows, columns flipped
    names = ["score", "column_scores", "good_moves"]
    plain = label(game, states, names)
    with SolutionCache(tmp_path / "solutions.sqlite") as store:
        first = {c.name: c.compute(game, states, cache) for cache in [{"solution_cache": store}] for c in select("connect4", names)}
        assert store.misses > 0 and len(store) <= len(states)
        store.hits = store.misses = 0
        again = {c.name: c.compute(game, states, cache) for cache in [{"solution_cache": store}] for c in select("connect4", names)}
        assert store.misses == 0 and store.hits == len(states)
    for name in names:
        np.testing.assert_array_equal(first[name], plain[name])
        np.testing.assert_array_equal(again[name], plain[name])


def reference_rules(ref: RefBoard) -> dict:
    """Allis' rule instances from the literal requirements, on the plain board (rows 1..H)."""
    w, h = ref.width, ref.height
    me, opp = ref.to_move(), 3 - ref.to_move()
    empty = {(c, r) for c in range(w) for r in range(h) if ref.rows[r][c] == 0}
    playable = {(c, ref.height_of(c)) for c in range(w) if ref.height_of(c) < h}

    def odd(r):  # 0-based row -> Allis row parity
        return (r + 1) % 2 == 1

    claim = [((c, r), (c, r + 1)) for c, r in empty if (c, r + 1) in empty and not odd(r + 1)]
    vert = [((c, r), (c, r + 1)) for c, r in empty if (c, r + 1) in empty and odd(r + 1)]
    high = [((c, r), (c, r + 1), (c, r + 2)) for c, r in empty
            if (c, r + 1) in empty and (c, r + 2) in empty and not odd(r) and odd(r + 1) and not odd(r + 2)]
    out = {"claimeven": len(claim), "vertical": len(vert), "baseinverse": len(playable) * (len(playable) - 1) // 2,
           "lowinverse": sum(1 for i, a in enumerate(vert) for b in vert[i + 1:] if a[0][0] != b[0][0]),
           "highinverse": sum(1 for i, a in enumerate(high) for b in high[i + 1:] if a[0][0] != b[0][0])}
    out["baseclaim"] = sum(1 for b in playable if (b[0], b[1] + 1) in empty and not odd(b[1] + 1)
                           for a in playable for c in playable if a != b and c != b and a < c)
    lines = []
    for c in range(w):
        for r in range(h):
            for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
                cells = [(c + k * dc, r + k * dr) for k in range(4)]
                if all(0 <= cc < w and 0 <= rr < h for cc, rr in cells):
                    lines.append((cells, dc != 0))
    for side, theirs in (("me", opp), ("opp", me)):
        after = before = special = 0
        for cells, non_vertical in lines:
            if any(ref.rows[r][c] == theirs for c, r in cells):
                continue
            e = [(c, r) for c, r in cells if (c, r) in empty]
            if not e or any(r == h - 1 for c, r in e):
                continue
            if all(not odd(r) and (c, r - 1) in empty for c, r in e):
                after += 1
            if non_vertical and all(not odd(r) or (r > 0 and (c, r - 1) in empty) for c, r in e):
                before += 1
                cols = {c for c, _ in cells}
                outside = [p for p in playable if p[0] not in cols]
                if sum(p in playable for p in e) == 1:
                    special += len(outside)
        out[f"aftereven_{side}"], out[f"before_{side}"], out[f"specialbefore_{side}"] = after, before, special
    return out


@pytest.mark.parametrize("width, height", [(7, 6), (6, 5), (5, 4)])
def test_allis_rule_counts_match_the_literal_reference(width, height):
    game = games.get("connect4", width=width, height=height)
    pairs = random_positions(width, height, 50, random.Random(21 + width), max_moves=width * height // 2)
    pairs.append((Position.empty(width, height), RefBoard(width, height)))
    labels = label(game, [p for p, _ in pairs], [c.name for c in select("connect4", tiers=["rules"])])
    for i, (pos, ref) in enumerate(pairs):
        for key, expected in reference_rules(ref).items():
            assert labels[f"n_{key}"][i] == expected, (pos.history, key)
            assert labels[f"{key}_squares"][i].any() == (expected > 0), (pos.history, key)


def test_allis_rule_counts_on_the_empty_board():
    lab = label(games.get("connect4"), [Position.empty()], [c.name for c in select("connect4", tiers=["rules"])])
    got = {k[2:]: int(v[0]) for k, v in lab.items() if k.startswith("n_")}
    # 7 columns x 3 Claimevens (rows 1-2, 3-4, 5-6), 2 Verticals (rows 2-3, 4-5), 2 Highinverse triples
    assert got["claimeven"] == 21 and got["vertical"] == 14 and got["baseinverse"] == 21
    assert got["lowinverse"] == got["highinverse"] == (14 * 14 - 7 * 4) // 2 and got["baseclaim"] == 7 * 15
    assert got["aftereven_me"] == 8  # horizontal groups in rows 2 and 4
    assert got["before_me"] == 24 and got["specialbefore_me"] == 0


def test_concepts_select_and_label_take_a_name_or_a_game():
    small = games.get("connect4", width=5, height=4)
    assert concepts(small).keys() == concepts("connect4").keys()
    assert [c.name for c in select(games.get("tictactoe"), tiers=["static"])] == \
        [c.name for c in select("tictactoe", tiers=["static"])]
    by_name = label("connect4", [Position.from_moves("4453")], ["win_in_1", "n_odd_threats_me"])
    by_game = label(games.get("connect4"), [Position.from_moves("4453")], ["win_in_1", "n_odd_threats_me"])
    assert {k: v.tolist() for k, v in by_name.items()} == {k: v.tolist() for k, v in by_game.items()}
    with pytest.raises(ValueError, match="unknown game 'go'"):
        concepts("go")
    with pytest.raises(ValueError, match="expected a game name such as 'connect4' or a games.base.Game, got int"):
        label(7, [Position.from_moves("44")])


def test_label_accepts_move_strings_through_the_games_parser():
    game = games.get("connect4")
    texts = ["4453", "", "1122334"]
    from_text = label(game, texts, ["win_in_1", "threat_squares_me"])
    from_states = label(game, [game.parse(t) for t in texts], ["win_in_1", "threat_squares_me"])
    assert all(np.array_equal(from_text[k], from_states[k]) for k in from_text)
    assert label("tictactoe", ["xx.oo...."], ["win_in_1"])["win_in_1"].tolist() == [True]
    with pytest.raises(ValueError, match=r"state 1: '48' is not a ConnectFour\(7x6\) position: .*column 8"):
        label(game, ["44", "48"], ["win_in_1"])
    with pytest.raises(ValueError, match="got one string '4453'; wrap it in a list"):
        label(game, "4453", ["win_in_1"])


def test_label_refuses_states_of_another_board_or_game():
    small = games.get("connect4", width=5, height=4)
    with pytest.raises(ValueError, match=r"state 1 does not belong to ConnectFour\(5x4\): it is a 7x6 position"):
        label(small, [Position.from_moves("3", 5, 4), Position.from_moves("4453")], ["win_in_1"])
    with pytest.raises(ValueError, match="state 0 is a TicTacToeState; ConnectFour.* positions are Position objects"):
        label(small, [games.get("tictactoe").initial_state()], ["win_in_1"])
    nim = games.get("nim", heaps=(1, 2))
    with pytest.raises(ValueError, match=r"heaps \(3, 4, 5\) do not fit the starting heaps \(1, 2\)"):
        label(nim, [games.get("nim").initial_state()])
