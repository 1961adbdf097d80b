"""Compose an agent tlrl does not ship: discrete-action Soft Actor-Critic (Christodoulou, 2019,
"Soft Actor-Critic for Discrete Action Settings", arXiv:1910.07207), built from tlrl modules only.

Parts used: a user-defined torso written with `tlrl.layers`, `tlrl.modules.CategoricalHead` (policy)
and `QHead` (twin critics + Polyak targets), `tlrl.optim.Adam`, and `tlrl.off_policy.OffPolicyAgent`,
which brings the replay buffer, the collect -> store -> update loop, `evaluate` and `save`/`load`.
Hooks overridden: `_build`, `_explore_actions`, `_act_batch`, `_train`, `_trackables`. See docs/compose.md.

    python scripts/compose_agent.py [--steps 10000] [--seed 0]
"""
import argparse
import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tlrl.layers import Dense, LayerNorm, Sequential  # noqa: E402
from tlrl.modules import CategoricalHead, QHead  # noqa: E402
from tlrl.off_policy import OffPolicyAgent, OffPolicyConfig, obs_signature, to_tf_obs  # noqa: E402
from tlrl.optim import Adam  # noqa: E402


# ----- agent code starts here ------------------------------------------------------------------
class ResidualTorso(tf.Module):  # a user-defined torso: Dense -> LayerNorm -> ReLU, then a residual block
    def __init__(self, width: int = 64, name=None):
        super().__init__(name=name)
        self.stem = Sequential([Dense(width), LayerNorm(), tf.nn.relu])
        self.block = Sequential([Dense(width, "relu"), Dense(width)])

    def __call__(self, obs):
        h = self.stem(tf.cast(obs, tf.float32))
        return tf.nn.relu(h + self.block(h))


@dataclasses.dataclass
class DiscreteSACConfig(OffPolicyConfig):  # the shared loop's fields (buffer, batch, n_envs...) plus SAC's
    learning_rate: float = 1e-3  # Adam step size of actor, critics and temperature
    tau: float = 0.01  # Polyak coefficient of the target critics, every gradient step
    target_entropy_scale: float = 0.3  # target policy entropy as a fraction of log(n_actions)
    learning_starts: int = 1_000
    batch_size: int = 128
    n_envs: int = 4
    gradient_steps: int = 2


class DiscreteSAC(OffPolicyAgent):
    Config = DiscreteSACConfig

    def _build(self):
        c, n, space = self.config, int(self.action_space.n), self.observation_space
        net = lambda head, name: Sequential([ResidualTorso(), head], name=name)  # noqa: E731
        self.actor = net(CategoricalHead(n), "actor")
        self.critics, self.targets = ([net(QHead(n), f"q{i}{s}") for i in range(2)] for s in ("", "_target"))
        [m(tf.zeros((1,) + space.shape)) for m in [self.actor] + self.critics + self.targets]  # build eagerly
        self.q_vars, self.t_vars = (m[0].trainable_variables + m[1].trainable_variables
                                    for m in (self.critics, self.targets))
        [t.assign(v) for t, v in zip(self.t_vars, self.q_vars)]
        self.log_alpha, self.target_entropy = tf.Variable(0.0, name="log_alpha"), c.target_entropy_scale * np.log(n)
        self.opts = [Adam(c.learning_rate, max_grad_norm=10.0) for _ in range(3)]
        [o.build(v) for o, v in zip(self.opts, [self.q_vars, self.actor.trainable_variables, [self.log_alpha]])]
        sig, kb = obs_signature(space, (None, None)), lambda dt: tf.TensorSpec([None, None], dt)  # noqa: E731
        self._update = tf.function(self._sac_update, input_signature=[sig, kb(tf.int32), kb(tf.float32), sig,
                                   kb(tf.float32)], jit_compile=True, autograph=False)  # k steps, one XLA call
        self._probs = tf.function(lambda obs: self.actor(obs).probs_parameter(), autograph=False,
                                  input_signature=[obs_signature(space)])

    def _sac_update(self, obs, action, reward, next_obs, discount):  # [k, B, ...]: k gradient steps
        body = lambda j, m: (j + 1, self._sac_step(obs[j], action[j], reward[j], next_obs[j], discount[j]))
        m0 = {k: tf.constant(0.0) for k in ("q_loss", "pi_loss", "alpha", "entropy")}
        return tf.while_loop(lambda j, m: j < tf.shape(reward)[0], body, (tf.constant(0), m0))[1]

    def _sac_step(self, obs, action, reward, next_obs, discount):
        alpha, pi_next = tf.exp(self.log_alpha), self.actor(next_obs)
        q_next = tf.minimum(self.targets[0](next_obs), self.targets[1](next_obs))  # clipped double Q, [B, n]
        v_next = tf.reduce_sum(pi_next.probs_parameter() * (q_next - alpha * tf.nn.log_softmax(pi_next.logits)), -1)
        y = reward + discount * v_next  # soft Bellman target; discount is 0 after termination
        with tf.GradientTape() as tape:
            q_loss = sum(tf.reduce_mean(tf.square(tf.gather(q(obs), action, batch_dims=1) - y)) for q in self.critics)
        self.opts[0].apply(tape.gradient(q_loss, self.q_vars), self.q_vars)
        q = tf.minimum(self.critics[0](obs), self.critics[1](obs))
        with tf.GradientTape(persistent=True) as tape:
            pi = self.actor(obs)
            p, logp = pi.probs_parameter(), tf.nn.log_softmax(pi.logits)
            pi_loss = tf.reduce_mean(tf.reduce_sum(p * (alpha * logp - q), -1))  # exact expectation over actions
            entropy = tf.stop_gradient(-tf.reduce_sum(p * logp, -1))
            alpha_loss = self.log_alpha * tf.reduce_mean(entropy - self.target_entropy)
        self.opts[1].apply(tape.gradient(pi_loss, self.actor.trainable_variables), self.actor.trainable_variables)
        self.opts[2].apply(tape.gradient(alpha_loss, [self.log_alpha]), [self.log_alpha])
        [t.assign(t + self.config.tau * (v - t)) for t, v in zip(self.t_vars, self.q_vars)]
        return {"q_loss": q_loss, "pi_loss": pi_loss, "alpha": alpha, "entropy": tf.reduce_mean(entropy)}

    def _act_batch(self, obs, deterministic):  # greedy, or sampled with the agent's seeded numpy rng
        p = self._probs(to_tf_obs(self.observation_space, obs)).numpy()
        a = p.argmax(-1) if deterministic else (p.cumsum(-1) < self.rng.random((len(p), 1))).sum(-1)
        return np.minimum(a, p.shape[-1] - 1).astype(self.action_space.dtype)

    def _explore_actions(self, obs_batch):
        return self._act_batch(obs_batch, deterministic=False)  # the stochastic policy explores

    def _train(self, gradient_steps):
        b = self.sample_stacked(gradient_steps)  # [k, B, ...], cast for TF
        return {k: float(v) for k, v in self._update(b.obs, b.action, b.reward, b.next_obs, b.discount).items()}

    def _trackables(self):
        return dict(actor=self.actor, critics=self.critics, targets=self.targets, log_alpha=self.log_alpha,
                    opts=self.opts)


# ----- agent code ends here --------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    agent = DiscreteSAC("CartPole-v1", seed=args.seed)
    t0 = time.perf_counter()
    def log(agent, info):  # called after every update (and, without metrics, before the first); False would stop
        if info["n_updates"] and info["n_updates"] % 500 == 0:
            metrics = "  ".join(f"{k} {v:.3g}" for k, v in info["metrics"].items())
            print(f"step {info['num_timesteps']:6d}  {metrics}", flush=True)

    agent.learn(args.steps, callback=log)
    mean, std = agent.evaluate(10)
    print(f"DiscreteSAC CartPole-v1: eval {mean:.1f} +/- {std:.1f} after {args.steps} steps, "
          f"{time.perf_counter() - t0:.0f} s")
    return agent, mean


if __name__ == "__main__":
    main()
