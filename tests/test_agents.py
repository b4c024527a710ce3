"""The agent: network layout, checkpoints, opponent pool, evaluation metrics, training and resume."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import games
from common.atomic import atomic_write_text
from agents.checkpoints import (
    checkpoint_schedule,
    list_checkpoints,
    load_agent,
    resolve_checkpoint,
)
from agents.evaluation import LabelledSet, PolicyPlayer, move_quality, play_games
from agents.network import BoardPolicy, BoardResNet, NetworkConfig, probe_layers
from agents.pool import OpponentPool
from agents.runs import read_evaluations
from agents.selfplay import TrainConfig, train
from games.connect4.players import WIN, AlphaBetaPlayer, lines_of_four, win_or_block
from games.connect4.position import Position
from games.envs.vector import SelfPlayVecEnv

torch.set_num_threads(1)

TINY_NET = {"channels": 8, "blocks": 1, "head_channels": 2, "head_hidden": 16}


def tiny_config(**overrides) -> TrainConfig:
    base = dict(game="tictactoe", total_timesteps=2048, n_envs=16, n_steps=32, batch_size=256, n_epochs=2,
                network=dict(TINY_NET), checkpoints=3, snapshot_every=512, eval_games=4, eval_positions=10,
                eval_decisive=10, torch_threads=1)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    final = train(tiny_config(), run, progress_bar=False)
    return run, final


# ----------------------------------------------------------------------------- network
def test_probe_layers_name_every_hookable_layer_with_shapes():
    from sb3_contrib import MaskablePPO

    env = SelfPlayVecEnv("connect4", num_envs=2, opponent="random", seed=0)
    model = MaskablePPO(BoardPolicy, env, n_steps=8, batch_size=16, policy_kwargs={"network": {"channels": 16, "blocks": 2}},
                        device="cpu")
    layers = {layer.name: layer for layer in probe_layers(model.policy)}
    assert list(layers)[:3] == ["features_extractor.stem", "features_extractor.blocks.0", "features_extractor.blocks.1"]
    assert layers["features_extractor.blocks.1"].shape == (16, 6, 7) and layers["features_extractor.blocks.1"].spatial
    assert layers["mlp_extractor.policy_net.conv"].spatial and not layers["mlp_extractor.policy_net.fc"].spatial
    assert layers["action_net"].shape == (7,) and layers["value_net"].shape == (1,)
    modules = dict(model.policy.named_modules())
    assert all(name in modules for name in layers)  # hookable by name


def test_network_rejects_bad_shapes_and_sizes():
    import gymnasium as gym

    with pytest.raises(ValueError, match="channels, height, width"):
        BoardResNet(gym.spaces.Box(0, 1, (42,)))
    with pytest.raises(ValueError, match="channels"):
        NetworkConfig(channels=0)


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_schedule_is_log_spaced_on_rollout_boundaries():
    steps = checkpoint_schedule(2_400_000, 4096, 12)
    assert steps[0] == 4096 and steps[-1] >= 2_400_000 and steps[-1] - 4096 < 2_400_000
    assert all(s % 4096 == 0 for s in steps) and steps == sorted(set(steps))
    gaps = np.diff(np.log(steps))
    assert gaps.max() < 3 * gaps.min() + 0.5  # roughly even in log space
    assert checkpoint_schedule(100, 4096, 5) == [4096]


def test_atomic_write_and_checkpoint_errors(tmp_path):
    atomic_write_text("hello", tmp_path / "a.txt")
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left behind
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "missing.zip")
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="not a checkpoint"):
        resolve_checkpoint(tmp_path / "a.txt")
    broken = tmp_path / "checkpoints" / "step_000000001.zip"
    broken.parent.mkdir()
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        load_agent(tmp_path)


# ----------------------------------------------------------------------------- pool
def test_pool_draws_opponents_by_probability_and_round_trips(tiny_run):
    run, final = tiny_run
    model = load_agent(final)
    pool = OpponentPool(model.policy, num_envs=4000, max_size=2, latest_prob=0.5, random_prob=0.2, seed=0)
    pool.new_episodes(np.arange(4000))
    # no snapshots yet: the snapshot share falls back to the live policy
    assert abs((pool.assignment == OpponentPool.RANDOM).mean() - 0.2) < 0.03
    for t in (10, 20, 30):
        pool.add_snapshot(t)
    assert pool.snapshot_steps == [20, 30]  # the oldest is dropped
    pool.new_episodes(np.arange(4000))
    shares = [(pool.assignment == k).mean() for k in (OpponentPool.LATEST, OpponentPool.RANDOM, 0, 1)]
    assert np.allclose(shares, [0.5, 0.2, 0.15, 0.15], atol=0.03)
    game = games.get("tictactoe")
    state = game.play(game.initial_state(), 4)
    obs = np.repeat(game.observation(state)[None], 4000, axis=0)
    masks = np.repeat(game.legal_mask(state)[None], 4000, axis=0)
    actions = pool(obs, masks, np.arange(4000))
    assert masks[0, actions].all()  # every opponent, random or policy, plays legally
    copy = OpponentPool(model.policy, num_envs=4000, max_size=2, seed=1)
    copy.load_state_dict(pool.state_dict())
    assert copy.snapshot_steps == [20, 30] and (copy.assignment == pool.assignment).all()
    for a, b in zip(copy.snapshots[1].parameters(), pool.snapshots[1].parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="latest_prob"):
        OpponentPool(model.policy, 4, latest_prob=0.9, random_prob=0.2)


def test_pool_scripted_players_get_the_real_board_and_their_share():
    """Scripted opponents (a game's baseline players) play from the env's own boards."""
    game = games.get("connect4")
    seen = []

    def lowest_column(g, state, rng):  # deterministic, records what it was shown
        seen.append((int(state.mask), int(state.current)))
        return int(np.flatnonzero(g.legal_mask(state))[0])

    pool = OpponentPool(None, num_envs=6, max_size=0, latest_prob=0.0, random_prob=0.0, seed=0,
                        scripted={"lowest": lowest_column}, scripted_prob=1.0, game=game)
    env = SelfPlayVecEnv(game, num_envs=6, opponent=pool, seed=0)
    pool.bind_states(env.state)
    env.reset()
    assert (pool.assignment == OpponentPool.SCRIPTED).all()
    # boards where the learner is second: the scripted player opened in column 0 ...
    assert [env.state(i).moves for i in range(6)] == [0, 1, 0, 1, 0, 1]
    assert seen == [(0, 0)] * 3

    def bits(text):
        position = game.parse(text)
        return int(position.mask), int(position.current)

    seen.clear()
    env.step(np.full(6, 3))
    # ... and every reply was chosen on the board the learner had just moved on
    assert seen == [bits("4") if i % 2 == 0 else bits("14") for i in range(6)]
    assert [bits(t) for t in ("41", "141") * 3] == [(int(env.state(i).mask), int(env.state(i).current))
                                                    for i in range(6)]
    shares = OpponentPool(None, num_envs=4000, latest_prob=0.5, random_prob=0.1, scripted_prob=0.3, game=game,
                          scripted=game.baseline_players(), seed=1)
    shares.new_episodes(np.arange(4000))
    scripted = shares.assignment <= OpponentPool.SCRIPTED
    assert abs(scripted.mean() - 0.3) < 0.03
    assert set(np.unique(shares.assignment[scripted])) == {-3, -4, -5}  # all three players drawn
    with pytest.raises(ValueError, match="scripted players"):
        OpponentPool(None, 4, scripted_prob=0.2, game=game)
    with pytest.raises(ValueError, match="sum"):
        OpponentPool(None, 4, latest_prob=0.6, random_prob=0.1, scripted_prob=0.4, game=game,
                     scripted={"lowest": lowest_column})
    unbound = OpponentPool(None, 2, latest_prob=0.0, scripted_prob=1.0, game=game, scripted={"lowest": lowest_column})
    unbound.new_episodes(np.arange(2))
    with pytest.raises(RuntimeError, match="bind_states"):
        unbound(np.zeros((2, *game.obs_shape), np.float32), np.ones((2, 7), bool), np.arange(2))
    with pytest.raises(ValueError, match="unknown scripted players"):
        TrainConfig(scripted_players=["alphabeta-9"]).scripted_opponents(game)


def test_pool_in_the_vec_env_is_told_about_every_new_game():
    calls = []

    class Recorder:
        def new_episodes(self, rows):
            calls.append(("new", sorted(rows.tolist())))

        def __call__(self, obs, masks, rows):
            calls.append(("act", sorted(rows.tolist())))
            return np.array([np.flatnonzero(m)[0] for m in masks])

    env = SelfPlayVecEnv("tictactoe", num_envs=4, opponent=Recorder(), seed=0)
    env.reset()
    assert calls[0] == ("new", [0, 1, 2, 3])
    assert calls[1] == ("act", [1, 3])  # boards where the learner is second: the opponent opens
    for _ in range(6):
        env.step(np.array([np.flatnonzero(m)[-1] for m in env.action_masks()]))
    assert any(kind == "new" and rows != [0, 1, 2, 3] for kind, rows in calls[2:])  # finished boards restart


# ----------------------------------------------------------------------------- evaluation
class FixedPlayer(PolicyPlayer):
    """Plays a given action per position (stands in for a network in metric tests)."""

    def __init__(self, choices):
        self.choices = list(choices)

    def act(self, obs, masks):
        out, self.choices = np.array(self.choices[: len(obs)]), self.choices[len(obs):]
        return out


def test_move_quality_on_positions_with_known_answers():
    game = games.get("connect4")
    # "121212": X to move has three in column 0 and O three in column 1: only column 0 wins
    # (at once); every other move lets O win. "4455": an ordinary opening position.
    texts = ["121212", "4455"]
    labelled = LabelledSet("hand", texts, np.array([game.action_scores(game.parse(t)) for t in texts]))
    best = [int(np.nanargmax(row)) for row in labelled.scores]
    assert best[0] == 0  # the immediate win
    q = move_quality(FixedPlayer(best), game, labelled)
    no_errors = {"missed_immediate_win": 0, "allowed_immediate_loss": 0, "deeper": 0}
    assert q == {"n": 2, "perfect_rate": 1.0, "good_rate": 1.0, "errors": no_errors}
    # a move that throws the win away is neither perfect nor good
    losing = [int(np.nanargmin(labelled.scores[0])), best[1]]
    assert np.sign(labelled.scores[0][losing[0]]) < 0
    q = move_quality(FixedPlayer(losing), game, labelled)
    assert q["perfect_rate"] == 0.5 and q["good_rate"] == 0.5
    assert q["errors"] == {**no_errors, "missed_immediate_win": 1}
    # in a lost position every move is good, but only the longest defence is perfect
    lost = "44556"  # X holds 4-5-6 on the bottom row, open at both ends: O to move is lost
    scores = game.action_scores(game.parse(lost))
    assert np.nanmax(scores) < 0
    worst = int(np.nanargmin(scores))
    q = move_quality(FixedPlayer([worst]), game, LabelledSet("lost", [lost], scores[None]))
    assert q["good_rate"] == 1.0 and q["perfect_rate"] == float(scores[worst] == np.nanmax(scores))


def test_error_kinds_tell_one_ply_blunders_from_deeper_ones():
    from agents.evaluation import error_kind

    game = games.get("connect4")
    # O holds 2-3-4 on the bottom row, 1 is X's, 5 is open: X must block in column 5
    must_block = game.parse("721364")
    assert error_kind(game, must_block, 0) == "allowed_immediate_loss"
    # X can win at once in column 1 (three stacked there) and plays elsewhere
    assert error_kind(game, game.parse("121212"), 3) == "missed_immediate_win"
    # a quiet opening position: any mistake there is a deeper one
    assert error_kind(game, game.parse("4455"), 0) == "deeper"
    # playing under the opponent's threat square (column 5 here: the reply on top of it wins)
    under = game.parse("677767744")
    assert [error_kind(game, under, a) for a in game.legal_actions(under)].count("allowed_immediate_loss") == 1
    assert error_kind(game, under, 4) == "allowed_immediate_loss"


def _random_positions(game, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Observations, legal masks and texts of `n` positions reached by random play (non-terminal)."""
    rng = random.Random(seed)
    obs, masks, texts = [], [], []
    while len(obs) < n:
        state = game.initial_state()
        for _ in range(rng.randrange(0, 20)):
            if game.is_terminal(state):
                break
            state = game.play(state, rng.choice(game.legal_actions(state)))
        if not game.is_terminal(state):
            obs.append(game.observation(state))
            masks.append(game.legal_mask(state))
            texts.append(game.to_text(state))
    return np.stack(obs).astype(np.float32), np.stack(masks), texts


@pytest.mark.parametrize("name", ["connect4", "tictactoe"])
def test_symmetrized_player_is_exactly_equivariant_where_the_network_is_not(name):
    from sb3_contrib import MaskablePPO

    torch.manual_seed(0)
    game = games.get(name)
    env = SelfPlayVecEnv(name, num_envs=2, opponent="random", seed=0)
    model = MaskablePPO(BoardPolicy, env, n_steps=8, batch_size=16, policy_kwargs={"network": TINY_NET}, device="cpu")
    for p in model.policy.parameters():  # a random network with large, asymmetric weights
        torch.nn.init.normal_(p, std=0.5)
    obs, masks, texts = _random_positions(game, 24, seed=1)
    syms = game.symmetries()
    assert len(syms) == {"connect4": 2, "tictactoe": 8}[name]
    raw, views = PolicyPlayer(model), PolicyPlayer(model, symmetries=syms)
    assert repr(views).endswith(f"{len(syms)} views)")
    for sym in syms[1:]:
        moved_obs, moved_masks = sym.apply_planes(obs), sym.apply_actions(masks)
        # averaged over the views, the log-probabilities of the moved board are the moved log-probabilities
        np.testing.assert_allclose(views.mean_log_probs(moved_obs, moved_masks),
                                   sym.apply_actions(views.mean_log_probs(obs, masks)), atol=1e-4)
        # the network alone is not symmetric
        assert not np.allclose(raw.mean_log_probs(moved_obs, moved_masks), sym.apply_actions(raw.mean_log_probs(obs, masks)),
                               atol=1e-2)
    # the identity view alone is the plain greedy network, and the views never pick an illegal move
    assert np.array_equal(PolicyPlayer(model, symmetries=syms[:1]).act(obs, masks), raw.act(obs, masks))
    chosen = views.act(obs, masks)
    assert masks[np.arange(len(chosen)), chosen].all()
    # the single-view log-probabilities are the policy's own, normalised over the legal moves
    logp = raw.mean_log_probs(obs, masks)
    np.testing.assert_allclose(np.exp(np.where(masks, logp, -np.inf)).sum(axis=1), 1.0, atol=1e-5)
    # so the player over all views plays symmetrically, the network alone does not
    from agents.evaluation import symmetry_consistency

    assert symmetry_consistency(views, game, texts) == 1.0 and symmetry_consistency(raw, game, texts) < 1.0
    with pytest.raises(ValueError, match="identity"):
        PolicyPlayer(model, symmetries=syms[1:])


def test_symmetry_consistency_counts_moves_that_commute_with_the_board_symmetries():
    from agents.evaluation import symmetry_consistency

    game = games.get("connect4")
    texts = ["4455", "1", "7", "12", "76", "444"]  # "444" is its own mirror image: left out
    # the leftmost legal column is never the mirror image of itself off the centre
    assert symmetry_consistency(_FirstLegalPlayer(), game, texts) == 0.0
    assert np.isnan(symmetry_consistency(_FirstLegalPlayer(), game, ["444"]))  # only a self-mirrored board
    nim = games.get("nim", heaps=(1, 3, 5))
    assert len(nim.symmetries()) == 1 and np.isnan(symmetry_consistency(_FirstLegalPlayer(), nim, ["1,2,3|0"]))


def test_play_games_counts_both_colours():
    game = games.get("tictactoe")
    from games.envs.opponents import perfect_opponent

    # a perfect "agent" never loses to random and draws against perfect
    results = play_games(game, _OraclePlayer(game), perfect_opponent, 20, seed=0)
    assert results["all"]["loss"] == 0.0 and results["all"]["draw"] == 1.0
    results = play_games(game, _OraclePlayer(game), lambda g, s, r: int(r.choice(g.legal_actions(s))), 40, seed=0)
    assert results["all"]["loss"] == 0.0 and results["as_first"]["win"] > 0.8
    assert results["games"] == 40
    with pytest.raises(ValueError, match="at least 2"):
        play_games(game, _OraclePlayer(game), perfect_opponent, 1)


class _FirstLegalPlayer(PolicyPlayer):
    """Plays the lowest legal action: deterministic, like a greedy network."""

    def __init__(self) -> None:
        self.name = "first-legal"

    def act(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return masks.argmax(axis=1)


def test_paired_random_openings_vary_games_and_swap_colours():
    game = games.get("connect4")
    first_legal = lambda g, s, r: int(g.legal_actions(s)[0])  # noqa: E731  (the same rule as the agent)
    same = play_games(game, _FirstLegalPlayer(), first_legal, 20, seed=0)
    assert same["as_first"]["win"] in (0.0, 1.0) and same["opening_plies"] == 0  # one game, replayed
    paired = play_games(game, _FirstLegalPlayer(), first_legal, 60, seed=0, opening_plies=4)
    assert 0.0 < paired["as_first"]["win"] < 1.0  # the openings make games differ
    # each opening is played with both colours by identical players: results mirror exactly
    assert paired["as_first"]["win"] == paired["as_second"]["loss"]
    assert paired["as_first"]["loss"] == paired["as_second"]["win"]
    # a scripted player measured in the agent's seat plays the same games as the batched one
    assert play_games(game, first_legal, first_legal, 60, seed=0, opening_plies=4) == paired
    with pytest.raises(ValueError, match="opening_plies"):
        play_games(game, _FirstLegalPlayer(), first_legal, 2, opening_plies=-1)


class _OraclePlayer(PolicyPlayer):
    """Perfect tic-tac-toe from observation planes (rebuilds the state, asks the oracle)."""

    def __init__(self, game):
        self.game = game

    def act(self, obs, masks):
        out = []
        for planes in obs:
            state = self.game.initial_state()
            mine, theirs = np.flatnonzero(planes[0].ravel()), np.flatnonzero(planes[1].ravel())
            first, second = (mine, theirs) if len(mine) == len(theirs) else (theirs, mine)
            for i in range(len(first) + len(second)):
                state = self.game.play(state, int((first if i % 2 == 0 else second)[i // 2]))
            out.append(self.game.optimal_actions(state)[0])
        return np.array(out)


def test_win_or_block_and_alpha_beta_on_hand_made_positions():
    game = games.get("connect4")
    rng = np.random.default_rng(0)
    win_now = Position.from_moves("121212")  # X: three in column 1; O: three in column 2
    assert win_or_block(game, win_now, rng) == 0
    block = Position.from_moves("12121")  # O to move must block column 1
    assert win_or_block(game, block, rng) == 0
    for depth in (1, 2, 4):
        assert AlphaBetaPlayer(depth)(game, win_now, rng) == 0
    assert AlphaBetaPlayer(2)(game, block, rng) == 0  # depth 2 sees the threat
    assert AlphaBetaPlayer(2).scores(win_now)[0] == WIN + 2
    with pytest.raises(ValueError, match="depth must be >= 1, got 0"):
        AlphaBetaPlayer(0)


def _reference_negamax(p: Position, depth: int) -> int:
    from games.connect4.players import _LINE_WEIGHTS

    if p.moves == p.size.width * p.size.height:
        return 0
    if p.can_win_next():
        return WIN + depth
    if depth == 0:
        score = 0
        for line in lines_of_four(p.size.width, p.size.height):
            m, o = bin(int(line) & p.current).count("1"), bin(int(line) & p.opponent).count("1")
            score += int(_LINE_WEIGHTS[m]) if o == 0 else -int(_LINE_WEIGHTS[o]) if m == 0 else 0
        centre = ((1 << p.size.height) - 1) << (p.size.width // 2 * (p.size.height + 1))
        return score + 2 * (bin(p.current & centre).count("1") - bin(p.opponent & centre).count("1"))
    return max(-_reference_negamax(p.play(c), depth - 1) for c in p.legal_moves())


def test_alpha_beta_scores_match_plain_minimax():
    rng = random.Random(3)
    for _ in range(25):
        p = Position.empty(7, 6)
        for _ in range(rng.randrange(0, 25)):
            if p.is_terminal() or p.can_win_next():
                break
            p = p.play(rng.choice(p.legal_moves()))
        if p.is_terminal():
            continue
        for depth in (1, 3):
            got = AlphaBetaPlayer(depth).scores(p)
            for c in p.legal_moves():
                want = WIN + depth if p.is_winning_move(c) else -_reference_negamax(p.play(c), depth - 1)
                assert got[c] == want, (p.history, depth, c)


# ----------------------------------------------------------------------------- training
def test_run_folder_holds_checkpoints_evaluations_and_plot(tiny_run):
    run, final = tiny_run
    steps = [s for s, _ in list_checkpoints(run)]
    assert steps == [0] + checkpoint_schedule(2048, 16 * 32, 3) and final.exists()  # step 0: the untrained network
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["seed"] == 0 and "torch" in config["versions"]
    records = read_evaluations(run)
    assert [r.timestep for r in records] == steps
    assert set(records[-1].games) == {"random", "perfect"} and "decisive" in records[-1].move_quality
    assert records[-1].views == 8  # tic-tac-toe's symmetries
    assert set(records[-1].symmetry_consistency) == set(records[-1].move_quality)
    assert (run / "strength.png").read_bytes()[:4] == b"\x89PNG"
    assert any((run / "tb").rglob("events.out.tfevents.*"))


def test_resume_continues_from_the_last_checkpoint(tiny_run, tmp_path):
    import shutil

    run, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(), copy, progress_bar=False)
    with pytest.raises(ValueError, match="differ"):
        train(tiny_config(total_timesteps=4096, seed=1), copy, resume=True, progress_bar=False)
    before = load_agent(copy)
    final = train(tiny_config(), copy, resume=True, progress_bar=False, evaluate=False)
    assert final == resolve_checkpoint(copy)  # nothing left to do: same last checkpoint
    assert load_agent(copy).num_timesteps == before.num_timesteps
    # drop the last checkpoint (as if killed before it): resume re-trains up to it
    steps = list_checkpoints(copy)
    steps[-1][1].unlink()
    final = train(tiny_config(), copy, resume=True, progress_bar=False, evaluate=False)
    assert [s for s, _ in list_checkpoints(copy)] == [s for s, _ in steps]
    assert load_agent(final).num_timesteps == steps[-1][0]
    assert [r.timestep for r in read_evaluations(copy)] == [s for s, _ in steps]  # replaced, not duplicated
    # a longer budget extends the run from where it stopped
    final = train(tiny_config(total_timesteps=3072), copy, resume=True, progress_bar=False, evaluate=False)
    assert load_agent(final).num_timesteps == 3072 and list_checkpoints(copy)[-1][0] == 3072


def test_short_training_beats_random_measurably(tmp_path):
    """A few seconds of self-play on tic-tac-toe: clearly better than a random player is."""
    config = tiny_config(total_timesteps=30_000, n_envs=32, n_steps=64, batch_size=512, n_epochs=4,
                         network={"channels": 16, "blocks": 1, "head_channels": 2, "head_hidden": 32},
                         learning_rate=1e-3, checkpoints=2, snapshot_every=5000)
    final = train(config, tmp_path / "run", progress_bar=False, evaluate=False)
    game = games.get("tictactoe")
    random_player = lambda g, s, r: int(r.choice(g.legal_actions(s)))  # noqa: E731

    class RandomPlayer(PolicyPlayer):
        def __init__(self):
            self.rng = np.random.default_rng(7)

        def act(self, obs, masks):
            return np.array([self.rng.choice(np.flatnonzero(m)) for m in masks])

    baseline = play_games(game, RandomPlayer(), random_player, 400, seed=1)["all"]  # about 44% / 43%
    after = play_games(game, PolicyPlayer(load_agent(final)), random_player, 400, seed=1)["all"]
    assert after["win"] >= baseline["win"] + 0.15 and after["loss"] <= baseline["loss"] - 0.15, (baseline, after)


def test_bfloat16_runs_the_trunk_in_the_update_only(tmp_path, monkeypatch):
    """update_dtype=bfloat16: PPO's update sees a bf16 trunk with float32 features; rollouts,
    checkpoints and every later use run float32; a default (float32) run never autocasts."""
    from sb3_contrib import MaskablePPO

    calls: list[tuple[bool, torch.dtype, torch.dtype]] = []  # (in the update, trunk output, features)
    in_update = [False]
    trunk_forward, update = BoardResNet.forward, MaskablePPO.train

    def recording_forward(self, obs):
        out = trunk_forward(self, obs)
        calls.append((in_update[0], out.dtype))
        return out

    def recording_update(self):
        in_update[0] = True
        try:
            update(self)
        finally:
            in_update[0] = False

    monkeypatch.setattr(BoardResNet, "forward", recording_forward)
    monkeypatch.setattr(MaskablePPO, "train", recording_update)
    final = train(tiny_config(total_timesteps=1024, checkpoints=2, update_dtype="bfloat16"), tmp_path / "bf16",
                  progress_bar=False, evaluate=False)
    assert {d for u, d in calls if u} == {torch.bfloat16}
    assert {d for u, d in calls if not u} == {torch.float32}  # rollouts: the float32 network
    model = load_agent(final)
    assert model.policy.trunk_dtype is None and model.policy.extract_features(
        torch.zeros(2, *model.observation_space.shape)).dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.policy.parameters())
    again = load_agent(train(tiny_config(total_timesteps=1024, checkpoints=2, update_dtype="bfloat16"),
                             tmp_path / "bf16-again", progress_bar=False, evaluate=False))  # deterministic by seed
    assert all(torch.equal(a, b) for a, b in zip(model.policy.state_dict().values(),
                                                 again.policy.state_dict().values()))
    calls.clear()
    train(tiny_config(total_timesteps=1024, checkpoints=2), tmp_path / "f32", progress_bar=False, evaluate=False)
    assert {d for _, d in calls} == {torch.float32} and any(u for u, _ in calls)


def test_bad_configs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n_envs"):
        TrainConfig(n_envs=0)
    with pytest.raises(ValueError, match="update_dtype must be one of"):
        TrainConfig(update_dtype="float16")
    old = tmp_path / "old" / "config.json"  # saved before update_dtype existed: those runs trained in float32
    old.parent.mkdir()
    old.write_text(json.dumps({"config": {"game": "tictactoe"}}))
    assert TrainConfig.from_json(old).update_dtype == "float32"
    with pytest.raises(ValueError, match="unknown game|not registered|Unknown"):
        train(tiny_config(game="chess"), tmp_path / "x", progress_bar=False)
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"config": {"game": "tictactoe", "bogus": 1}}))
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_json(bad)


def test_evaluate_agent_cli(tiny_run, tmp_path):
    import subprocess
    import sys

    run, final = tiny_run
    out = tmp_path / "eval.json"
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "scripts" / "evaluate_agent.py"), str(run), "--json", str(out), "--games", "4",
           "--decisive", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["timestep"] == list_checkpoints(run)[-1][0] and record["move_quality"]["decisive"]["n"] == 5
    assert record["views"] == 8
    done = subprocess.run(cmd + ["--single-view"], capture_output=True, text=True, cwd=root, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["views"] == 1
    done = subprocess.run([sys.executable, str(root / "scripts" / "evaluate_agent.py"), str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=root, timeout=300)
    assert done.returncode != 0 and "does not exist" in done.stderr + done.stdout


def test_load_agent_for_game_checks_that_network_and_game_fit(tiny_run, tmp_path):
    import shutil

    from agents.checkpoints import load_agent_for_game

    run, final = tiny_run
    loaded = load_agent_for_game(run)
    assert loaded.path == final and loaded.game.name == "tictactoe"
    with pytest.raises(ValueError, match="trained on observations"):
        load_agent_for_game(final, "connect4")
    lone = tmp_path / "lone.zip"
    shutil.copy(final, lone)
    with pytest.raises(FileNotFoundError, match="--game"):
        load_agent_for_game(lone)
    assert load_agent_for_game(lone, "tictactoe").game.name == "tictactoe"


def test_analyze_games_cli(tiny_run, tmp_path):
    import subprocess
    import sys

    run, _ = tiny_run
    out = tmp_path / "slips.json"
    root = Path(__file__).resolve().parents[1]
    script = str(root / "scripts" / "analyze_games.py")
    done = subprocess.run([sys.executable, script, str(run), "--games", "6", "--opening-plies",  # default: perfect
                           "1", "--json", str(out)], capture_output=True, text=True, cwd=root, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    unwon = round(6 * (1 - record["results"]["all"]["win"]))
    assert record["summary"]["replayed"] == len(record["games"]) == unwon
    assert record["opponent"] == "perfect" and record["views"] == 8 and record["summary"]["opponent_slips"] == 0
    done = subprocess.run([sys.executable, script, str(run), "--opponent", "alphabeta-2"], capture_output=True,
                          text=True, cwd=root, timeout=300)
    assert done.returncode != 0 and "known: random, perfect" in done.stderr + done.stdout


def test_default_opponent_is_one_every_game_has():
    from agents.evaluation import default_opponent, ladder_opponents

    assert default_opponent(games.get("connect4")) == "alphabeta-2"
    for name in ("tictactoe", "nim"):
        assert default_opponent(games.get(name)) == "perfect" == list(ladder_opponents(games.get(name)))[-1]


def test_dataset_with_agent_self_play_source(tiny_run, tmp_path):
    import pandas as pd

    from games.datasets import build_dataset

    run, final = tiny_run
    players = {"agent-0": PolicyPlayer(load_agent(final), name=str(final))}
    path = build_dataset("tictactoe", 30, tmp_path / "d", seed=0, sources="agent-0:0.5,random:0.5", jobs=1,
                         random_opening=1, concepts=["value"], players=players, progress=False)
    df = pd.read_parquet(path)
    assert set(df["source"]) == {"agent-0", "random"} and len(df) == 30
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert str(final) in manifest["players"]["agent-0"]
    with pytest.raises(ValueError, match="agent-1"):
        build_dataset("tictactoe", 5, tmp_path / "e", sources="agent-1:1", players=players, jobs=1, progress=False)


@pytest.mark.slow
def test_probe_sweep_on_a_tiny_run(tiny_run, tmp_path):
    import pandas as pd

    from agents.probing import probe_runs, run_entries
    from games.datasets import build_dataset
    from probes.sweep_folder import read_info

    run, _ = tiny_run
    entries = run_entries(run, checkpoints=1, random_seeds=1)
    assert [e.run for e in entries] == [run.name, "random-0", "input"]
    assert [e.role for e in entries] == ["agent", "random-weights", "input"]
    assert ("features_extractor.stem", True) in entries[0].layers
    data = tmp_path / "data"
    build_dataset("tictactoe", 150, data, seed=0, jobs=1, concepts=["win_in_1", "threat_squares_me", "value",
                                                                    "good_moves"], progress=False)
    out = tmp_path / "sweep"
    outcome = probe_runs([run], data, out, checkpoints=1, random_seeds=1, jobs=1, progress=False)
    assert outcome.results == out / "results.parquet" and read_info(out) == outcome.info
    df = pd.read_parquet(out / "results.parquet")
    assert {"win_in_1", "threat_squares_me", "value"} <= set(df["concept"]) and "good_moves" not in set(df["concept"])
    assert {run.name, "random-0", "input", "baseline"} == set(df["run"])
    assert df[(df["concept"] == "threat_squares_me") & (df["run"] == run.name)]["layer"].str.contains("blocks|stem|conv").all()
    # one work item per (network, layer) cell: two local processes and two Ray actors (one thread each) give
    # the same results
    frames = {}
    for engine in ("local", "ray"):
        probe_runs([run], data, tmp_path / f"sweep-{engine}", checkpoints=1, random_seeds=1, jobs=2, progress=False,
                   engine=engine)
        frames[engine] = pd.read_parquet(tmp_path / f"sweep-{engine}" / "results.parquet")
    keys = ["run", "checkpoint_step", "layer", "concept", "probe", "metric"]
    local, on_ray = (f.sort_values(keys).reset_index(drop=True) for f in (frames["local"], frames["ray"]))
    pd.testing.assert_frame_equal(local, on_ray)


def test_bench_ladder_measures_scripted_players_and_names_unknown_ones(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_ladder.py"
    out = tmp_path / "ladder.json"
    done = subprocess.run([sys.executable, str(script), "--players", "win-or-block", "--opponents", "random",
                           "--games", "8", "--out", str(out), "--postmortem"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())["results"]
    assert row["player"] == "win-or-block" and row["games"] == 8 and row["all"]["win"] >= 0.5
    post = row["postmortem"]  # every game replayed; every game won was a win held
    assert post["replayed"] == 8 and "moves" not in row
    assert sum(post["held_a_win"][seat]["won"] for seat in ("first", "second")) == round(8 * row["all"]["win"])
    bad = subprocess.run([sys.executable, str(script), "--players", "alphabeta-x", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "unknown player 'alphabeta-x'" in bad.stdout + bad.stderr


def test_opponent_sampling_is_sb3s_draw_bit_for_bit(tiny_policy):
    """The lean opponent sampler gives SB3's actions and leaves torch's generator where SB3's path does."""
    from agents.pool import sample_actions

    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p in tiny_policy.parameters():
            p.add_(torch.from_numpy(rng.normal(0, 0.5, tuple(p.shape))).float())
    obs = rng.integers(0, 2, size=(256, *tiny_policy.observation_space.shape)).astype(np.float32)
    masks = rng.random((256, 7)) < 0.6
    masks[np.arange(256), rng.integers(0, 7, 256)] = True
    for deterministic in (False, True):
        torch.manual_seed(5)
        ours = sample_actions(tiny_policy, obs, masks, deterministic=deterministic)
        after_ours = torch.rand(3)
        torch.manual_seed(5)
        with torch.no_grad():
            dist = tiny_policy.get_distribution(torch.as_tensor(obs), action_masks=masks)
            sb3 = dist.get_actions(deterministic=deterministic).numpy()
        after_sb3 = torch.rand(3)
        assert np.array_equal(ours, sb3) and torch.equal(after_ours, after_sb3)
        assert masks[np.arange(256), ours].all()
    assert len(np.unique(ours)) > 1
