"""Numpy forward passes of tlrl MLP torsos and heads, for cheap acting while weights are frozen.

A `tf.function` call on a 64-64 MLP costs about 0.3 ms on CPU; the same forward pass in
numpy about 0.01-0.03 ms. During a PPO rollout (or between an actor's weight pulls) the
weights do not change, so acting can copy them once (`sync()`) and run in numpy.

This is tlrl's one numpy acting path (PPO, DQN, remote actors and workers use it).
`NumpyModule(module, observation_space=space)` compiles a tlrl module into a numpy function:
`Sequential`, `Flatten`, `Dense` (with a registered activation), `LayerNorm`, `Lambda` of a
registered activation or of `OneHot`, `DictTorso`, and the heads `CategoricalHead`,
`MultiCategoricalHead`, `GaussianHead`, `ValueHead` and `QHead` (`numpy_q_function` gives a
Q network's). Anything else (convolutions, Keras models, custom callables) raises
`NumpyUnsupported`, and the caller falls back to TF. Observations are cast as the TF networks
get them (`tlrl.spaces.obs_signature`: float32, Discrete int32). Policy heads give numpy
distributions whose sampling draws from a `numpy.random.Generator`, so acting is exact and seeded.

>>> import numpy as np, tensorflow as tf
>>> from tlrl.modules import mlp, CategoricalHead
>>> torso, head = mlp([8]), CategoricalHead(3)
>>> x = np.ones([2, 4], np.float32)
>>> _ = head(torso(tf.constant(x)))  # build the variables
>>> policy = NumpyModule(torso, head)
>>> policy.sync()
>>> dist = policy(x)
>>> dist.sample(np.random.default_rng(0)).shape
(2,)
>>> bool(np.allclose(dist.logits, head(torso(tf.constant(x))).logits_parameter().numpy(), atol=1e-5))
True
"""
from __future__ import annotations

import math
from typing import Callable, List, Mapping, Optional

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.layers import Dense, Flatten, Lambda, LayerNorm, Sequential
from tlrl.layers import activations as tf_activations
from tlrl.modules.heads import CategoricalHead, GaussianHead, MultiCategoricalHead, QHead, ValueHead
from tlrl.modules.torsos import DictTorso, OneHot
from tlrl.spaces import obs_signature

_LOG_2PI = math.log(2.0 * math.pi)


class NumpyUnsupported(TypeError):
    """The module holds a part with no numpy equivalent (use the TF forward pass instead)."""


# ----- activations ------------------------------------------------------------
def _np_sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _np_elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _np_softplus(x):
    return np.logaddexp(x, 0).astype(x.dtype, copy=False)


def _np_silu(x):
    return x * _np_sigmoid(x)


_NP_ACTIVATIONS = {
    "linear": None,
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
    "sigmoid": _np_sigmoid,
    "elu": _np_elu,
    "silu": _np_silu,
    "swish": _np_silu,
    "softplus": _np_softplus,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),  # tf.nn.leaky_relu's default alpha
}


def _np_activation(fn) -> Optional[Callable]:
    name = tf_activations.name_of(fn)
    if name not in _NP_ACTIVATIONS:
        raise NumpyUnsupported(f"activation {getattr(fn, '__name__', fn)!r} has no numpy equivalent here")
    return _NP_ACTIVATIONS[name]


# ----- distributions ----------------------------------------------------------
def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class NumpyCategorical:
    """Categorical over the last axis of `logits` ([..., n]); samples by inverse CDF from one uniform each."""

    def __init__(self, logits: np.ndarray):
        self.logits = logits

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.sample_and_log_prob(rng)[0]

    def sample_and_log_prob(self, rng: np.random.Generator):
        """A sample and its log-probability, sharing the softmax (one call per acting step)."""
        n = self.logits.shape[-1]
        z = self.logits.reshape(-1, n)  # [rows, n]
        z = z - z.max(axis=-1, keepdims=True)
        cdf = np.cumsum(np.exp(z), axis=-1)
        total = cdf[:, -1]
        u = rng.random(len(total)) * total
        a = np.minimum((cdf <= u[:, None]).sum(axis=-1), n - 1)
        log_p = z[np.arange(len(a)), a] - np.log(total)
        shape = self.logits.shape[:-1]
        return a.reshape(shape).astype(np.int64), self._reduce(log_p.reshape(shape)).astype(np.float32)

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        return x

    def mode(self) -> np.ndarray:
        return np.argmax(self.logits, axis=-1).astype(np.int64)

    def log_prob(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, np.int64)[..., None]
        log_p = np.take_along_axis(_log_softmax(self.logits.astype(np.float64)), a, axis=-1)[..., 0]
        return self._reduce(log_p).astype(np.float32)

    def entropy(self) -> np.ndarray:
        log_p = _log_softmax(self.logits.astype(np.float64))
        return self._reduce(-(np.exp(log_p) * log_p).sum(-1)).astype(np.float32)


class NumpyMultiCategorical(NumpyCategorical):
    """Independent Categoricals over the second axis of `logits` ([B, D, max_n]); log-probs sum over D."""

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        return x.sum(axis=-1)


class NumpyDiagGaussian:
    """Diagonal Gaussian N(mean, exp(log_std)^2) over the last axis."""

    def __init__(self, mean: np.ndarray, log_std: np.ndarray):
        self.mean = mean
        self.log_std = np.broadcast_to(log_std, mean.shape)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.sample_and_log_prob(rng)[0]

    def sample_and_log_prob(self, rng: np.random.Generator):
        """A sample (float32, unclipped) and its log-probability."""
        noise = rng.standard_normal(self.mean.shape)
        action = (self.mean + np.exp(self.log_std) * noise).astype(np.float32)
        return action, self.log_prob(action)

    def mode(self) -> np.ndarray:
        return self.mean.astype(np.float32, copy=False)

    def log_prob(self, action: np.ndarray) -> np.ndarray:
        log_std = self.log_std.astype(np.float64)
        z = (np.asarray(action, np.float64) - self.mean) * np.exp(-log_std)
        return (-0.5 * z * z - log_std - 0.5 * _LOG_2PI).sum(axis=-1).astype(np.float32)

    def entropy(self) -> np.ndarray:
        return (self.log_std + 0.5 * (1.0 + _LOG_2PI)).sum(axis=-1).astype(np.float32)


# ----- compilation --------------------------------------------------------------
Fn = Callable[[List[np.ndarray], object], object]


def _compile(module, variables: List[tf.Variable]) -> Fn:
    """A function `(weights, x) -> y` computing `module(x)` in numpy; appends the variables it reads."""

    def slot(var: tf.Variable) -> int:
        variables.append(var)
        return len(variables) - 1

    if isinstance(module, Sequential):
        parts = [_compile(layer, variables) for layer in module.layers]

        def sequential(w, x):
            for part in parts:
                x = part(w, x)
            return x

        return sequential
    if isinstance(module, Dense):
        if not module.built:
            raise NumpyUnsupported(f"Dense '{module.name}' is not built yet; call the network once first")
        iw = slot(module.w)
        ib = slot(module.b) if module.use_bias else None
        act = _np_activation(module.activation)

        def dense(w, x):
            y = x @ w[iw]
            if ib is not None:
                y += w[ib]
            return y if act is None else act(y)

        return dense
    if isinstance(module, Flatten):
        return lambda w, x: x.reshape(x.shape[0], -1)
    if isinstance(module, LayerNorm):
        ig = slot(module.gamma) if module.scale else None
        ibeta = slot(module.beta) if module.center else None
        eps = module.eps

        def layer_norm(w, x):
            mean = x.mean(axis=-1, keepdims=True)
            var = x.var(axis=-1, keepdims=True)
            y = (x - mean) / np.sqrt(var + eps)
            if ig is not None:
                y = y * w[ig]
            if ibeta is not None:
                y = y + w[ibeta]
            return y.astype(np.float32, copy=False)

        return layer_norm
    if isinstance(module, Lambda):
        fn = module.fn
        if isinstance(fn, OneHot):
            eye = np.eye(fn.n, dtype=np.float32)
            return lambda w, x: eye[np.asarray(x).reshape(-1).astype(np.int64)]
        try:
            act = _np_activation(fn)
        except NumpyUnsupported:
            raise NumpyUnsupported(f"Lambda '{module.name}' wraps {getattr(fn, '__name__', fn)!r}, which has no numpy "
                                   f"equivalent (only registered activations and OneHot do)") from None
        return (lambda w, x: x) if act is None else (lambda w, x: act(x))
    if isinstance(module, DictTorso):
        parts = {k: _compile(module.torsos[k], variables) for k in module.keys}

        def dict_torso(w, obs: Mapping):
            return np.concatenate([parts[k](w, obs[k]) for k in module.keys], axis=-1)

        return dict_torso
    if isinstance(module, CategoricalHead):
        logits = _compile(module.logits, variables)
        return lambda w, x: NumpyCategorical(logits(w, x))
    if isinstance(module, MultiCategoricalHead):
        flat = _compile(module.logits, variables)
        gather, mask = module.gather_index, module.padding_mask.numpy()
        return lambda w, x: NumpyMultiCategorical(flat(w, x)[:, gather] + mask)
    if isinstance(module, GaussianHead):
        mean = _compile(module.mean, variables)
        if module.state_dependent_std:
            log_std = _compile(module.log_std_layer, variables)
            return lambda w, x: NumpyDiagGaussian(mean(w, x), np.clip(log_std(w, x), -20.0, 2.0))
        ils = slot(module.log_std)
        return lambda w, x: NumpyDiagGaussian(mean(w, x), w[ils])
    if isinstance(module, ValueHead):
        value = _compile(module.layer, variables)
        return lambda w, x: value(w, x)[:, 0]
    if isinstance(module, QHead):
        advantage = _compile(module.advantage, variables)
        if not module.dueling:
            return advantage
        state_value = _compile(module.value, variables)

        def dueling(w, x):
            a = advantage(w, x)
            return state_value(w, x) + a - a.mean(axis=-1, keepdims=True)

        return dueling
    raise NumpyUnsupported(f"no numpy forward pass for {type(module).__name__}")


def _caster(observation_space: Optional[gym.Space]) -> Callable:
    """`x -> x` cast to the dtypes of `tlrl.spaces.obs_signature(observation_space)` (resolved once, not per call);
    without a space, float32 (a float Box's dtype; each key of a dict)."""
    if observation_space is None:
        return lambda x: ({k: np.asarray(v, np.float32) for k, v in x.items()} if isinstance(x, Mapping)
                          else np.asarray(x, np.float32))
    dtypes = tf.nest.map_structure(lambda spec: spec.dtype.as_numpy_dtype, obs_signature(observation_space))
    if isinstance(dtypes, Mapping):
        return lambda x: {k: np.asarray(x[k], d) for k, d in dtypes.items()}
    return lambda x: np.asarray(x, dtypes)


class NumpyModule:
    """The numpy forward pass of `modules` applied in sequence (e.g. a torso then a head).

    The weights are copied from the TF variables by `sync()` (call it whenever they changed);
    calls between syncs use that snapshot. Inputs are cast as the TF networks get observations of
    `observation_space` (`tlrl.spaces.obs_signature`); without a space, to float32 (features, Box
    observations).

    Raises:
        NumpyUnsupported: if a part has no numpy equivalent (the caller should use TF).
    """

    def __init__(self, *modules, observation_space: Optional[gym.Space] = None):
        if not modules:
            raise ValueError("NumpyModule needs at least one module")
        self._variables: List[tf.Variable] = []
        self._parts = [_compile(m, self._variables) for m in modules]
        self._cast = _caster(observation_space)
        self._weights: Optional[List[np.ndarray]] = None

    @property
    def variables(self) -> List[tf.Variable]:
        """The TF variables the forward pass reads, in the order `sync(values)` expects."""
        return list(self._variables)

    def sync(self, values: Optional[List[np.ndarray]] = None) -> None:
        """Copy the current weights of the TF variables, or take `values` (arrays in `variables` order,
        e.g. returned by a compiled update, which saves reading each variable)."""
        if values is None:
            self._weights = [v.numpy() for v in self._variables]
            return
        if len(values) != len(self._variables):
            raise ValueError(f"sync got {len(values)} arrays for {len(self._variables)} variables")
        for v, a in zip(self._variables, values):
            if tuple(np.shape(a)) != tuple(v.shape):
                raise ValueError(f"sync: array of shape {np.shape(a)} for variable {v.name} of shape {tuple(v.shape)}")
        self._weights = list(values)

    def __call__(self, x):
        if self._weights is None:
            raise RuntimeError("NumpyModule: call sync() once to copy the weights before the first forward pass")
        x, w = self._cast(x), self._weights
        for part in self._parts:
            x = part(w, x)
        return x


def numpy_q_function(q_net, observation_space: Optional[gym.Space] = None) -> Optional[NumpyModule]:
    """Q(s, .) of a Q network (`q_net.torso` then a `QHead` `q_net.head`) in numpy, `[B, n_actions]`, synced with
    the current weights, or None if a part has no numpy version (act in TF then). Call `sync()` after every
    change of the weights."""
    try:
        q = NumpyModule(q_net.torso, q_net.head, observation_space=observation_space)
    except NumpyUnsupported:
        return None
    q.sync()
    return q


def supports_numpy(*modules) -> bool:
    """Whether `NumpyModule(*modules)` can be built (the modules must be built already)."""
    try:
        NumpyModule(*modules)
        return True
    except NumpyUnsupported:
        return False
