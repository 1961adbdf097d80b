"""Loud failure on NaN and infinity: training stops at the first non-finite value instead of saving it.

A NaN loss or weight does not crash TensorFlow: it quietly spreads to every weight, and a run
then writes checkpoints of a broken network (and prunes the good ones). Two cheap checks, on
data already in host memory, stop training at once with a `NonFiniteError`:

- `check_metrics`: after each update, on the metrics it returned (loss terms, gradient norms,
  `weight_norm`), before the callback that logs and checkpoints runs;
- `check_env_step`: after each vector-env step, on the observations and rewards the envs
  returned (float arrays only; integer observations cannot be NaN).

>>> check_metrics({"loss": 0.5, "grad_norm": 1.0}, step=128, owner="DQN")
>>> check_metrics({"loss": float("nan")}, step=128, owner="DQN")
Traceback (most recent call last):
...
tlrl.finite.NonFiniteError: DQN: the update at env step 128 produced loss = nan. ...
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np

#: Metrics that are NaN by definition in some updates (PPO's explained variance of constant returns).
MAY_BE_NAN = frozenset({"explained_variance"})

CAUSES = ("Likely causes: a learning rate too large for this problem (try 3-10x smaller), rewards or "
          "observations on a huge scale (scale or normalize them, e.g. normalize_reward/normalize_obs for PPO), "
          "or exploding gradients (set max_grad_norm). Training was stopped before this update was logged or "
          "checkpointed: the checkpoints written so far are intact.")


class NonFiniteError(RuntimeError):
    """Training met a NaN or infinite value (a metric, a weight, an observation, a reward) and was stopped."""


def check_metrics(metrics: Mapping[str, Any], *, step: int, owner: str) -> None:
    """Raise `NonFiniteError` if a number in an update's `metrics` is NaN or infinite.

    `metrics` holds the floats the update already returned (no TF call is made here); the
    names in `MAY_BE_NAN` are skipped. `step` (env steps so far) and `owner` (the agent's name)
    go into the message.
    """
    for name, value in metrics.items():
        if name in MAY_BE_NAN or isinstance(value, (bool, str)) or value is None:
            continue
        try:
            finite = math.isfinite(value)
        except TypeError:  # not a number (a list, an array): not an update metric
            continue
        if not finite:
            bad = ", ".join(f"{k} = {v}" for k, v in metrics.items() if _is_bad(k, v))
            lr = metrics.get("learning_rate")
            at = f" (learning rate {lr:g})" if isinstance(lr, float) and math.isfinite(lr) else ""
            raise NonFiniteError(f"{owner}: the update at env step {step}{at} produced {bad}. {CAUSES}")


def _is_bad(name: str, value: Any) -> bool:
    try:
        return name not in MAY_BE_NAN and not isinstance(value, (bool, str)) and not math.isfinite(value)
    except TypeError:
        return False


def check_env_step(env, step: int, obs, rewards, info: Optional[Mapping] = None, done=None) -> None:
    """Raise `NonFiniteError` naming the env and the step if a vector env returned NaN or inf.

    Checks the float arrays of `obs` (an array, or a dict of arrays for Dict spaces) and
    `rewards` with one vectorized `np.isfinite` each, and, where episodes ended (`done`), the
    true final observations in `info["final_obs"]`. `env` is the vector env (named in the
    message); `step` the env steps counted after this vector step.
    """
    rewards = np.asarray(rewards)
    if rewards.dtype.kind == "f" and not np.isfinite(rewards).all():
        _raise(env, step, "reward", rewards, None)
    if isinstance(obs, Mapping):
        for key, value in obs.items():
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                _raise(env, step, "observation", value, key)
    elif obs.dtype.kind == "f" and not np.isfinite(obs).all():
        _raise(env, step, "observation", obs, None)
    if done is not None and info and "final_obs" in info and np.any(done):
        for i in np.flatnonzero(done):
            final = info["final_obs"][i]
            parts = final.items() if isinstance(final, Mapping) else [(None, final)]
            for key, value in parts:
                value = np.asarray(value)
                if value.dtype.kind == "f" and not np.isfinite(value).all():
                    _raise(env, step, "final observation", value, key, index=int(i))


def _raise(env, step: int, what: str, values: np.ndarray, key: Optional[str], index: Optional[int] = None) -> None:
    """`values`: the batch of all envs, or with `index` given, the one value of env `index`."""
    if index is None:
        rows = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
        index = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        row = rows[index]
    else:
        row = values.reshape(-1)
    sample = row[~np.isfinite(row)][0]
    n = getattr(env, "num_envs", None)
    where = f"env {index}" + (f" of {n}" if n else "")
    field = f" (key {key!r})" if key is not None else ""
    raise NonFiniteError(
        f"{where} ({env_name(env)}) returned a non-finite {what}{field}: {sample} at env step {step}. "
        f"Training was stopped: NaN or inf in the data corrupts every network it reaches. Fix the env (or wrap it "
        f"to clip or replace such values); tlrl.envs.check_env(env, n_steps=...) checks a longer rollout.")


def env_name(env) -> str:
    """A readable name of a (vector) env: its registered id, else its class."""
    spec = getattr(env, "spec", None)
    if spec is None:
        subs = getattr(env, "envs", None)
        if subs:
            spec = getattr(subs[0], "spec", None)
            if spec is None:
                cls = type(getattr(subs[0], "unwrapped", subs[0]))
                return f"{cls.__module__}:{cls.__qualname__}"
        else:
            fns = getattr(env, "env_fns", None)
            target = getattr(fns[0], "spec", None) if fns else None
            if isinstance(target, str):
                return target
    if spec is not None and getattr(spec, "id", None):
        return str(spec.id)
    return type(env).__name__
