"""tlrl's own environments: API conformance, determinism, episode ends, rendering, registration."""
import ast
import importlib
import pathlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

import tlrl.envs
from tlrl.envs import ENV_IDS, check_env, make_env

EXPECTED_LIMITS = {"tlrl/GridWorld-v0": 100, "tlrl/GoalGrid-v0": 100, "tlrl/PointMass-v0": 50, "tlrl/Catch-v0": 100}


# ----- scripted policies that reach the goal, and ones that never do ------------------------------
def reach_policy(env_id, env):
    u = env.unwrapped
    if env_id == "tlrl/GridWorld-v0":
        return 1 if u._agent[1] < u.size - 1 else 2
    if env_id == "tlrl/GoalGrid-v0":
        (r, c), (gr, gc) = u._agent, u._goal
        if c != gc:
            return 1 if c < gc else 3
        return 2 if r < gr else 0
    if env_id == "tlrl/PointMass-v0":
        p, v, g = np.array(u._pos), np.array(u._vel), np.array(u._goal)
        return np.clip(10.0 * (g - p) - v, -1, 1).astype(np.float32)
    if env_id == "tlrl/Catch-v0":
        return 1 + int(np.sign(u._ball_col - u._paddle))
    raise KeyError(env_id)


def avoid_policy(env_id, env):
    u = env.unwrapped
    if env_id == "tlrl/GridWorld-v0":
        return 0  # up, into the wall of the start corner: never moves
    if env_id == "tlrl/GoalGrid-v0":  # always leave (or stay off) the goal's row
        r, gr = u._agent[0], u._goal[0]
        if r == gr:
            return 0 if r > 0 else 2
        return 0 if gr > r else 2
    if env_id == "tlrl/PointMass-v0":
        return np.zeros(2, np.float32)  # stand still
    raise KeyError(env_id)


def test_every_tlrl_env_is_registered_with_its_time_limit():
    for env_id, limit in EXPECTED_LIMITS.items():
        assert env_id in gym.registry
        assert gym.spec(env_id).max_episode_steps == limit
    assert set(ENV_IDS) == set(EXPECTED_LIMITS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker_passes_without_warnings(env_id):
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gymnasium_check_env(env)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_tlrl_check_env_passes_on_raw_and_wrapped_env(env_id):
    check_env(make_env(env_id), n_steps=200)
    check_env(make_env(env_id).unwrapped, n_steps=200)


def _rollout(env, seed, steps=150):
    env.action_space.seed(seed)
    out = [env.reset(seed=seed)[0]]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out += [obs, reward, terminated, truncated]
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


def _same(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, dict):
            if not all(np.array_equal(x[k], y[k]) for k in x):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_with_seed_makes_rollouts_deterministic(env_id):
    kwargs = {"slippery": 0.3} if env_id == "tlrl/GridWorld-v0" else {}
    first = _rollout(make_env(env_id, kwargs), seed=7)
    again = _rollout(make_env(env_id, kwargs), seed=7)
    other = _rollout(make_env(env_id, kwargs), seed=8)
    assert _same(first, again)
    assert not _same(first, other)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reaching_the_goal_terminates_without_truncation(env_id):
    env = make_env(env_id)
    for seed in range(5):
        env.reset(seed=seed)
        for t in range(EXPECTED_LIMITS[env_id]):
            obs, reward, terminated, truncated, _ = env.step(reach_policy(env_id, env))
            if terminated or truncated:
                break
        assert terminated and not truncated, f"seed {seed}: episode did not terminate at the goal"
        assert env.observation_space.contains(obs)
        if env_id == "tlrl/PointMass-v0":  # shaped reward: minus the distance, now within the goal radius
            assert -0.1 < reward <= 0.0
        else:
            assert reward == 1.0


def test_pointmass_sparse_reward_pays_one_only_at_the_goal():
    env = make_env("tlrl/PointMass-v0", {"reward_type": "sparse"})
    env.reset(seed=0)
    rewards = []
    while True:
        _, reward, terminated, truncated, _ = env.step(reach_policy("tlrl/PointMass-v0", env))
        rewards.append(reward)
        if terminated or truncated:
            break
    assert terminated and rewards[-1] == 1.0 and set(rewards[:-1]) <= {0.0}


@pytest.mark.parametrize("env_id", [e for e in ENV_IDS if e != "tlrl/Catch-v0"])
def test_exhausting_the_time_limit_truncates_without_termination(env_id):
    env = make_env(env_id)
    env.reset(seed=3)
    limit = EXPECTED_LIMITS[env_id]
    for t in range(1, limit + 1):
        _, _, terminated, truncated, _ = env.step(avoid_policy(env_id, env))
        assert not terminated
        if truncated:
            break
    assert truncated and t == limit


def test_catch_terminates_when_the_ball_lands_and_a_shorter_limit_truncates():
    env = make_env("tlrl/Catch-v0")
    env.reset(seed=0)
    flags = [env.step(1)[2:4] for _ in range(9)]
    assert flags[-1] == (True, False) and all(f == (False, False) for f in flags[:-1])

    short = gym.make("tlrl/Catch-v0", max_episode_steps=5)
    short.reset(seed=0)
    flags = [short.step(1)[2:4] for _ in range(5)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_catch_observation_shows_ball_and_paddle_as_uint8_pixels():
    env = make_env("tlrl/Catch-v0", {"rows": 16, "columns": 16})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16, 16, 1) and obs.dtype == np.uint8
    assert obs[0].sum() == 255 and obs[-1, 8, 0] == 255 and obs.sum() == 2 * 255


def test_slippery_gridworld_slips_sideways():
    env = make_env("tlrl/GridWorld-v0", {"size": 4, "slippery": 1.0})
    env.reset(seed=0)
    for _ in range(20):  # "right" always slips up or down: the column never changes
        env.step(1)
        assert env.unwrapped._agent[1] == 0
    assert make_env("tlrl/GridWorld-v0", {"size": 4}).observation_space.shape == (16,)


def test_goalgrid_observation_is_a_dict_of_position_and_goal():
    env = make_env("tlrl/GoalGrid-v0", {"size": 6})
    obs, _ = env.reset(seed=1)
    assert isinstance(env.observation_space, gym.spaces.Dict)
    assert set(obs) == {"position", "goal"}
    u = env.unwrapped
    np.testing.assert_allclose(obs["goal"] * 5, u._goal)
    assert u._agent != u._goal


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_render_returns_an_image(env_id):
    env = make_env(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.shape[0] >= 32
    plain = make_env(env_id)
    plain.reset(seed=0)
    assert plain.render() is None


@pytest.mark.parametrize("env_id, kwargs, words", [
    ("tlrl/GridWorld-v0", {"size": 1}, "size must be an integer >= 2"),
    ("tlrl/GridWorld-v0", {"slippery": 1.5}, "slippery must be a probability"),
    ("tlrl/PointMass-v0", {"reward_type": "dense"}, "reward_type must be 'shaped' or 'sparse'"),
    ("tlrl/Catch-v0", {"rows": 1}, "rows must be an integer >= 2"),
])
def test_invalid_env_kwargs_raise_clear_errors(env_id, kwargs, words):
    with pytest.raises(ValueError, match=words):
        make_env(env_id, kwargs)


@pytest.mark.parametrize("cls", [tlrl.envs.GridWorldEnv, tlrl.envs.GoalGridEnv, tlrl.envs.PointMassEnv,
                                 tlrl.envs.CatchEnv])
def test_unsupported_render_mode_is_rejected(cls):
    with pytest.raises(ValueError, match="render_mode must be one of"):
        cls(render_mode="human")


def test_registration_is_idempotent_and_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tlrl.envs.register_envs()
        tlrl.envs.register_envs()
        importlib.reload(tlrl.envs.registration).register_envs()
        importlib.reload(tlrl.envs)
    assert gym.make("tlrl/GridWorld-v0").spec.max_episode_steps == 100


def test_env_modules_import_only_numpy_and_gymnasium():
    allowed = {"numpy", "gymnasium", "tlrl", "__future__", "typing", "math", "difflib", "importlib", "inspect",
               "pickle", "os", "sys"}
    package_dir = pathlib.Path(tlrl.envs.__file__).parent
    for path in package_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
