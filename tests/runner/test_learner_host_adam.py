"""The asynchronous learner's numpy Adam: same steps as `tlrl.optim.Adam`, and the TF variables kept in step."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from tlrl.optim import Adam
from tlrl.runner.host_adam import HostAdam
from tlrl.runner.learner import Learner

SHAPES = [(3, 4), (4,), (4, 2)]


def _variables(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=s).astype(np.float32)) for s in SHAPES]


@pytest.mark.parametrize("max_grad_norm", [None, 0.5])
def test_host_adam_takes_the_steps_of_the_tf_adam(max_grad_norm):
    rng = np.random.default_rng(1)
    variables = _variables()
    tf_adam = Adam(1e-2, eps=1e-5, max_grad_norm=max_grad_norm)
    tf_adam.build(variables)
    flat = np.concatenate([v.numpy().ravel() for v in variables])
    host = HostAdam.like(tf_adam, flat.size)
    for step in range(60):
        grads = [rng.normal(scale=0.1 if step % 2 else 3.0, size=s).astype(np.float32) for s in SHAPES]
        lr = 1e-2 * (1 - step / 60)
        tf_adam.learning_rate.assign(lr)
        tf_norm = float(tf_adam.apply([tf.constant(g) for g in grads], variables))
        norm = host.apply(np.concatenate([g.ravel() for g in grads]), flat, lr)
        assert norm == pytest.approx(tf_norm, rel=1e-6)
    np.testing.assert_allclose(flat, np.concatenate([v.numpy().ravel() for v in variables]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(host.v, np.concatenate([v.numpy().ravel() for v in tf_adam.v]), rtol=1e-6)
    assert host.step == int(tf_adam.step.numpy()) == 60


def _tf_state(learner):
    opt = learner.optimizer
    return ([v.numpy().copy() for v in learner.variables], [m.numpy().copy() for m in opt.m],
            int(opt.step.numpy()), float(opt.learning_rate.numpy()))


def test_taking_the_lock_brings_network_and_optimizer_variables_up_to_date():
    learner = Learner(_variables(), Adam(0.1))
    before = _tf_state(learner)
    weights, info = learner.apply_flat(np.ones(learner.layout.size, np.float32), 0.05)
    assert info["version"] == 1
    np.testing.assert_array_equal(learner.get_flat_weights(), weights)  # what workers get: the latest
    with learner.lock:
        weights_now, m_now, step, lr = _tf_state(learner)
    np.testing.assert_array_equal(learner.layout.pack(weights_now), weights)
    assert not np.array_equal(learner.layout.pack(weights_now), learner.layout.pack(before[0]))
    assert step == 1 and lr == pytest.approx(0.05) and np.all(learner.layout.pack(m_now) > 0)
    # the same update through a learner that runs the TF optimizer gives the same variables
    reference = Learner(_variables(), Adam(0.1))
    reference._host_ok = False
    reference.apply_flat(np.ones(reference.layout.size, np.float32), 0.05)
    np.testing.assert_allclose(learner.layout.pack(weights_now), reference.get_flat_weights(), rtol=1e-6)


def test_variables_changed_under_the_lock_are_where_the_next_update_starts():
    """A restore (or any change made holding the lock) is not overwritten by the numpy copy."""
    learner = Learner(_variables(), Adam(0.1))
    learner.apply_flat(np.ones(learner.layout.size, np.float32), 0.1)
    with learner.lock:
        for v in learner.variables:
            v.assign(tf.zeros_like(v))
        learner.optimizer.step.assign(0)
        for s in learner.optimizer.m + learner.optimizer.v:
            s.assign(tf.zeros_like(s))
    weights, _ = learner.apply_flat(np.ones(learner.layout.size, np.float32), 0.1)
    np.testing.assert_allclose(weights, -0.1, rtol=1e-5)  # Adam's first step from zeros: -lr * sign(g)
    learner.sync()
    np.testing.assert_allclose(learner.layout.pack([v.numpy() for v in learner.variables]), -0.1, rtol=1e-5)


def test_a_gradient_run_leaves_the_variables_current():
    from tlrl.runner import make_pool
    from tlrl.runner.gradient import run_gradient_workers

    class Worker:
        def step(self, flat):
            return np.ones_like(flat), {"steps": 4}

    learner = Learner(_variables(), Adam(0.1))
    published = []
    run_gradient_workers(make_pool("thread", lambda i, attempt: Worker, 2), learner, 40,
                         lambda stats: published.append(stats["version"]), lambda progress: 0.1, steps_per_rollout=4)
    assert learner.version == len(published) == 10
    assert int(learner.optimizer.step.numpy()) == 10  # read without the lock: already written back
    assert learner._host is None


def test_workers_are_stopped_even_if_writing_the_variables_back_fails():
    from tlrl.runner import make_pool
    from tlrl.runner.gradient import run_gradient_workers

    class Worker:
        def step(self, flat):
            return np.ones_like(flat), {"steps": 4}

    learner = Learner(_variables(), Adam(0.1))

    def broken_sync():
        raise RuntimeError("write-back failed")

    learner.sync = broken_sync
    pool = make_pool("thread", lambda i, attempt: Worker, 2)
    with pytest.raises(RuntimeError, match="write-back failed"):
        run_gradient_workers(pool, learner, 40, lambda stats: None, lambda progress: 0.1, steps_per_rollout=4)
    assert not pool.running
