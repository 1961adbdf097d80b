"""PPO on Pendulum-v1, tlrl vs Stable-Baselines3 with the same settings.

rl-baselines3-zoo's Pendulum-v1 PPO (4 envs, n_steps 1024, gae_lambda 0.95, gamma 0.9,
n_epochs 10, ent_coef 0, learning_rate 1e-3, clip_range 0.2) uses gSDE, which tlrl does not
have; here both frameworks run it with a plain Gaussian policy (use_sde=False) and the other
settings below. `wall` is network construction + training; evaluation is 20 deterministic
episodes on a separate env.
"""
import time

TITLE = "PPO Pendulum-v1 (zoo settings without gSDE, 200k steps, 4 envs)"
TARGET = "eval >= -250 within 200k steps"
STEPS = 200_000
SETTINGS = dict(n_envs=4, n_steps=1024, batch_size=64, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                learning_rate=1e-3, clip_range=0.2)


def run_tlrl(seed: int) -> dict:
    from tlrl.algorithms import PPO

    t0 = time.perf_counter()
    agent = PPO("Pendulum-v1", seed=seed, **SETTINGS)
    agent.learn(STEPS)
    wall = time.perf_counter() - t0
    mean, std = agent.evaluate(20, deterministic=True)
    return dict(eval_mean=mean, eval_std=std, steps=agent.num_timesteps, wall=wall)


def run_sb3(seed: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    settings = dict(SETTINGS)
    n_envs = settings.pop("n_envs")
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", use_sde=False, **settings)
    model.learn(STEPS)
    wall = time.perf_counter() - t0
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed + 10_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return dict(eval_mean=float(mean), eval_std=float(std), steps=int(model.num_timesteps), wall=wall)
