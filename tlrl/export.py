"""Export an agent's deterministic policy as a TensorFlow SavedModel that needs no tlrl to run.

The SavedModel has a serving signature `serving_default` taking `observations` (a float32
batch `[B, *obs_shape]`; for a Dict observation space one float32 input per key, named by
the key) and returning `{"actions": [B, ...]}` in the action space's dtype, the same values as
`agent.act(obs, deterministic=True)`. Observation normalization, when the agent uses it, is
inside the graph (its statistics frozen at export time). The same function is also the
`act` attribute of the loaded object:

    import tensorflow as tf                      # no tlrl import needed
    policy = tf.saved_model.load("run/saved_model")
    actions = policy.signatures["serving_default"](observations=tf.constant(obs))["actions"]
    actions = policy.act(tf.constant(obs))

What is exported is the agent's `policy_graph(obs)` (`tlrl.agent.BaseAgent`): the float32
inputs are cast to the dtypes of `tlrl.spaces.obs_signature` (uint8 images, int32 Discrete
observations) and passed to it; it must be traceable by `tf.function` and read only
variables reachable from `agent.trackables()`, which are saved with it (optimizers left out).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.spaces import tf_dtype

EXPORT_INFO = "tlrl_export.json"


class ExportError(RuntimeError):
    """The agent's policy cannot be exported (no `policy_graph`, untracked variables, ...)."""


def _signature_specs(space: gym.Space) -> Dict[str, tf.TensorSpec]:
    """The serving inputs: float32 batches, one per Dict key or one named `observations`."""
    if isinstance(space, gym.spaces.Dict):
        return {k: tf.TensorSpec([None, *s.shape], tf.float32, name=k) for k, s in space.spaces.items()}
    return {"observations": tf.TensorSpec([None, *space.shape], tf.float32, name="observations")}


def _policy(agent) -> Callable:
    """float32 observations -> `agent.policy_graph` on them cast to the dtypes of `tlrl.spaces.obs_signature`."""
    space = agent.observation_space

    def cast(obs):
        if isinstance(space, gym.spaces.Dict):
            return {k: tf.cast(obs[k], tf_dtype(s)) for k, s in space.spaces.items()}
        return tf.cast(obs, tf_dtype(space))

    return lambda obs: agent.policy_graph(cast(obs))


def _trackable_state(agent) -> Dict[str, Any]:
    """The agent's TF objects to save with the function (networks; optimizers left out)."""
    from tlrl.optim import Adam

    return {name: obj for name, obj in agent.trackables().items() if not isinstance(obj, Adam)}


def export_saved_model(agent, out_dir: str, *, overwrite: bool = False) -> str:
    """Write `agent`'s deterministic policy as a SavedModel in `out_dir` (atomically); return the path."""
    space = agent.observation_space
    fn = _policy(agent)
    specs = _signature_specs(space)

    module = tf.Module()
    module.agent_state = _trackable_state(agent)
    if isinstance(space, gym.spaces.Dict):
        act = tf.function(lambda observations: fn(observations), input_signature=[dict(specs)])
        serve = tf.function(lambda **obs: {"actions": act(obs)})
    else:
        act = tf.function(lambda observations: fn(observations), input_signature=[specs["observations"]])
        serve = tf.function(lambda observations: {"actions": act(observations)})
    module.act = act
    try:
        concrete = serve.get_concrete_function(**specs)
    except NotImplementedError as exc:
        raise ExportError(f"cannot export {type(agent).__name__}: {exc}") from None

    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ExportError(f"{out_dir} exists and is not empty; choose another --out or delete it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    try:
        try:
            tf.saved_model.save(module, tmp, signatures={"serving_default": concrete})
        except (ValueError, AssertionError, TypeError) as exc:
            raise ExportError(f"cannot export {type(agent).__name__}'s policy: {str(exc).splitlines()[0][:300]}. "
                              f"Every variable its policy_graph uses must be in trackables().") from None
        info = {"algo": type(agent).__name__, "inputs": {k: [None, *v.shape[1:]] for k, v in specs.items()},
                "input_dtype": "float32", "output": "actions", "action_dtype": str(np.dtype(agent.action_space.dtype)),
                "observation_space": str(space), "action_space": str(agent.action_space),
                "num_timesteps": int(agent.num_timesteps)}
        with open(os.path.join(tmp, EXPORT_INFO), "w") as fh:
            json.dump(info, fh, indent=2)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
