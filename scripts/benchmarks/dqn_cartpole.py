"""DQN on CartPole-v1 with rl-baselines3-zoo's settings (dqn.yml), tlrl vs Stable-Baselines3.

Zoo settings: 50k steps, lr 2.3e-3, batch 64, buffer 100k, learning_starts 1000, gamma 0.99,
target_update_interval 10, train_freq 256, gradient_steps 128, exploration_fraction 0.16,
exploration_final_eps 0.04, net_arch [256, 256] (relu), Huber loss, max_grad_norm 10. One env.
tlrl uses the same hyperparameters and the same target-update semantics as SB3 (updates due
every 10 env steps, i.e. the target is copied before each 128-step training phase; see
`tlrl.algorithms.dqn`); nothing else is switched on (no double Q, dueling, PER or n-step).

`wall` is agent construction + training; evaluation is 20 deterministic episodes on a separate env.

Threads: SB3 runs with `torch.set_num_threads(1)`. On this shared 2-core machine torch's default
2-thread pool thrashes under load (SB3 `train()` measured at 75-95 ms per gradient step with 2
threads vs 7-12 ms with 1, same load), so 1 thread is SB3's fastest setting here and the fairer
comparison. TensorFlow keeps its defaults.
"""
import time

TITLE = "DQN CartPole-v1 (zoo settings, 50k steps, train_freq 256, gradient_steps 128)"
TARGET = "eval >= 475 per seed after 50k steps; wall time <= 0.5 x SB3's"
STEPS = 50_000
SETTINGS = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
                target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04)
NET_ARCH = [256, 256]


def run_tlrl(seed: int) -> dict:
    from tlrl.algorithms import DQN

    t0 = time.perf_counter()
    agent = DQN("CartPole-v1", seed=seed, net_arch=tuple(NET_ARCH), **SETTINGS)
    agent.learn(STEPS)
    wall = time.perf_counter() - t0
    mean, std = agent.evaluate(20, deterministic=True)
    return dict(eval_mean=mean, eval_std=std, steps=agent.num_timesteps, wall=wall)


def run_sb3(seed: int) -> dict:
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=1, seed=seed)
    model = DQN("MlpPolicy", env, policy_kwargs=dict(net_arch=NET_ARCH), seed=seed, device="cpu", **SETTINGS)
    model.learn(STEPS)
    wall = time.perf_counter() - t0
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=seed + 10_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return dict(eval_mean=float(mean), eval_std=float(std), steps=int(model.num_timesteps), wall=wall)
