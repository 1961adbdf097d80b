"""PPO's parts: hyperparameters (`PPOConfig`), networks (`ActorCritic`), loss (`ppo_loss`), fused update.

`algorithms/ppo.py` builds the agent from them (references are in its docstring); they are
here so that each file stays one readable page.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar, Dict, List, Mapping, Optional, Tuple, Union

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.compiled import compile_fixed
from tlrl.hyperparams import require
from tlrl.layers import initializers as init
from tlrl.modules import ValueHead, make_policy_head, make_torso
from tlrl.modules.torsos import is_image_space
from tlrl.schedules import ScheduleSpec
from tlrl.spaces import obs_signature

ArchSpec = Union[Tuple[int, ...], Dict[str, Tuple[int, ...]]]


# ----- hyperparameters ---------------------------------------------------------------------------
@dataclasses.dataclass
class PPOConfig:
    """PPO hyperparameters (SB3 names and defaults)."""

    learning_rate: ScheduleSpec = 3e-4
    """Adam step size: a number, "lin_<start>" (linear to 0 over the learn call) or a callable of progress 0->1."""
    n_steps: int = 2048
    """Steps per env in each rollout (a rollout holds n_steps * n_envs transitions)."""
    batch_size: int = 64
    """Minibatch size; a rollout that it does not divide ends each epoch with a smaller minibatch (as SB3)."""
    n_epochs: int = 10
    """Passes over each rollout, each with a fresh shuffle."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda (bias/variance trade-off of the advantages)."""
    clip_range: ScheduleSpec = 0.2
    """PPO ratio clip epsilon: number, "lin_<start>" or callable of progress."""
    clip_range_vf: Optional[ScheduleSpec] = None
    """If set, value predictions are clipped to old_value +- this (SB3 semantics); None disables it."""
    normalize_advantage: bool = True
    """Normalize advantages within each minibatch (mean 0, std 1)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: Optional[float] = 0.5
    """Clip gradients to this global norm; None disables clipping."""
    target_kl: Optional[float] = None
    """Stop the update early (rest of all epochs) when a minibatch's approx. KL exceeds 1.5 * target_kl."""
    n_envs: int = 1
    """Number of parallel training envs (one vector env)."""
    net_arch: ArchSpec = (64, 64)
    """Hidden sizes: a list for both actor and critic torsos, or {"pi": [...], "vf": [...]}."""
    activation: str = "tanh"
    """Activation of the torso MLPs."""
    share_torso: Optional[bool] = None
    """One torso for actor and critic; None means shared for image observations (CNN), separate otherwise."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (Box actions)."""
    normalize_obs: bool = False
    """Normalize (float Box) observations with running statistics, saved with the agent, frozen at evaluation."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (training only)."""
    clip_obs: float = 10.0
    """Clip normalized observations to +- this."""
    clip_reward: float = 10.0
    """Clip normalized rewards to +- this."""
    jit_compile: bool = True
    """Compile the fused update with XLA (CartPole, 20 minibatches of 256: 11 ms vs 23 ms a call; compiling takes
    a few seconds once)."""

    #: The interval of each float field (checked, with NaN and infinity refused, by `tlrl.hyperparams.build_config`;
    #: schedules at progress 0; None passes where a field is optional).
    RANGES: ClassVar[Dict[str, str]] = {
        "learning_rate": "(0, inf)", "gamma": "[0, 1]", "gae_lambda": "[0, 1]", "clip_range": "(0, inf)",
        "clip_range_vf": "(0, inf)", "ent_coef": "[0, inf)", "vf_coef": "[0, inf)", "max_grad_norm": "(0, inf)",
        "target_kl": "(0, inf)", "log_std_init": "(-inf, inf)", "clip_obs": "(0, inf)", "clip_reward": "(0, inf)"}

    def validate(self) -> None:
        for name in ("n_steps", "batch_size", "n_epochs", "n_envs"):
            require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        require(self.batch_size <= self.n_steps * self.n_envs,
                f"batch_size ({self.batch_size}) must not exceed the rollout size n_steps * n_envs "
                f"({self.n_steps} * {self.n_envs} = {self.n_steps * self.n_envs})")
        pi, vf = self.arch()
        if self.share_torso and pi != vf:
            raise ValueError(f"share_torso=True needs one net_arch for both actor and critic, got pi={pi}, vf={vf}")

    def arch(self) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """(actor hidden sizes, critic hidden sizes) from `net_arch`."""
        if isinstance(self.net_arch, Mapping):
            require(set(self.net_arch) == {"pi", "vf"},
                    f"net_arch as a dict needs exactly the keys 'pi' and 'vf', got {sorted(self.net_arch)}")
            pi, vf = tuple(self.net_arch["pi"]), tuple(self.net_arch["vf"])
        else:
            pi = vf = tuple(self.net_arch)
        for sizes in (pi, vf):
            require(all(isinstance(h, int) and h > 0 for h in sizes),
                    f"net_arch sizes must be positive integers, got {self.net_arch}")
        return tuple(int(h) for h in pi), tuple(int(h) for h in vf)


# ----- networks ----------------------------------------------------------------------------------
class ActorCritic(tf.Module):
    """Policy pi(a|s) (a `tfp` distribution) and value V(s), with separate or shared torsos."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: PPOConfig):
        super().__init__(name="actor_critic")
        pi_arch, vf_arch = config.arch()
        shared = config.share_torso if config.share_torso is not None else _has_image(observation_space)
        self.shared = bool(shared)
        self.pi_torso = make_torso(observation_space, hidden=pi_arch, activation=config.activation)
        self.vf_torso = self.pi_torso if self.shared else make_torso(observation_space, hidden=vf_arch,
                                                                       activation=config.activation)
        head_kwargs = {"log_std_init": config.log_std_init} if isinstance(action_space, gym.spaces.Box) else {}
        self.policy_head = make_policy_head(action_space, **head_kwargs)  # orthogonal(0.01) init
        self.value_head = ValueHead(w_init=init.orthogonal(1.0))

    def __call__(self, obs):
        obs = tf.nest.map_structure(lambda x: tf.cast(x, tf.float32), obs)
        pi_features = self.pi_torso(obs)
        vf_features = pi_features if self.shared else self.vf_torso(obs)
        return self.policy_head(pi_features), self.value_head(vf_features)

    def value(self, obs) -> tf.Tensor:
        obs = tf.nest.map_structure(lambda x: tf.cast(x, tf.float32), obs)
        return self.value_head(self.vf_torso(obs))


def _has_image(space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Dict):
        return any(_has_image(s) for s in space.spaces.values())
    return is_image_space(space)


# ----- loss --------------------------------------------------------------------------------------
def _mean(x: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
    return tf.reduce_mean(x) if mask is None else tf.reduce_sum(x * mask) / tf.reduce_sum(mask)


def ppo_loss(dist, values: tf.Tensor, batch: Mapping[str, tf.Tensor], *, clip_range, clip_range_vf=None,
             ent_coef: float = 0.0, vf_coef: float = 0.5, normalize_advantage: bool = True,
             mask: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """The PPO loss L = L_clip + vf_coef * L_value - ent_coef * entropy, and its metrics.

    Args:
        dist: the current policy's distribution at `batch["obs"]` ([B] batch shape).
        values: current V(s), [B].
        batch: old `action`, `log_prob`, `value`, and `advantage`, `return` ([B] each).
        clip_range: epsilon of the ratio clip; `clip_range_vf`: value clip (None: no clipping).
        mask: optional [B] float weights of valid rows (1) and padding (0).

    Returns:
        `(loss, metrics)` with policy_loss, value_loss, entropy, approx_kl, clip_fraction, loss.
    """
    log_prob = dist.log_prob(batch["action"])
    advantage = batch["advantage"]
    if normalize_advantage:
        mean = _mean(advantage, mask)
        n = tf.cast(tf.size(advantage), tf.float32) if mask is None else tf.reduce_sum(mask)
        sq = tf.square(advantage - mean) if mask is None else tf.square(advantage - mean) * mask
        std = tf.sqrt(tf.reduce_sum(sq) / tf.maximum(n - 1.0, 1.0))  # unbiased, as torch.std in SB3
        advantage = (advantage - mean) / (std + 1e-8)
    log_ratio = log_prob - batch["log_prob"]
    ratio = tf.exp(log_ratio)
    surrogate = tf.minimum(advantage * ratio, advantage * tf.clip_by_value(ratio, 1.0 - clip_range, 1.0 + clip_range))
    policy_loss = -_mean(surrogate, mask)
    if clip_range_vf is not None:
        values = batch["value"] + tf.clip_by_value(values - batch["value"], -clip_range_vf, clip_range_vf)
    value_loss = _mean(tf.square(batch["return"] - values), mask)
    entropy = _mean(dist.entropy(), mask)
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    log_ratio, ratio = tf.stop_gradient(log_ratio), tf.stop_gradient(ratio)
    metrics = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": _mean((ratio - 1.0) - log_ratio, mask),  # the low-variance estimator k3
        "clip_fraction": _mean(tf.cast(tf.abs(ratio - 1.0) > clip_range, tf.float32), mask),
        "loss": loss,
    }
    return loss, metrics


METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "loss", "grad_norm")


# ----- the fused update --------------------------------------------------------------------------
def policy_action_space(space: gym.Space) -> gym.Space:
    """Actions as the policy samples (and the rollout stores) them: Box flattened, discrete ones from 0."""
    if isinstance(space, gym.spaces.Box):
        return gym.spaces.Box(space.low.reshape(-1), space.high.reshape(-1), dtype=np.float32)
    if isinstance(space, gym.spaces.Discrete):
        return gym.spaces.Discrete(int(space.n))
    return gym.spaces.MultiDiscrete(space.nvec)


class FusedUpdate:
    """A whole PPO update, all `n_epochs` x minibatches of `ppo_loss` and Adam, as ONE compiled call.

    `update(data, perms, schedule)`: `data` the rollout's `n` rows (`obs`, `action` as sampled, `log_prob`,
    `value`, `advantage`, `return`), `perms` n_epochs permutations of the rows each padded to whole
    minibatches, concatenated, `schedule` [learning rate, clip range, value clip range]. Returns the means
    of `METRICS` over the applied minibatches and their count, and the new values of `acting` followed by
    the global norm of all weights. Padding rows are masked out of every mean; shapes are fixed.
    """

    def __init__(self, model: ActorCritic, optimizer, config: PPOConfig, observation_space: gym.Space,
                 action_space: gym.Space, n: int, acting: List[tf.Variable]):
        c = config
        self.model, self.optimizer, self.acting, self.n = model, optimizer, acting, n
        self.variables = list(model.trainable_variables)
        self.n_minibatches = math.ceil(n / c.batch_size)  # per epoch; the last one may be partial
        self.batch_size, self.n_epochs, self.padded = c.batch_size, c.n_epochs, self.n_minibatches * c.batch_size
        self.mask = (np.arange(self.padded) < n).astype(np.float32)  # 1 for rows, 0 for padding
        self.loss_kwargs = dict(ent_coef=float(c.ent_coef), vf_coef=float(c.vf_coef),
                                normalize_advantage=bool(c.normalize_advantage) and c.batch_size > 1)
        self.use_vf_clip, self.target_kl = c.clip_range_vf is not None, c.target_kl
        policy = policy_action_space(action_space)
        self.action_dtype = tf.float32 if isinstance(action_space, gym.spaces.Box) else tf.int64
        self.data_signature = {
            "obs": obs_signature(observation_space, (n,)),
            "action": tf.TensorSpec((n,) + tuple(policy.shape), self.action_dtype),
            **{k: tf.TensorSpec((n,), tf.float32) for k in ("log_prob", "value", "advantage", "return")}}
        self.update = compile_fixed(self._fused, [self.data_signature, tf.TensorSpec([self.n_epochs * self.padded],
                                                                                     tf.int32), _SCHEDULE],
                                    jit_compile=c.jit_compile)

    def _minibatch_step(self, data, idx, mask, clip, clip_vf):
        model, opt, variables = self.model, self.optimizer, self.variables
        mb = tf.nest.map_structure(lambda x: tf.gather(x, idx), data)  # [batch_size, ...] each
        with tf.GradientTape() as tape:
            dist, value = model(mb["obs"])
            loss, metrics = ppo_loss(dist, value, mb, clip_range=clip, clip_range_vf=clip_vf if self.use_vf_clip
                                     else None, mask=mask, **self.loss_kwargs)
        grads = tape.gradient(loss, variables)
        if self.target_kl is None:
            metrics["grad_norm"] = opt.apply(grads, variables)
            return metrics, tf.constant(True)
        # SB3: a minibatch whose KL is already too large is not applied, and the update stops.
        ok = metrics["approx_kl"] <= 1.5 * self.target_kl
        metrics["grad_norm"] = tf.cond(ok, lambda: opt.apply(grads, variables), lambda: tf.linalg.global_norm(grads))
        return metrics, ok

    def _fused(self, data, perms, schedule):
        n, padded, batch_size, n_mb = self.n, self.padded, self.batch_size, self.n_minibatches
        self.optimizer.learning_rate.assign(schedule[0])
        clip, clip_vf = schedule[1], schedule[2]
        full_mask = tf.constant(self.mask)

        def body(j, keep, count, sums):
            idx = tf.slice(perms, [j * batch_size], [batch_size])
            mask = None if n == padded else tf.slice(full_mask, [(j % n_mb) * batch_size], [batch_size])
            metrics, ok = self._minibatch_step(data, idx, mask, clip, clip_vf)
            sums = tuple(s + tf.cast(ok, tf.float32) * metrics[k] for s, k in zip(sums, METRICS))
            return j + 1, ok, count + tf.cast(ok, tf.float32), sums

        zeros = tuple(tf.zeros([]) for _ in METRICS)
        _, _, count, sums = tf.while_loop(lambda j, keep, count, sums: tf.logical_and(j < self.n_epochs * n_mb, keep),
                                          body, (tf.constant(0), tf.constant(True), tf.zeros([]), zeros))
        means = tf.stack([s / tf.maximum(count, 1.0) for s in sums] + [count])
        # The new acting weights, then the global norm of all weights (NaN or inf once one is: tlrl.finite).
        return means, [tf.identity(v) for v in self.acting] + [tf.linalg.global_norm(self.variables)]

    def reference_step(self) -> Callable:
        """One minibatch step `(data, idx, mask, schedule) -> metrics`, compiled when asked for (the unfused
        reference: the fused update is a loop of exactly this)."""
        def step(data, idx, mask, schedule):
            self.optimizer.learning_rate.assign(schedule[0])
            metrics, _ = self._minibatch_step(data, idx, None if self.n == self.padded else mask, schedule[1],
                                              schedule[2])
            return metrics

        spec = [tf.TensorSpec([self.batch_size], tf.int32), tf.TensorSpec([self.batch_size], tf.float32)]
        return compile_fixed(step, [self.data_signature, *spec, _SCHEDULE])


_SCHEDULE = tf.TensorSpec([3], tf.float32)  # learning rate, clip range, value clip range
