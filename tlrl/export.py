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

The policy-function hook. An agent may define `policy_fn()` returning a callable
`f(obs) -> actions` that

- takes raw observations as float32 tensors `[B, *obs_shape]` (a dict of them for Dict spaces),
  i.e. before any normalization, and applies the agent's own preprocessing itself;
- returns the deterministic actions as a tensor, equal to `agent.act(obs, deterministic=True)`
  (Discrete: the action index including `space.start`; Box: clipped to the bounds when `act` clips);
- is traceable by `tf.function` (plain TF ops, no numpy, no Python side effects) and uses only
  variables reachable from `agent._trackables()` (they are saved with the function).

Agents without it get `default_policy_fn`, which knows tlrl's layouts: a Q network `q_net`
(DQN: greedy action), a deterministic `actor` (DDPG, TD3: clipped to bounds), and a policy
network giving a distribution (PPO, A3C: its mode) found as `model` / `network` /
`policy_network` / `policy` / `actor_critic`; observation normalization through `obs_normalizers`
(a dict, None for a Box space) or `obs_normalizer`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Optional

import gymnasium as gym
import numpy as np
import tensorflow as tf

EXPORT_INFO = "tlrl_export.json"


class ExportError(RuntimeError):
    """The agent's policy cannot be exported (no known policy layout, untracked variables, ...)."""


def _tf_dtype(space: gym.Space) -> tf.DType:
    dtype = np.dtype(space.dtype)
    if dtype == np.uint8:
        return tf.uint8
    if dtype.kind in "iub":
        return tf.int32 if isinstance(space, gym.spaces.Discrete) else tf.float32
    return tf.float32


def _normalizers(agent) -> Dict[Any, tuple]:
    """Frozen statistics of the agent's observation normalizers: {key or None: (mean, var, eps, clip)}.

    Reads `agent.obs_normalizers` (a dict: None for a Box space, or Dict keys) or `agent.obs_normalizer`.
    """
    norms = getattr(agent, "obs_normalizers", None)
    if norms is None:
        single = getattr(agent, "obs_normalizer", None)
        norms = {None: single} if single is not None else {}
    out = {}
    for key, norm in dict(norms).items():
        state = norm.get_state()
        out[key] = (tf.constant(np.asarray(state["mean"], np.float64)), tf.constant(np.asarray(state["var"], np.float64)),
                    float(norm.eps), float(norm.clip))
    return out


def _normalize(x, stats):
    """Like ObservationNormalizer.normalize: float64 arithmetic, clipped, float32."""
    mean, var, eps, clip = stats
    y = (tf.cast(x, tf.float64) - mean) / tf.sqrt(var + eps)
    return tf.cast(tf.clip_by_value(y, -clip, clip), tf.float32)


def _preprocess(agent) -> Callable:
    """float32 raw observations -> what the agent's networks take (normalized, cast like at acting)."""
    space = agent.observation_space
    norms = _normalizers(agent)

    def prep(obs):
        if isinstance(space, gym.spaces.Dict):
            return {k: _normalize(obs[k], norms[k]) if k in norms else tf.cast(obs[k], _tf_dtype(s))
                    for k, s in space.spaces.items()}
        if None in norms:
            return _normalize(obs, norms[None])
        return tf.cast(obs, _tf_dtype(space))

    return prep


def _mode(dist):
    """Deterministic action of a head's output: a tfp distribution's mode, or a tensor as is."""
    if isinstance(dist, tf.Tensor):
        return dist
    return dist.mode()


def default_policy_fn(agent) -> Callable:
    """The deterministic `obs -> action` function of an agent built from tlrl's modules (see module doc)."""
    action_space = agent.action_space
    prep = _preprocess(agent)
    out_dtype = tf.as_dtype(np.dtype(action_space.dtype))

    def finish(actions):
        if isinstance(action_space, gym.spaces.Discrete):
            return tf.cast(actions, out_dtype) + tf.cast(action_space.start, out_dtype)
        if isinstance(action_space, gym.spaces.MultiDiscrete):
            return tf.cast(actions, out_dtype) + tf.constant(action_space.start, out_dtype)
        if isinstance(action_space, gym.spaces.Box):
            low, high = action_space.low.astype(np.float32), action_space.high.astype(np.float32)
            actions = tf.cast(actions, tf.float32)
            if np.all(np.isfinite(low)) and np.all(np.isfinite(high)):
                actions = tf.clip_by_value(actions, low, high)
            return tf.cast(actions, out_dtype)
        return tf.cast(actions, out_dtype)

    if hasattr(agent, "q_net"):
        q_net = agent.q_net
        return lambda obs: finish(tf.argmax(q_net(prep(obs)), axis=-1, output_type=tf.int64))
    if isinstance(getattr(agent, "actor", None), tf.Module):
        actor = agent.actor
        return lambda obs: finish(_mode(actor(prep(obs))))
    for name in ("model", "network", "policy_network", "policy", "actor_critic"):
        net = getattr(agent, name, None)
        if isinstance(net, tf.Module):
            def fn(obs, net=net):
                out = net(prep(obs))
                if isinstance(out, (tuple, list)):  # (distribution, value)
                    out = out[0]
                return finish(_mode(out))
            return fn
    raise ExportError(f"cannot export {type(agent).__name__}: it defines no policy_fn() and has none of the "
                      f"networks tlrl knows (q_net, actor, policy_network, policy, actor_critic); add a "
                      f"policy_fn() method (see tlrl.export)")


def _signature_specs(space: gym.Space) -> Dict[str, tf.TensorSpec]:
    if isinstance(space, gym.spaces.Dict):
        return {k: tf.TensorSpec([None, *s.shape], tf.float32, name=k) for k, s in space.spaces.items()}
    return {"observations": tf.TensorSpec([None, *space.shape], tf.float32, name="observations")}


def _trackable_state(agent) -> Dict[str, Any]:
    """The agent's TF objects to save with the function (networks; optimizers left out)."""
    from tlrl.optim import Adam

    out = {}
    for name, obj in agent._trackables().items():
        if isinstance(obj, Adam):
            continue
        out[name] = obj
    return out


def export_saved_model(agent, out_dir: str, *, overwrite: bool = False) -> str:
    """Write `agent`'s deterministic policy as a SavedModel in `out_dir` (atomically); return the path."""
    space = agent.observation_space
    fn = agent.policy_fn() if callable(getattr(agent, "policy_fn", None)) else default_policy_fn(agent)
    specs = _signature_specs(space)
    is_dict = isinstance(space, gym.spaces.Dict)

    module = tf.Module()
    module.agent_state = _trackable_state(agent)
    if is_dict:
        act = tf.function(lambda observations: fn(observations), input_signature=[dict(specs)])
        serve = tf.function(lambda **obs: {"actions": act(obs)})
    else:
        act = tf.function(lambda observations: fn(observations), input_signature=[specs["observations"]])
        serve = tf.function(lambda observations: {"actions": act(observations)})
    module.act = act
    concrete = serve.get_concrete_function(**specs)

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
                              f"Every variable its policy function uses must be in _trackables().") from None
        info = {"algo": type(agent).__name__, "inputs": {k: [None, *v.shape[1:]] for k, v in specs.items()},
                "input_dtype": "float32", "output": "actions", "action_dtype": str(np.dtype(agent.action_space.dtype)),
                "observation_space": str(space), "action_space": str(agent.action_space),
                "num_timesteps": int(agent.num_timesteps),
                "observation_normalization": bool(_normalizers(agent))}
        with open(os.path.join(tmp, EXPORT_INFO), "w") as fh:
            json.dump(info, fh, indent=2)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
