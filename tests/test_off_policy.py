"""The replay data path and schedule (`tlrl.off_policy` with `tlrl.collector.Collector` and `tlrl.loop`), tested
with a tiny deterministic env and a do-nothing agent whose store records exactly what the collector stores."""
import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from tlrl.agent import BaseAgent
from tlrl.collector import Collector
from tlrl.off_policy import OffPolicyConfig, ReplayStore, gradient_steps, replay_plan
from tlrl.spaces import random_actions, to_env_actions


class CountingEnv(gym.Env):
    """obs = [t, episode]; reward = t + 1 after the step. Episodes of odd index end by termination
    after 3 steps, episodes of even index by truncation after 4 (so the loop meets both)."""

    observation_space = gym.spaces.Box(0.0, 100.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.t, self.episode = 0, -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t, self.episode], np.float32)

    def step(self, action):
        self.t += 1
        odd = self.episode % 2 == 1
        terminated = odd and self.t == 3
        truncated = (not odd) and self.t == 4
        return self._obs(), float(self.t), terminated, truncated, {}


class RecordingStore:
    """Stands in for the replay store: keeps copies of every stored `Transition`."""

    def __init__(self):
        self.rows = []

    def add(self, step, extras):
        self.rows.append(tuple(np.array(x, copy=True) for x in step))

    def cut(self):
        pass


@dataclasses.dataclass
class TinyConfig(OffPolicyConfig):
    learning_starts: int = 0
    train_freq: int = 3
    gradient_steps: int = 2
    n_envs: int = 2


class Recorder(BaseAgent):
    """A replay agent through public extension points only: explore always picks 1, update records its call."""

    Config = TinyConfig

    def build(self):
        self.train_calls, self.explore_calls = [], []
        self.plan = replay_plan(self.config)
        self.store = self.make_store()

    def make_store(self):
        return RecordingStore()

    def explore(self, obs):
        self.explore_calls.append(self.num_timesteps)
        return np.ones(self.n_envs, np.int64), {}

    def act_batch(self, obs, deterministic):
        return np.zeros(len(obs), np.int64)

    def update(self, obs):
        k = gradient_steps(self.config, self.n_envs)
        self.train_calls.append((self.num_timesteps, k))
        self.n_updates += 1
        return {"loss": float(k)}


def test_loop_stores_true_final_obs_and_terminated_truncated_flags_exactly():
    agent = Recorder(CountingEnv, seed=0, n_envs=2)
    agent.learn(2 * 20)
    rows = agent.store.rows
    assert len(rows) == 20
    n_term = n_trunc = 0
    for obs, action, reward, next_obs, terminated, truncated in rows:
        assert obs.shape == (2, 2) and action.shape == (2,) and terminated.dtype == bool
        # a transition never spans an episode boundary: same episode, one step later
        np.testing.assert_array_equal(next_obs[:, 0], obs[:, 0] + 1)
        np.testing.assert_array_equal(next_obs[:, 1], obs[:, 1])
        np.testing.assert_array_equal(reward, next_obs[:, 0])
        odd = next_obs[:, 1] % 2 == 1
        np.testing.assert_array_equal(terminated, odd & (next_obs[:, 0] == 3))
        np.testing.assert_array_equal(truncated, ~odd & (next_obs[:, 0] == 4))
        n_term += terminated.sum()
        n_trunc += truncated.sum()
        np.testing.assert_array_equal(action, [1, 1])
    assert n_term > 0 and n_trunc > 0
    # the observation after an episode end is the reset one, stored as the next row's obs
    for (_, _, _, _, term, trunc), (obs_next_row, *_rest) in zip(rows, rows[1:]):
        done = term | trunc
        np.testing.assert_array_equal(obs_next_row[done, 0], 0)


def test_a_collector_fills_any_store_and_advances_the_agent_counters():
    agent = Recorder(CountingEnv, seed=0, n_envs=2)
    store = RecordingStore()
    collector = Collector(agent, store=store)
    ended = collector.collect(5)
    assert len(store.rows) == 5 and agent.store.rows == []  # the given store, not the agent's
    assert (agent.num_timesteps, agent.vector_steps) == (10, 5) and agent.n_updates == 0
    assert len(ended) == 2 and set(ended) <= {6.0, 10.0}  # one episode of each env ended within 5 steps
    last = store.rows[-1]
    assert not (last[4] | last[5]).any()
    np.testing.assert_array_equal(collector.obs, last[3])  # the envs' current observations: the last next_obs
    collector.close()
    assert collector.env is None and collector.obs is None


def test_episode_returns_reach_the_callback_and_the_tracker():
    agent = Recorder(CountingEnv, seed=0, n_envs=2)
    seen = []
    agent.learn(2 * 21, callback=lambda a, info: seen.extend(info["episode_returns"]))
    # episodes alternate: truncated after 4 steps (return 1+2+3+4), terminated after 3 (1+2+3)
    assert sorted(set(seen)) == [6.0, 10.0]
    assert list(agent.episode_tracker.finished_returns) == seen


def test_train_freq_and_gradient_steps_counts():
    agent = Recorder(CountingEnv, seed=0, n_envs=2, train_freq=3, gradient_steps=2)
    agent.learn(2 * 12)
    assert agent.train_calls == [(6, 2), (12, 2), (18, 2), (24, 2)]
    agent = Recorder(CountingEnv, seed=0, n_envs=2, train_freq=3, gradient_steps=-1)
    agent.learn(2 * 6)
    assert agent.train_calls == [(6, 6), (12, 6)]  # -1: as many as env steps collected (3 vector steps x 2 envs)
    assert gradient_steps(agent.config, 4) == 12 and replay_plan(agent.config).steps == 3


def test_learning_starts_is_respected():
    agent = Recorder(CountingEnv, seed=0, n_envs=2, train_freq=1, gradient_steps=1, learning_starts=10)
    agent.learn(2 * 8)
    assert agent.explore_calls and min(agent.explore_calls) == 10  # random actions before, no TF-side call
    assert [t for t, _ in agent.train_calls] == [10, 12, 14, 16]
    random_rows = [row[1] for row in agent.store.rows[:5]]
    assert any((a == 0).any() for a in random_rows)  # uniform random actions, not the explore policy's ones


def test_continuing_learn_continues_num_timesteps_and_the_train_phase():
    whole = Recorder(CountingEnv, seed=0, n_envs=2, train_freq=3)
    whole.learn(2 * 10)
    split = Recorder(CountingEnv, seed=0, n_envs=2, train_freq=3)
    split.learn(2 * 4)
    assert split.num_timesteps == 8 and split.vector_steps == 4
    split.learn(2 * 6)
    assert split.num_timesteps == whole.num_timesteps == 20 and split.vector_steps == whole.vector_steps == 10
    assert split.train_calls == whole.train_calls


def test_callback_info_and_stopping():
    agent = Recorder(CountingEnv, seed=0, n_envs=2, train_freq=1)
    infos = []

    def callback(a, info):
        infos.append(info)
        return len(infos) < 3

    agent.learn(2 * 100, callback=callback)
    assert len(infos) == 3 and agent.num_timesteps == 6
    info = infos[-1]
    assert {"num_timesteps", "metrics", "episode_returns", "progress", "n_updates"} <= set(info)
    assert info["metrics"]["loss"] == 2.0 and info["metrics"]["steps_per_second"] > 0


def test_random_actions_cover_the_space_and_box_actions_are_clipped():
    rng = np.random.default_rng(0)
    box = gym.spaces.Box(-1.0, 2.0, (3,), np.float32)
    a = np.concatenate([random_actions(box, 2, rng) for _ in range(200)])
    assert a.shape == (400, 3) and a.dtype == np.float32 and a.min() >= -1 and a.max() <= 2
    np.testing.assert_array_equal(to_env_actions(box, np.array([[-5.0, 0.5, 9.0]])), [[-1.0, 0.5, 2.0]])
    multi = gym.spaces.MultiDiscrete([2, 5])
    a = np.concatenate([random_actions(multi, 2, rng) for _ in range(200)])
    assert a.shape == (400, 2) and a[:, 1].max() == 4 and a.min() == 0
    with pytest.raises(ValueError, match="unbounded Box"):
        random_actions(gym.spaces.Box(-np.inf, np.inf, (1,)), 2, rng)


def test_invalid_loop_settings_are_rejected_before_training():
    with pytest.raises(ValueError, match="train_freq must be positive"):
        Recorder(CountingEnv, train_freq=0)
    with pytest.raises(ValueError, match="gradient_steps must be positive or -1"):
        Recorder(CountingEnv, gradient_steps=-2)
    with pytest.raises(ValueError, match="total_steps must be a non-negative integer"):
        Recorder(CountingEnv).learn(-1)


class ReplayRecorder(Recorder):
    """As `Recorder` but with the real replay store (for save/load)."""

    def make_store(self):
        return ReplayStore(self.config, self.observation_space, self.action_space, self.n_envs, self.rng)


def test_save_load_keeps_counters_and_the_replay_buffer(tmp_path):
    agent = ReplayRecorder(CountingEnv, seed=3, n_envs=2, buffer_size=64)
    agent.learn(2 * 10)
    agent.save(str(tmp_path / "a"))
    loaded = ReplayRecorder.load(str(tmp_path / "a"), env=CountingEnv)
    assert loaded.num_timesteps == 20 and loaded.vector_steps == 10 and loaded.n_updates == agent.n_updates
    assert len(loaded.store.replay) == len(agent.store.replay) == 20
    a, b = agent.store.replay.sample(16), loaded.store.replay.sample(16)  # same contents and same sampler state
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    loaded.learn(2 * 2)
    assert loaded.train_calls == [(24, 2)]  # the train_freq phase continued: vector steps 11, 12 -> 12 % 3 == 0


@dataclasses.dataclass
class NStepConfig(TinyConfig):
    n_step: int = 2


def test_replay_store_samples_stacked_batches_cast_for_tf_and_cuts_n_step_returns():
    from tlrl.core import Transition

    space = gym.spaces.Discrete(3, start=1)
    store = ReplayStore(NStepConfig(buffer_size=16, gamma=0.5), CountingEnv.observation_space, space, 2,
                        np.random.default_rng(0))

    def add(t):
        obs = np.full((2, 2), t, np.float32)
        store.add(Transition(obs, np.array([1, 3]), np.ones(2), obs + 1, np.zeros(2, bool), np.zeros(2, bool)), {})

    for t in range(4):
        add(t)
    batch = store.sample_stacked(3, 5)
    assert batch.obs.shape == (3, 5, 2) and batch.obs.dtype == np.float32 and batch.reward.dtype == np.float32
    assert batch.action.dtype == np.int32 and set(np.unique(batch.action)) <= {0, 2}  # start subtracted
    before = store.replay.gather(np.array([4, 5]))  # row 2: a 2-step return over rows 2 and 3
    np.testing.assert_allclose(before.reward, 1.5)
    np.testing.assert_allclose(before.discount, 0.25)
    store.cut()  # a checkpoint's cut: the episodes running at row 3 end there (truncated: still bootstrapped)
    add(4)
    cut = store.replay.gather(np.array([6, 7]))  # row 3 no longer runs into row 4
    np.testing.assert_allclose(cut.reward, 1.0)
    np.testing.assert_allclose(cut.discount, 0.5)
