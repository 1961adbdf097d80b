"""Compose an agent tlrl does not ship: discrete-action Soft Actor-Critic (Christodoulou, 2019,
"Soft Actor-Critic for Discrete Action Settings", arXiv:1910.07207), from tlrl's public parts only.

Parts: a user-defined torso written with `tlrl.layers`, `tlrl.modules.CategoricalHead` (policy),
`QHead` (twin critics) and `polyak_update` (their targets), `tlrl.optim.Adam`, `tlrl.off_policy`
(config, schedule, replay store), `tlrl.spaces` (the TF boundary) and `tlrl.compiled` (the compiled
calls). It fills in
the public extension points of `tlrl.agent.BaseAgent` (see docs/compose.md); the loop, `evaluate`,
`save`/`load`, `tlrl train`/`eval`/`export` and process/Ray actors come with them:

    python scripts/compose_agent.py [--steps 10000] [--seed 0]
    PYTHONPATH=scripts tlrl train my_run.yaml      # with  algo: "compose_agent:DiscreteSAC"
"""
import argparse
import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tlrl.agent import BaseAgent  # noqa: E402
from tlrl.compiled import compile_fixed  # noqa: E402
from tlrl.layers import Dense, LayerNorm, Sequential  # noqa: E402
from tlrl.modules import CategoricalHead, QHead, polyak_update  # noqa: E402
from tlrl.off_policy import OffPolicyConfig, ReplayStore, gradient_steps, replay_plan  # noqa: E402
from tlrl.optim import Adam  # noqa: E402
from tlrl.spaces import obs_signature, tf_env_actions, to_tf_obs, zeros_batch  # noqa: E402


# ----- agent code starts here ------------------------------------------------------------------
class ResidualTorso(tf.Module):
    """A user-defined torso: Dense -> LayerNorm -> ReLU, then a residual block."""

    def __init__(self, width: int = 64, name=None):
        super().__init__(name=name)
        self.stem = Sequential([Dense(width), LayerNorm(), tf.nn.relu])
        self.block = Sequential([Dense(width, "relu"), Dense(width)])

    def __call__(self, obs):
        h = self.stem(tf.cast(obs, tf.float32))
        return tf.nn.relu(h + self.block(h))


@dataclasses.dataclass
class DiscreteSACConfig(OffPolicyConfig):
    """The replay fields (buffer, batch, train_freq, n_envs, ...) plus SAC's."""

    learning_rate: float = 1e-3
    """Adam step size of the actor, the critics and the temperature."""
    tau: float = 0.01
    """Polyak coefficient of the target critics, applied every gradient step."""
    target_entropy_scale: float = 0.3
    """Target policy entropy as a fraction of log(n_actions)."""
    learning_starts: int = 1_000
    """Env steps of uniform random actions before the first update."""
    batch_size: int = 128
    """Transitions per gradient step."""
    n_envs: int = 4
    """Parallel training envs."""
    gradient_steps: int = 2
    """Gradient steps per update (all in one compiled call)."""


class DiscreteSAC(BaseAgent):
    """Discrete SAC: twin soft Q critics, a categorical policy with the exact expectation over actions,
    and a learned temperature alpha."""

    Config = DiscreteSACConfig

    def check_spaces(self, observation_space, action_space):
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(f"DiscreteSAC needs a Discrete action space, got {action_space}")

    def build(self):  # networks, targets, optimizers and compiled calls eagerly; then the plan and the store
        c, n, space = self.config, int(self.action_space.n), self.observation_space
        net = lambda head, name: Sequential([ResidualTorso(), head], name=name)  # noqa: E731
        self.actor = net(CategoricalHead(n), "actor")
        self.critics, self.targets = ([net(QHead(n), f"q{i}{s}") for i in range(2)] for s in ("", "_target"))
        [m(zeros_batch(space)) for m in [self.actor] + self.critics + self.targets]  # create the variables
        self.q_vars, self.t_vars = (m[0].trainable_variables + m[1].trainable_variables
                                    for m in (self.critics, self.targets))
        [t.assign(v) for t, v in zip(self.t_vars, self.q_vars)]
        self.log_alpha, self.target_entropy = tf.Variable(0.0, name="log_alpha"), c.target_entropy_scale * np.log(n)
        self.opts = [Adam(c.learning_rate, max_grad_norm=10.0) for _ in range(3)]
        [o.build(v) for o, v in zip(self.opts, [self.q_vars, self.actor.trainable_variables, [self.log_alpha]])]
        sig, kb = obs_signature(space, (None, None)), lambda dt: tf.TensorSpec([None, None], dt)  # noqa: E731
        self.sac_update = compile_fixed(self.sac_steps, [sig, kb(tf.int32), kb(tf.float32), sig, kb(tf.float32)],
                                        jit_compile=True)  # k gradient steps in one XLA call
        self.probs = compile_fixed(lambda obs: self.actor(obs).probs_parameter(), [obs_signature(space)])
        self.plan = replay_plan(c)  # train_freq vector steps, then update; random actions before learning_starts
        self.store = ReplayStore(c, space, self.action_space, self.n_envs, self.rng)  # last draw from self.rng

    def sac_steps(self, obs, action, reward, next_obs, discount):  # [k, B, ...]: k gradient steps
        body = lambda j, m: (j + 1, self.sac_step(obs[j], action[j], reward[j], next_obs[j], discount[j]))  # noqa
        m0 = {k: tf.constant(0.0) for k in ("q_loss", "pi_loss", "alpha", "entropy")}
        return tf.while_loop(lambda j, m: j < tf.shape(reward)[0], body, (tf.constant(0), m0))[1]

    def sac_step(self, obs, action, reward, next_obs, discount):
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
        polyak_update(self.t_vars, self.q_vars, self.config.tau)  # the target critics trail the critics
        return {"q_loss": q_loss, "pi_loss": pi_loss, "alpha": alpha, "entropy": tf.reduce_mean(entropy)}

    # acting: one TF call for all envs; sampling with the agent's seeded numpy generator
    def act_batch(self, obs, deterministic):
        p = self.probs(to_tf_obs(self.observation_space, obs)).numpy()
        a = p.argmax(-1) if deterministic else (p.cumsum(-1) < self.rng.random((len(p), 1))).sum(-1)
        return (np.minimum(a, p.shape[-1] - 1) + self.action_space.start).astype(self.action_space.dtype)

    def explore(self, obs):
        return self.act_batch(obs, deterministic=False), {}  # the stochastic policy explores; no extras to store

    def acting_variables(self):  # what Ape-X actors pull (the policy reads no other variable)
        return list(self.actor.trainable_variables)

    # weights_changed(): not needed, acting reads the variables themselves (no numpy copy to refresh)

    # learning
    def update(self, obs):  # obs unused: SAC bootstraps from the replayed next observations
        b = self.store.sample_stacked(gradient_steps(self.config, self.n_envs), self.config.batch_size)
        metrics = self.sac_update(b.obs, b.action, b.reward, b.next_obs, b.discount)
        self.n_updates += 1
        return {k: float(v) for k, v in metrics.items()}

    def trackables(self):
        return dict(actor=self.actor, critics=self.critics, targets=self.targets, log_alpha=self.log_alpha,
                    opts=self.opts)

    def policy_graph(self, obs):  # for `tlrl export`: the greedy action, as the env takes it
        return tf_env_actions(self.action_space, tf.argmax(self.actor(obs).logits, -1))


# ----- agent code ends here --------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    agent = DiscreteSAC("CartPole-v1", seed=args.seed)
    t0 = time.perf_counter()

    def log(agent, info):  # called at every boundary of the loop (after each update); False would stop
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
