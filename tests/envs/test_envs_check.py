"""check_env fails fast on broken envs with a message that names the problem and the fix."""
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

from tlrl.envs import EnvCheckError, check_env


class GoodEnv(gym.Env):
    """A correct env: the base of every broken one below."""

    def __init__(self):
        self.observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        return np.full(4, 0.5, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.t >= 10, False, {}


class FourTupleStepEnv(GoodEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated or truncated, info


class WrongDtypeObsEnv(GoodEnv):
    def _obs(self):
        return np.zeros(4)  # float64


class WrongShapeObsEnv(GoodEnv):
    def _obs(self):
        return np.zeros(3, np.float32)


class ListObsEnv(GoodEnv):
    def _obs(self):
        return [0.0, 0.0, 0.0, 0.0]


class NaNRewardEnv(GoodEnv):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float("nan"), terminated, truncated, info


class LateInfObsEnv(GoodEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.t == 7:
            obs[2] = np.inf
        return obs, reward, terminated, truncated, info


class ResetWithoutSeedEnv(GoodEnv):
    def reset(self):
        self.t = 0
        return self._obs(), {}


class ResetReturnsOnlyObsEnv(GoodEnv):
    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)[0]


class MissingSpacesEnv(gym.Env):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        return np.zeros(4, np.float32), 0.0, False, False, {}


class FakeBox:
    """Looks like a space but is not a gymnasium one (e.g. from the old gym package)."""

    shape = (4,)

    def sample(self):
        return 0


class ForeignSpacesEnv(GoodEnv):
    def __init__(self):
        super().__init__()
        self.action_space = FakeBox()


class ObsOutOfBoundsEnv(GoodEnv):
    def _obs(self):
        return np.array([0.0, 0.5, 3.0, 0.0], np.float32)


class IntTerminatedEnv(GoodEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, int(terminated), truncated, info


class ArrayRewardEnv(GoodEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, np.array([reward]), terminated, truncated, info


class UnboundedActionEnv(GoodEnv):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)


class CrashingStepEnv(GoodEnv):
    def step(self, action):
        raise ZeroDivisionError("division by zero")


class OldStyleEnv:
    """Not a gymnasium.Env at all, but has reset/step."""

    def reset(self):
        return np.zeros(4)

    def step(self, action):
        return np.zeros(4), 0.0, False, {}


@pytest.mark.parametrize("env_cls, problem, fix", [
    (FourTupleStepEnv, r"returned 4 values \(obs, reward, done, info\).*gym<0\.26",
     r"return 5 values `obs, reward, terminated, truncated, info`"),
    (WrongDtypeObsEnv, r"has dtype float64, but observation_space expects float32", r"obs\.astype\(np\.float32\)"),
    (WrongShapeObsEnv, r"has shape \(3,\), but observation_space expects shape \(4,\)", r"declared shape"),
    (ListObsEnv, r"is a list .*expected an np\.ndarray of dtype float32 and shape \(4,\)", r"np\.asarray"),
    (NaNRewardEnv, r"reward returned by .*step\(\) at step 0 is nan", r"guard or clip"),
    (LateInfObsEnv, r"at step 6 contains a non-finite value \(inf at index \(2,\)\)", r"guard or clip"),
    (ResetWithoutSeedEnv, r"reset\(\) does not accept a `seed` argument",
     r"def reset\(self, \*, seed=None, options=None\)"),
    (ResetReturnsOnlyObsEnv, r"returned a ndarray; Gymnasium's reset returns a pair \(obs, info\)", r"return obs, info"),
    (MissingSpacesEnv, r"has no observation_space", r"self\.observation_space = gymnasium\.spaces\.Box"),
    (ForeignSpacesEnv, r"action_space is a .*FakeBox.*not a gymnasium\.spaces\.Space", r"build it from `gymnasium\.spaces`"),
    (ObsOutOfBoundsEnv, r"outside observation_space: value 3\.0 at index \(2,\) is not within \[-1\.0, 1\.0\]",
     r"np\.clip\(obs, low, high\)"),
    (IntTerminatedEnv, r"`terminated` returned by .* is 0 of type int, not a bool", r"bool\(terminated\)"),
    (ArrayRewardEnv, r"reward returned by .* is a ndarray of shape \(1,\)", r"float\(reward\)"),
    (UnboundedActionEnv, r"action_space .* has infinite bounds", r"Box\(-1\.0, 1\.0"),
    (CrashingStepEnv, r"step\(action\) at step 0 .* raised ZeroDivisionError", r"fix the error in step\(\)"),
])
def test_broken_env_raises_env_check_error_naming_problem_and_fix(env_cls, problem, fix):
    with pytest.raises(EnvCheckError) as info:
        check_env(env_cls())
    message = str(info.value)
    what, _, how = message.partition("\nHow to fix: ")
    assert how, f"no fix in message: {message}"
    assert re.search(problem, what), what
    assert re.search(fix, how), how
    assert isinstance(info.value, ValueError)


def test_non_gymnasium_env_is_told_to_subclass_gymnasium_env():
    with pytest.raises(EnvCheckError, match=r"(?s)does not subclass gymnasium\.Env.*class MyEnv\(gym\.Env\)"):
        check_env(OldStyleEnv())
    with pytest.raises(EnvCheckError, match="Expected a gymnasium.Env"):
        check_env("CartPole-v1")


def _as_gym_make_would_wrap(env):
    return TimeLimit(OrderEnforcing(PassiveEnvChecker(env)), max_episode_steps=100)


@pytest.mark.parametrize("env_cls", [FourTupleStepEnv, NaNRewardEnv, ResetWithoutSeedEnv, WrongDtypeObsEnv])
def test_tlrl_message_wins_over_gymnasium_passive_checker(env_cls):
    env = _as_gym_make_would_wrap(env_cls())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Gymnasium warning may pre-empt tlrl's error
        with pytest.raises(EnvCheckError, match="How to fix"):
            check_env(env)


def test_good_env_passes_raw_and_wrapped_and_stays_usable():
    check_env(GoodEnv())
    env = _as_gym_make_would_wrap(GoodEnv())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, n_steps=30)
        obs, _ = env.reset(seed=1)
        assert env.step(0)[0].shape == (4,)


def test_wrapper_that_breaks_observations_is_reported_with_the_wrapper_chain():
    class Doubler(gym.ObservationWrapper):
        def observation(self, obs):
            return obs * 4  # leaves the [-1, 1] Box

    with pytest.raises(EnvCheckError, match=r"GoodEnv with wrappers <Doubler<GoodEnv.*outside observation_space"):
        check_env(Doubler(GoodEnv()))


def test_dict_observation_with_missing_key_is_reported():
    class DictEnv(GoodEnv):
        def __init__(self):
            super().__init__()
            self.observation_space = spaces.Dict({"a": spaces.Box(0, 1, (2,), np.float32),
                                                  "b": spaces.Discrete(3)})

        def _obs(self):
            return {"a": np.zeros(2, np.float32)}

    with pytest.raises(EnvCheckError, match=r"missing: \['b'\]"):
        check_env(DictEnv())
