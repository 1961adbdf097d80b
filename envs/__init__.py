"""tlrl.envs: tlrl's own environments, env resolution, checks and normalizers.

Importing this package registers tlrl's environments with Gymnasium (idempotently), so
``gymnasium.make("tlrl/GridWorld-v0")`` works; see `tlrl.envs.registration.ENV_IDS`:

* ``tlrl/GridWorld-v0``: discrete grid world, optional slippery moves (`GridWorldEnv`)
* ``tlrl/GoalGrid-v0``: grid world with a random goal and a Dict observation (`GoalGridEnv`)
* ``tlrl/PointMass-v0``: continuous point-mass reaching, shaped or sparse reward (`PointMassEnv`)
* ``tlrl/Catch-v0``: catch a falling ball from 10x10x1 uint8 pixels (`CatchEnv`)

User environments plug in through `make_env` / `make_vector_env`, which accept a registered id,
``"package.module:Class"``, an env instance or a factory, and `check_env`, which fails fast
with an `EnvCheckError` that says what is wrong and how to fix it. A string (from Python, a
config or a saved agent) resolves through `resolve_env_id` only to a registered id or a
`gymnasium.Env` subclass, so a data file never makes tlrl call any other code.

Vector envs use ``AutoresetMode.SAME_STEP``: the final observation of an episode is in
``info["final_obs"]``, so no transition spans an episode boundary (see `tlrl.envs.make`).

This package imports only numpy and Gymnasium (no TensorFlow).
"""
from tlrl.envs.catch import CatchEnv
from tlrl.envs.checks import EnvCheckError, check_env
from tlrl.envs.gridworld import GoalGridEnv, GridWorldEnv
from tlrl.envs.make import EnvSpecError, make_env, make_vector_env, resolve_env_id
from tlrl.envs.point_mass import PointMassEnv
from tlrl.envs.registration import ENV_IDS, register_envs
from tlrl.envs.wrappers import ObservationNormalizer, RewardNormalizer, RunningMeanStd

register_envs()

__all__ = [
    "ENV_IDS",
    "CatchEnv",
    "EnvCheckError",
    "EnvSpecError",
    "GoalGridEnv",
    "GridWorldEnv",
    "ObservationNormalizer",
    "PointMassEnv",
    "RewardNormalizer",
    "RunningMeanStd",
    "check_env",
    "make_env",
    "make_vector_env",
    "register_envs",
    "resolve_env_id",
]
