"""What every benchmark task measures on the tlrl side, written once.

`train_tlrl` builds an agent, trains it and evaluates it the way every task module reports:
`wall` is agent construction + training; evaluation is 20 deterministic episodes on a separate
env (`agent.evaluate(20)`), so it is not on the clock.
"""
import time


def train_tlrl(algo: str, env_id: str, seed: int, steps: int, **hyperparameters) -> dict:
    """Train `tlrl.algorithms.<algo>` on `env_id` for `steps` env steps; the row of one seed."""
    import tlrl.algorithms

    t0 = time.perf_counter()
    agent = getattr(tlrl.algorithms, algo)(env_id, seed=seed, **hyperparameters)
    agent.learn(steps)
    wall = time.perf_counter() - t0
    mean, std = agent.evaluate(20, deterministic=True)
    return dict(eval_mean=mean, eval_std=std, steps=agent.num_timesteps, wall=wall)
