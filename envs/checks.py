"""`check_env`: fail fast, before training, on an environment tlrl cannot train on.

Every failure raises `EnvCheckError` (a ValueError) whose message says what is wrong and how to
fix it. The checks run first on the raw env (``env.unwrapped``), where user code lives, then on
the env with its wrappers. Gymnasium's `PassiveEnvChecker` (added by `gymnasium.make`) is
switched off for the duration so that its warnings or unpacking errors do not hide tlrl's
message; since tlrl's checks cover its own, it stays off afterwards.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

_CUSTOM_ENV_DOC = "https://gymnasium.farama.org/introduction/create_custom_env/"


class EnvCheckError(ValueError):
    """An environment that does not follow the Gymnasium API in a way tlrl relies on."""


def _fail(what: str, fix: str) -> EnvCheckError:
    return EnvCheckError(f"{what}\nHow to fix: {fix}")


def _name(env: Any) -> str:
    return type(env).__name__


# ----- spaces ---------------------------------------------------------------------------------
_SPACE_EXAMPLE = {
    "observation_space": "`self.observation_space = gymnasium.spaces.Box(low=-1.0, high=1.0, shape=(4,), "
                         "dtype=np.float32)`",
    "action_space": "`self.action_space = gymnasium.spaces.Discrete(3)` (or `gymnasium.spaces.Box(-1.0, 1.0, "
                    "shape=(2,), dtype=np.float32)` for continuous actions)",
}


def _check_spaces(env: gym.Env, who: str) -> None:
    for attr in ("observation_space", "action_space"):
        space = getattr(env, attr, None)
        if space is None:
            raise _fail(
                f"{who} has no {attr} (it is missing or None).",
                f"set it in __init__, e.g. {_SPACE_EXAMPLE[attr]}.",
            )
        if not isinstance(space, spaces.Space):
            raise _fail(
                f"{who}.{attr} is a {type(space).__module__}.{type(space).__name__} ({space!r}), "
                "not a gymnasium.spaces.Space.",
                f"build it from `gymnasium.spaces`, e.g. {_SPACE_EXAMPLE[attr]}; spaces of the "
                "old `gym` package or of other libraries are not accepted.",
            )
    action_space = env.action_space
    if isinstance(action_space, spaces.Box) and not (
        np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))
    ):
        raise _fail(
            f"{who}.action_space {action_space} has infinite bounds; tlrl's continuous-action agents map their "
            "output to [low, high].",
            "give the action Box finite bounds, ideally Box(-1.0, 1.0, shape, np.float32), and rescale inside step().",
        )


# ----- observations, rewards, flags -----------------------------------------------------------
def _where(call: str, path: str) -> str:
    return f"The observation{f' [{path}]' if path else ''} returned by {call}"


def _check_obs(obs: Any, space: spaces.Space, call: str, path: str = "") -> None:
    where = _where(call, path)
    if isinstance(space, spaces.Dict):
        if not isinstance(obs, Mapping):
            raise _fail(f"{where} is a {type(obs).__name__}, but observation_space is a Dict {space}.",
                        "return a dict with one entry per key of the Dict space.")
        missing, extra = set(space.spaces) - set(obs), set(obs) - set(space.spaces)
        if missing or extra:
            raise _fail(f"{where} has keys {sorted(obs)}, but the Dict observation_space has keys "
                        f"{sorted(space.spaces)} (missing: {sorted(missing)}, unexpected: {sorted(extra)}).",
                        "return exactly the keys of the Dict space, or change the space to match.")
        for key, sub in space.spaces.items():
            _check_obs(obs[key], sub, call, f"{path}.{key}" if path else str(key))
        return
    if isinstance(space, spaces.Tuple):
        if not isinstance(obs, tuple) or len(obs) != len(space.spaces):
            raise _fail(f"{where} is {type(obs).__name__} but observation_space is a Tuple of {len(space.spaces)}.",
                        "return a tuple with one entry per sub-space.")
        for i, sub in enumerate(space.spaces):
            _check_obs(obs[i], sub, call, f"{path}[{i}]" if path else f"[{i}]")
        return
    if isinstance(space, spaces.Box):
        _check_box_obs(obs, space, where)
        return
    if isinstance(space, spaces.Discrete):
        if not (isinstance(obs, (int, np.integer)) and not isinstance(obs, bool)) and not (
            isinstance(obs, np.ndarray) and obs.shape == () and np.issubdtype(obs.dtype, np.integer)
        ):
            raise _fail(f"{where} is {obs!r} of type {type(obs).__name__}, but observation_space is {space}.",
                        f"return an integer in [{space.start}, {space.start + space.n}).")
    if not space.contains(obs):
        raise _fail(f"{where} is {obs!r}, which is not in observation_space {space}.",
                    "return observations that `observation_space.contains(obs)` accepts, or fix the space.")


def _check_box_obs(obs: Any, space: spaces.Box, where: str) -> None:
    expected = f"np.ndarray of dtype {space.dtype} and shape {space.shape}"
    if not isinstance(obs, np.ndarray):
        raise _fail(f"{where} is a {type(obs).__name__} ({_short(obs)}), expected an {expected}.",
                    f"return `np.asarray(obs, dtype=np.{space.dtype})`.")
    if obs.dtype != space.dtype:
        raise _fail(f"{where} has dtype {obs.dtype}, but observation_space expects {space.dtype} "
                    f"(expected {expected}, got dtype {obs.dtype} and shape {obs.shape}).",
                    f"cast it with `obs.astype(np.{space.dtype})`, or declare the space with dtype=np.{obs.dtype}.")
    if obs.shape != space.shape:
        raise _fail(f"{where} has shape {obs.shape}, but observation_space expects shape {space.shape}.",
                    "return observations of the declared shape (check reshapes, stacking and batch dimensions), "
                    "or declare the space with the shape you return.")
    if np.issubdtype(obs.dtype, np.inexact) and not np.all(np.isfinite(obs)):
        bad = np.argwhere(~np.isfinite(obs))[0]
        value = obs[tuple(bad)]
        raise _fail(f"{where} contains a non-finite value ({value} at index {tuple(int(i) for i in bad)}).",
                    "find where it arises (division by zero, log or sqrt out of domain, unbounded velocities) "
                    "and guard or clip it; agents cannot learn from NaN or infinite observations.")
    low_bad, high_bad = obs < space.low, obs > space.high
    if low_bad.any() or high_bad.any():
        idx = tuple(int(i) for i in np.argwhere(low_bad | high_bad)[0])
        raise _fail(f"{where} is outside observation_space: value {obs[idx]} at index {idx} is not within "
                    f"[{space.low[idx]}, {space.high[idx]}] (observation_space = {space}).",
                    "clip the observation, e.g. `np.clip(obs, low, high)`, or widen the Box's low/high to the "
                    "true range of values (use -np.inf/np.inf for an unbounded dimension).")


def _short(x: Any) -> str:
    s = repr(x)
    return s if len(s) <= 80 else s[:77] + "..."


def _check_reward(reward: Any, call: str) -> None:
    scalar = isinstance(reward, (int, float, np.integer, np.floating)) or (
        isinstance(reward, np.ndarray) and reward.shape == () and np.issubdtype(reward.dtype, np.number)
    )
    if not scalar:
        shape = f" of shape {reward.shape}" if isinstance(reward, np.ndarray) else ""
        raise _fail(f"The reward returned by {call} is a {type(reward).__name__}{shape} ({_short(reward)}), "
                    "not a scalar number.", "return a Python float, e.g. `float(reward)`.")
    if not np.isfinite(reward):
        raise _fail(f"The reward returned by {call} is {float(reward)} (not finite).",
                    "find where it arises (division by zero, log of 0, overflow) and guard or clip it; one NaN "
                    "reward turns every value estimate into NaN.")


def _check_flag(name: str, value: Any, call: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(f"`{name}` returned by {call} is {value!r} of type {type(value).__name__}, not a bool.",
                    f"return a bool, e.g. `bool({name})`. `terminated` means the task ended (goal reached, "
                    "failure); `truncated` means it was cut short (time limit).")


# ----- reset and step -------------------------------------------------------------------------
def _accepts_seed(env: gym.Env) -> bool:
    try:
        params = inspect.signature(env.reset).parameters
    except (TypeError, ValueError):
        return True  # cannot tell; the call below will show
    return "seed" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


_RESET_FIX = (
    "define `def reset(self, *, seed=None, options=None):`, call `super().reset(seed=seed)` first, draw all "
    "randomness from `self.np_random`, and `return obs, info` (info a dict, e.g. {})."
)


def _reset(env: gym.Env, who: str, seed: Optional[int]) -> Any:
    call = f"{who}.reset(seed={seed})"
    try:
        result = env.reset(seed=seed)
    except TypeError as exc:
        if "seed" in str(exc):
            raise _fail(f"{call} failed: {exc}.", _RESET_FIX) from exc
        raise _fail(f"{call} raised TypeError: {exc}", "fix the error in reset() (see the traceback above).") from exc
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported with context
        raise _fail(f"{call} raised {type(exc).__name__}: {exc}",
                    "fix the error in reset() (see the traceback above).") from exc
    if not isinstance(result, tuple) or len(result) != 2:
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else f"a {type(result).__name__}"
        raise _fail(f"{call} returned {got}; Gymnasium's reset returns a pair (obs, info) (gym<0.26 returned "
                    "only obs).", _RESET_FIX)
    obs, info = result
    if not isinstance(info, dict):
        raise _fail(f"{call} returned info of type {type(info).__name__}; it must be a dict.", _RESET_FIX)
    _check_obs(obs, env.observation_space, f"{who}.reset()")
    return obs


def _step(env: gym.Env, who: str, action: Any, t: int) -> bool:
    call = f"{who}.step(action) at step {t} (action={_short(action)})"
    try:
        result = env.step(action)
    except Exception as exc:  # noqa: BLE001
        raise _fail(f"{call} raised {type(exc).__name__}: {exc}",
                    "fix the error in step() (see the traceback above); actions are sampled from action_space, "
                    "so step() must accept every action in it.") from exc
    if not isinstance(result, tuple):
        raise _fail(f"{call} returned a {type(result).__name__}, not a tuple.",
                    "return `obs, reward, terminated, truncated, info`.")
    if len(result) == 4:
        raise _fail(f"{call} returned 4 values (obs, reward, done, info): the old gym<0.26 step API.",
                    "return 5 values `obs, reward, terminated, truncated, info`: `terminated=True` when the task "
                    "ends (goal reached, failure: no bootstrapping from the next state), `truncated=True` when it "
                    "is cut short (time limit: the agent bootstraps). Let a time limit set truncated, e.g. "
                    "register the env with max_episode_steps or wrap it in gymnasium.wrappers.TimeLimit.")
    if len(result) != 5:
        raise _fail(f"{call} returned {len(result)} values.",
                    "return 5 values `obs, reward, terminated, truncated, info`.")
    obs, reward, terminated, truncated, info = result
    short = f"{who}.step() at step {t}"
    _check_obs(obs, env.observation_space, short)
    _check_reward(reward, short)
    _check_flag("terminated", terminated, short)
    _check_flag("truncated", truncated, short)
    if not isinstance(info, dict):
        raise _fail(f"The info returned by {call} is a {type(info).__name__}; it must be a dict.",
                    "return a dict as the fifth value (e.g. {}).")
    return bool(terminated or truncated)


def _check_episodes(env: gym.Env, who: str, n_steps: int, seed: int) -> None:
    if not _accepts_seed(env):
        raise _fail(f"{who}.reset{inspect.signature(env.reset)} does not accept a `seed` argument, which "
                    "Gymnasium (>=0.26) requires and tlrl uses for reproducible runs.", _RESET_FIX)
    _reset(env, who, seed)
    env.action_space.seed(seed)
    for t in range(n_steps):
        if _step(env, who, env.action_space.sample(), t):
            _reset(env, who, None)


def _disarm_passive_checker(env: gym.Env) -> None:
    e: Any = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, gym.wrappers.PassiveEnvChecker):
            for flag in ("checked_reset", "checked_step", "checked_render", "checked_data_reuse"):
                if hasattr(e, flag):
                    setattr(e, flag, True)
        e = e.env


def check_env(env: Any, *, n_steps: int = 50, seed: int = 0) -> None:
    """Check that `env` follows the Gymnasium API the way tlrl's agents rely on.

    Checks: the env subclasses `gymnasium.Env`; ``observation_space`` and ``action_space`` are
    `gymnasium.spaces.Space` instances (Box action spaces with finite bounds); ``reset`` accepts
    ``seed`` and returns ``(obs, info)``; ``step`` returns the 5-tuple
    ``(obs, reward, terminated, truncated, info)`` with bool flags, a finite scalar reward and a
    dict info; every observation has the space's dtype and shape, is finite and lies in the
    space. It resets with ``seed`` and takes ``n_steps`` random actions sampled from the (seeded)
    action space, resetting when an episode ends. The env is left mid-episode: reset it before use.

    Args:
        env: the environment, raw or wrapped (e.g. from `gymnasium.make` or `tlrl.envs.make_env`).
        n_steps: random steps to take (on the raw env, and again on the wrapped env if wrapped).
        seed: seed for ``reset`` and for sampling actions.

    Raises:
        EnvCheckError: naming the problem and how to fix it.

    Example:
        >>> import tlrl.envs
        >>> tlrl.envs.check_env(tlrl.envs.make_env("tlrl/PointMass-v0"))
    """
    if not isinstance(env, gym.Env):
        cls = type(env)
        bases = ", ".join(f"{b.__module__}.{b.__qualname__}" for b in cls.__mro__[1:-1]) or "object"
        if hasattr(env, "step") and hasattr(env, "reset"):
            raise _fail(f"{cls.__name__} looks like an environment but does not subclass gymnasium.Env "
                        f"(its bases: {bases}).",
                        "write `import gymnasium as gym` and `class MyEnv(gym.Env): ...` (envs from the old `gym` "
                        f"package must be ported to Gymnasium's API, see {_CUSTOM_ENV_DOC}).")
        raise _fail(f"Expected a gymnasium.Env, got {cls.__name__} ({_short(env)}).",
                    "pass an environment (e.g. from `tlrl.envs.make_env`).")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    core = env.unwrapped
    _check_spaces(core, _name(core))
    _check_episodes(core, _name(core), n_steps, seed)
    if core is not env:
        _disarm_passive_checker(env)
        who = f"{_name(core)} with wrappers {env}"
        _check_spaces(env, who)
        _check_episodes(env, who, n_steps, seed)
