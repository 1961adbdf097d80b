"""Turn an environment spec into a Gymnasium env or vector env.

A spec is one of:

* a registered id, e.g. ``"tlrl/GridWorld-v0"`` or ``"CartPole-v1"`` (made with `gymnasium.make`);
* ``"package.module:Class"``: the module is imported with `importlib` and ``Class(**kwargs)``
  is instantiated, where ``Class`` must be a subclass of `gymnasium.Env`. ``"package.module:Env-v0"``
  also works when importing the module registers that id with Gymnasium;
* a `gymnasium.Env` instance (used as is; it cannot take ``kwargs`` or be copied into workers);
* a factory callable: a class or function called as ``factory(**kwargs)`` (zero-argument
  factories work when ``kwargs`` is empty);
* a `gymnasium.envs.registration.EnvSpec`, or a mapping ``{"id": ..., "kwargs": {...}}`` as in
  the ``env`` section of a YAML config.

A *string* never names anything but a registered id or a `gymnasium.Env` subclass, wherever it
comes from (Python, a YAML config, a saved agent's ``agent.json``, a worker process):
`resolve_env_id` imports the module, then checks what it found before calling anything, so a
data file cannot make tlrl call ``"subprocess:run"`` or ``"os:system"``. Factories, instances and
other callables are passed as Python objects (``PPO(lambda: MyEnv(8))``), never by name.

Vector envs use ``AutoresetMode.SAME_STEP`` explicitly: when a sub-env's episode ends, the
vector env resets it inside the same `step` call, so the returned observation is already the
first of the next episode and the true final observation is in ``info["final_obs"][i]`` (with
``info["_final_obs"][i]`` True and the last step's info in ``info["final_info"]``). The reward,
``terminated`` and ``truncated`` returned by that step belong to the episode that ended. So a
transition ``(obs, action, reward, final_obs)`` never spans an episode boundary, and there is
no dummy step after an episode end as with ``NEXT_STEP``.
"""
from __future__ import annotations

import difflib
import inspect
import pickle
from typing import Any, Callable, Dict, Mapping, Optional, Union

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from tlrl.named_class import describe_kind, find_named, is_class

EnvSpecLike = Union[str, gym.Env, Callable[..., gym.Env], EnvSpec, Mapping[str, Any]]

_SPEC_FORMS = (
    "a registered id such as 'tlrl/GridWorld-v0', a 'package.module:Class' string, a gymnasium.Env "
    "instance, a factory callable (a class or a function returning an env), or {'id': ..., 'kwargs': {...}}"
)


class EnvSpecError(ValueError):
    """An environment spec that cannot be turned into an environment."""


def _describe(spec: Any) -> str:
    name = getattr(spec, "__qualname__", None) or type(spec).__name__
    module = getattr(spec, "__module__", None)
    return f"{module}.{name}" if module else name


def _unknown_id_error(env_id: str) -> EnvSpecError:
    ids = sorted(gym.registry.keys())
    close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.5)
    if not close:  # also match on the name alone, ignoring namespace and version
        names = {i.split("/")[-1].split("-v")[0].lower(): i for i in ids}
        hits = difflib.get_close_matches(env_id.split("/")[-1].split("-v")[0].lower(), list(names), n=5, cutoff=0.6)
        close = [names[h] for h in hits]
    msg = f"Unknown environment id {env_id!r}: it is not registered with Gymnasium."
    if close:
        msg += " Did you mean: " + ", ".join(repr(c) for c in close) + "?"
    tlrl_ids = [i for i in ids if i.startswith("tlrl/")]
    if tlrl_ids:
        msg += " tlrl's own envs: " + ", ".join(tlrl_ids) + "."
    msg += (
        " For your own env class pass 'package.module:Class' (the module must be importable), or register the "
        "id with gymnasium.register(...) in a module you import first."
    )
    return EnvSpecError(msg)


def _not_allowed(spec: str, obj: Any) -> EnvSpecError:
    return EnvSpecError(
        f"{spec!r} names {describe_kind(obj)}, not a gymnasium.Env subclass. An env given as a string (in a config, a "
        "saved agent.json or Python) may only be a registered Gymnasium id or 'package.module:Class' with Class a "
        "gymnasium.Env subclass, so a data file never calls other code. To build the env with a function, pass "
        "the function itself from Python, e.g. PPO(make_my_env) or PPO(lambda: MyEnv(8))."
    )


def resolve_env_id(spec: str) -> Union[str, type]:
    """The registered id or the `gymnasium.Env` subclass that the string ``spec`` names.

    This is the one place where tlrl turns a string into code to run, for `make_env`, worker
    processes and config validation alike. It imports the module of a ``"package.module:Class"``
    spec (which runs that module's top-level code), looks the name up without calling anything
    (`tlrl.named_class.find_named`: names, nested ones too, are read with `inspect.getattr_static`,
    so no module ``__getattr__`` or descriptor runs), and returns it only if it is a subclass of
    `gymnasium.Env`. ``"module:Env-v0"`` returns the id
    ``"Env-v0"`` when importing the module registered it.

    Raises:
        EnvSpecError: for an unknown id, a module that cannot be imported, a missing name, or a
            name that is anything but a `gymnasium.Env` subclass (a function, an instance, ...).

    Example:
        >>> resolve_env_id("tlrl.envs:GridWorldEnv").__name__
        'GridWorldEnv'
        >>> resolve_env_id("subprocess:run")
        Traceback (most recent call last):
        ...
        tlrl.envs.make.EnvSpecError: 'subprocess:run' names a function, not a gymnasium.Env subclass. ...
    """
    if not isinstance(spec, str):
        raise EnvSpecError(f"An env id must be a string, got {spec!r} of type {type(spec).__name__}.")
    if ":" not in spec:
        if spec not in gym.registry:
            raise _unknown_id_error(spec)
        return spec
    return find_named(spec, what="env spec", defines="env class", error=EnvSpecError, accept=_is_env_class,
                      refuse=lambda obj: _not_allowed(spec, obj), registered=gym.registry.__contains__)


def _is_env_class(obj: Any) -> bool:
    return is_class(obj) and issubclass(obj, gym.Env)


def _call_factory(factory: Callable[..., Any], kwargs: Dict[str, Any], render_mode: Optional[str], what: str) -> Any:
    call_kwargs = dict(kwargs)
    if render_mode is not None:
        call_kwargs["render_mode"] = render_mode
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        signature = None
    if signature is not None:
        try:
            signature.bind(**call_kwargs)
        except TypeError as exc:
            extra = " (render_mode is passed only when you ask for one)" if render_mode is not None else ""
            raise EnvSpecError(
                f"Cannot call env factory {what} with keyword arguments {sorted(call_kwargs)}{extra}: {exc}. "
                f"Its signature is {signature}; make the env kwargs match its parameters."
            ) from None
    return _built(what, call_kwargs, lambda: factory(**call_kwargs))


def _built(what: str, kwargs: Dict[str, Any], build: Callable[[], Any]) -> Any:
    """`build()`, with an error raised by the env's own constructor turned into one that names the env."""
    try:
        return build()
    except EnvSpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's constructor can raise anything
        raise EnvSpecError(
            f"Building the env {what} with kwargs {kwargs} failed: {type(exc).__name__}: {exc} (raised by the env's "
            f"constructor; build it in Python with tlrl.envs.make_env to see the traceback)"
        ) from exc


def make_env(spec: EnvSpecLike, kwargs: Optional[Dict[str, Any]] = None, *,
             render_mode: Optional[str] = None) -> gym.Env:
    """Make one environment from a spec (see the module docstring for the accepted forms).

    Args:
        spec: registered id, ``"package.module:Class"``, env instance, factory, EnvSpec or
            ``{"id": ..., "kwargs": ...}`` mapping.
        kwargs: keyword arguments for the env constructor (merged over the registered ones for
            an id). Not allowed with an instance.
        render_mode: e.g. ``"rgb_array"``; passed to the constructor only when not None.

    Returns:
        The environment. Registered ids get Gymnasium's usual wrappers (time limit, order
        enforcing, passive checker); classes and factories are returned as they build them.

    Raises:
        EnvSpecError: (a ValueError) for an unknown id, a module that cannot be imported, a
            missing class, a string naming anything but a `gymnasium.Env` subclass, kwargs the
            factory does not take, a constructor that raises, or a spec of the wrong type.

    Example:
        >>> import tlrl.envs
        >>> env = tlrl.envs.make_env("tlrl/GridWorld-v0", {"size": 4})
        >>> env.observation_space.shape
        (16,)
    """
    kwargs = dict(kwargs or {})
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"id", "kwargs"}
        if "id" not in spec or unknown:
            raise EnvSpecError(f"An env mapping needs the key 'id' and optionally 'kwargs'; got keys {sorted(spec)}.")
        return make_env(spec["id"], {**dict(spec.get("kwargs") or {}), **kwargs}, render_mode=render_mode)
    if isinstance(spec, EnvSpec):
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        return _built(repr(spec.id), kwargs, lambda: gym.make(spec, **kwargs))
    if isinstance(spec, gym.Env):
        if kwargs:
            raise EnvSpecError(
                f"Env kwargs {sorted(kwargs)} cannot be applied to an env instance ({_describe(type(spec))}) that is "
                "already built; pass its class, 'package.module:Class' or a factory instead."
            )
        if render_mode is not None and getattr(spec, "render_mode", None) != render_mode:
            raise EnvSpecError(
                f"render_mode={render_mode!r} was asked for, but the env instance was built with render_mode="
                f"{getattr(spec, 'render_mode', None)!r}; build it with render_mode={render_mode!r} or pass a factory."
            )
        return spec
    if isinstance(spec, str):
        target = resolve_env_id(spec)
        if not isinstance(target, str):
            return _call_factory(target, kwargs, render_mode, repr(spec))
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        return _built(repr(target), kwargs, lambda: gym.make(target, **kwargs))
    if callable(spec):
        return _call_factory(spec, kwargs, render_mode, _describe(spec))
    raise EnvSpecError(f"Cannot make an environment from {spec!r} of type {type(spec).__name__}; pass {_SPEC_FORMS}.")


class _EnvFactory:
    """A picklable zero-argument env factory for (Sync|Async)VectorEnv.

    Unpickling it in a spawned worker imports `tlrl.envs`, which registers tlrl's ids there.
    """

    def __init__(self, spec: Any, kwargs: Dict[str, Any], seed: Optional[int]):
        self.spec, self.kwargs, self.seed = spec, kwargs, seed

    def __call__(self) -> gym.Env:
        env = make_env(self.spec, self.kwargs)
        if self.seed is not None:
            # Seed the env's RNG and its spaces; later `reset()` calls without a seed continue
            # from here, so a whole run is reproducible.
            env.reset(seed=self.seed)
            env.action_space.seed(self.seed)
            env.observation_space.seed(self.seed)
        return env


def make_vector_env(spec: EnvSpecLike, n_envs: int, *, seed: Optional[int] = None,
                    kwargs: Optional[Dict[str, Any]] = None, asynchronous: bool = False) -> VectorEnv:
    """Make ``n_envs`` copies of an environment as a Gymnasium vector env with SAME_STEP autoreset.

    Args:
        spec: as for `make_env`. An env instance works only with ``n_envs=1`` and
            ``asynchronous=False``: it cannot be copied or sent to a worker process.
        n_envs: number of sub-environments.
        seed: if given, env ``i`` is seeded with ``seed + i`` when it is built (its RNG by a
            ``reset(seed=seed + i)`` and its action/observation spaces), and the vector action
            space with ``seed``. Calling ``reset(seed=s)`` later re-seeds env ``i`` with ``s + i``.
        kwargs: keyword arguments for each env's constructor.
        asynchronous: run each env in its own process (`AsyncVectorEnv`, ``spawn`` context); the
            spec must then be picklable: an id, a ``"module:Class"`` string, or a class or
            function defined at module level of an importable module.

    Returns:
        A `SyncVectorEnv` or `AsyncVectorEnv` with ``autoreset_mode=AutoresetMode.SAME_STEP``:
        the final observation of an episode is in ``info["final_obs"]``.

    Example:
        >>> import tlrl.envs
        >>> venv = tlrl.envs.make_vector_env("tlrl/Catch-v0", 4, seed=0)
        >>> obs, info = venv.reset()
        >>> obs.shape, venv.metadata["autoreset_mode"].name
        ((4, 10, 10, 1), 'SAME_STEP')
        >>> venv.close()
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    kwargs = dict(kwargs or {})
    if isinstance(spec, gym.Env):
        if asynchronous:
            raise EnvSpecError(
                "asynchronous=True cannot use an env instance: each worker process must build its own env. "
                "Pass a registered id, 'package.module:Class', or a module-level factory function instead."
            )
        if n_envs != 1:
            raise EnvSpecError(
                f"n_envs={n_envs} copies cannot be made from one env instance; pass a registered id, "
                "'package.module:Class' or a factory callable instead."
            )
        if kwargs:
            raise EnvSpecError(f"Env kwargs {sorted(kwargs)} cannot be applied to an env instance that is already built.")
    elif not isinstance(spec, (str, EnvSpec, Mapping)) and not callable(spec):
        raise EnvSpecError(f"Cannot make an environment from {spec!r} of type {type(spec).__name__}; pass {_SPEC_FORMS}.")
    elif isinstance(spec, (str, Mapping)):  # a bad string fails here, in the parent, before any worker starts
        env_id = spec if isinstance(spec, str) else spec.get("id")
        if isinstance(env_id, str):
            resolve_env_id(env_id)

    env_fns = [_EnvFactory(spec, kwargs, None if seed is None else seed + i) for i in range(n_envs)]
    if asynchronous:
        try:
            pickle.dumps(env_fns[0])
        except Exception as exc:  # noqa: BLE001 - pickling can fail in many ways
            raise EnvSpecError(
                f"asynchronous=True needs an env spec that can be sent to a worker process, but {_describe(spec)} "
                f"cannot be pickled ({exc}). Use a registered id, a 'package.module:Class' string, or a class/"
                "function defined at the top level of an importable module (not a lambda or a nested function), "
                "and picklable kwargs."
            ) from exc
        venv: VectorEnv = AsyncVectorEnv(env_fns, context="spawn", autoreset_mode=AutoresetMode.SAME_STEP)
    else:
        venv = SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)
    if seed is not None:
        venv.action_space.seed(seed)
        venv.observation_space.seed(seed)
    return venv
