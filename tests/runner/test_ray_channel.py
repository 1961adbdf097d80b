"""The Ray backend's direct channel, on a local Ray started by `init_ray`: calls go over an authenticated
socket bound to 127.0.0.1, actors that die before or after connecting are reported, a replaced actor's
connection is never taken for its successor's, and nothing is left running."""
import functools
import importlib.util
import multiprocessing.connection as mpc
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from .helpers import alive, toy_factory, wait_dead

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def local_ray():
    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")}
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # what init_ray sets, before ray is imported here
    # Ray's worker processes inherit this environment: let them import the test helpers.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, saved["PYTHONPATH"]) if p)
    from tlrl.runner.ray_pool import init_ray, shutdown_ray

    import ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=2)
    try:
        yield ray
    finally:
        shutdown_ray()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pool(make_factory=toy_factory, n=1):
    from tlrl.runner.ray_pool import RayPool

    return RayPool(make_factory, n, num_cpus=0.5)


def _collect(pool, n_events, timeout=120.0):  # the timeout only guards against a hang
    events, deadline = [], time.monotonic() + timeout
    while len(events) < n_events and time.monotonic() < deadline:
        events += pool.poll(timeout=1.0)
    return events


def _exits_at_once(index, attempt):
    """A worker factory whose call ends the actor's process: it dies before connecting."""
    return functools.partial(os._exit, 3)


def test_calls_queued_before_the_actor_connects_are_delivered_and_errors_keep_their_traceback(local_ray):
    with _pool(n=2) as pool:
        pool.start()
        for i in range(2):  # submitted at once: the actors have not connected yet
            pool.submit(i, "echo", i)
        events = _collect(pool, 2)
        assert sorted((ev.index, ev.value["x"], ev.value["calls"]) for ev in events) == [(0, 0, 1), (1, 1, 1)]
        pool.submit(1, "fail", "env exploded")
        (ev,) = _collect(pool, 1)
        assert ev.failure.kind == "raised" and ev.failure.message == "RuntimeError: env exploded"
        assert "in fail" in ev.failure.traceback and isinstance(ev.failure.exception, RuntimeError)
        pids = [pool.info(i)["pid"] for i in range(2)]
    assert wait_dead(pids), "an actor process outlived close()"


@pytest.mark.parametrize("worker_niceness", [0, None])
def test_actors_run_at_the_learners_priority_unless_rays_default_is_asked_for(local_ray, worker_niceness):
    """Ray nices its workers by 15; next to a busy learner such an actor collected about 70% of a process's rate."""
    from tlrl.runner.ray_pool import RayPool

    with RayPool(toy_factory, 1, num_cpus=0.5, worker_niceness=worker_niceness) as pool:
        pool.start()
        pool.submit(0, "pid")
        (ev,) = _collect(pool, 1)
        niceness = os.getpriority(os.PRIO_PROCESS, ev.value)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert niceness == (ours if worker_niceness == 0 else min(ours + 15, 19))


def test_an_actor_that_dies_before_connecting_is_reported_as_died(local_ray):
    with _pool(_exits_at_once) as pool:
        pool.start()
        pool.submit(0, "echo", 1)
        events = _collect(pool, 1)
        assert len(events) == 1, "the death of an actor that never connected was not reported"
        assert events[0].failure.kind == "died" and events[0].failure.message.startswith("(Ray actor) died")


def test_a_killed_actor_is_reported_as_died_and_replaced(local_ray):
    with _pool() as pool:
        pool.start()
        pool.submit(0, "pid")
        (ev,) = _collect(pool, 1)
        old = ev.value
        assert old == pool.info(0)["pid"]
        pool.submit(0, "sleep", 60.0)
        pool.kill(0)  # SIGKILL of the actor's process, in the middle of a call over its socket
        (ev,) = _collect(pool, 1)
        assert ev.failure.kind == "died" and ev.failure.message.startswith("(Ray actor) died")
        pool.restart(0)
        pool.submit(0, "echo", None)
        (ev,) = _collect(pool, 1)
        assert ev.value["attempt"] == 1 and ev.value["calls"] == 1
        assert not alive(old)
        new = pool.info(0)["pid"]
    assert wait_dead([new])


def test_a_connection_saying_it_is_a_replaced_actor_is_not_taken(local_ray):
    with _pool() as pool:
        pool.start()
        pool.submit(0, "echo", 0)
        _collect(pool, 1)
        pool.restart(0)  # generation 1 -> 2
        pool.submit(0, "sleep", 0.5)  # queued until the new actor connects
        stale = mpc.Client(pool.listen_address, family="AF_INET", authkey=pool._listener.authkey)
        stale.send((0, 1))  # the hello of the replaced actor
        stale.send(("ok", "a result of the replaced actor"))
        (ev,) = _collect(pool, 1)
        assert ev.failure is None and ev.value == pool.info(0)["pid"]
        stale.close()


def test_a_peer_without_the_key_is_refused_and_the_pool_goes_on(local_ray):
    with _pool() as pool:
        pool.start()
        with pytest.raises(mpc.AuthenticationError):
            mpc.Client(pool.listen_address, family="AF_INET", authkey=os.urandom(32))
        pool.submit(0, "echo", 1)
        (ev,) = _collect(pool, 1)
        assert ev.value["x"] == 1


def test_a_silent_peer_holds_up_no_actor_and_is_dropped_at_the_deadline(local_ray, monkeypatch):
    import socket

    from tlrl.runner import ray_channel

    monkeypatch.setattr(ray_channel, "_HELLO_SECONDS", 300.0)  # the actor must get in while the peer still waits
    with _pool() as pool:
        pool.start()
        silent = socket.create_connection(pool.listen_address)  # connects before the actor, then says nothing
        pool.submit(0, "echo", 1)
        (ev,) = _collect(pool, 1)
        assert ev.failure is None and ev.value["x"] == 1
        silent.close()
        monkeypatch.setattr(ray_channel, "_HELLO_SECONDS", 0.5)
        silent = socket.create_connection(pool.listen_address)
        silent.settimeout(60.0)  # only guards against a hang
        received = b""
        while True:
            chunk = silent.recv(4096)  # the key challenge, then the end: dropped for its silence
            if not chunk:
                break
            received += chunk
        assert received.startswith(b"\x00\x00") and b"#CHALLENGE#" in received
        silent.close()
        pool.submit(0, "echo", 2)
        (ev,) = _collect(pool, 1)
        assert ev.value["x"] == 2


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss to list listening sockets")
def test_the_pool_listens_on_the_loopback_address_only_and_stops_listening_on_close(local_ray):
    pool = _pool()
    with pool:
        pool.start()
        host, port = pool.listen_address
        assert host == "127.0.0.1"
        out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout.splitlines()
        assert [line.split()[3] for line in out if line.split()[3].endswith(f":{port}")] == [f"127.0.0.1:{port}"]
    with pytest.raises(OSError):
        mpc.Client(("127.0.0.1", port), family="AF_INET", authkey=b"x")


# ----- every wait has a deadline ---------------------------------------------------------------------------------
def test_an_actor_that_stops_answering_is_killed_at_the_deadline_and_replaced(local_ray, tmp_path):
    from tlrl.runner.ray_pool import RayPool

    with RayPool(toy_factory, 1, num_cpus=0.5, call_timeout=2.0) as pool:
        pool.start()
        pool.submit(0, "pid")
        (ev,) = _collect(pool, 1)
        old = ev.value
        pool.submit(0, "block", str(tmp_path / "never"))  # as an env.step that never returns
        (ev,) = _collect(pool, 1)
        assert ev.failure.kind == "timeout" and "did not answer within 2 s (worker_timeout)" in ev.failure.message
        assert wait_dead([old]), "the silent actor was not killed"
        pool.restart(0)
        pool.submit(0, "echo", None)
        (ev,) = _collect(pool, 1)
        assert ev.value["attempt"] == 1
        new = pool.info(0)["pid"]
    assert wait_dead([new])


def test_a_connected_actor_that_ray_reports_dead_fails_although_its_socket_stays_open(local_ray):
    """A node that vanishes without a reset leaves the learner's socket open; Ray knows the actor is gone."""
    import signal

    with _pool() as pool:  # no call deadline: only the check with Ray can see this death
        pool.start()
        pool.submit(0, "hold_socket_to", pool.listen_address, 120.0)
        (ev,) = _collect(pool, 1)
        holder = ev.value
        try:
            pool.submit(0, "sleep", 600.0)
            pool.kill(0)  # the actor's process dies; the holder keeps its end of the socket open
            (ev,) = _collect(pool, 1)
            assert ev.failure.kind == "died" and ev.failure.message.startswith("(Ray actor) died")
            assert alive(holder), "the socket was not held open: the test tested nothing"
        finally:
            os.kill(holder, signal.SIGKILL)


def test_a_peer_that_drips_bytes_is_dropped_at_the_handshake_deadline_while_actors_train(local_ray, monkeypatch):
    from tlrl.algorithms import DQN
    from tlrl.runner import ApeX
    from tlrl.runner import ray_channel

    from .test_call_listener import _challenged, _closed_by_server

    monkeypatch.setattr(ray_channel, "_HELLO_SECONDS", 3.0)
    agent = DQN("runner.helpers:ShortCorridor", seed=0, learning_starts=64, buffer_size=2000, batch_size=16,
                train_freq=8, gradient_steps=2, net_arch=(16,), jit_compile=False)
    apex = ApeX(agent, workers=1, backend="ray", block_steps=16, keep_workers=True)
    try:
        apex.start_workers()
        dripper = socket.create_connection(apex.pool.listen_address)
        assert b"#CHALLENGE#" in _challenged(dripper)
        result = {}
        thread = threading.Thread(target=lambda: result.update(closed=_closed_by_server(dripper, 0.5, 3.0 + 10.0)))
        thread.start()
        apex.learn(512)
        thread.join()
        assert agent.num_timesteps == 512
        assert result["closed"], "the dripping peer was still connected 10 s after the handshake deadline"
        dripper.close()
    finally:
        apex.close()


def test_init_ray_refuses_to_start_a_local_ray_beyond_loopback_when_ray_was_imported_first():
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when imported; imported before it was set to 0, a local Ray would
    listen on the machine's address (where it has one): `init_ray` says so instead of starting it."""
    code = ("import ray\nfrom ray.util import get_node_ip_address\nfrom tlrl.runner.ray_pool import init_ray\n"
            "node = get_node_ip_address()\ntry:\n    init_ray()\nexcept RuntimeError as exc:\n    print('refused', exc)\n"
            "else:\n    print('started', node)\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300).stdout
    if out.startswith("started"):  # no network address here other than loopback: nothing to refuse
        assert out.split()[1] == "127.0.0.1", out
    else:
        assert out.startswith("refused") and "not on 127.0.0.1 only" in out and "before importing ray" in out, out


def test_pre_started_actors_are_taken_by_the_next_pool_and_spares_it_cannot_use_are_killed(local_ray):
    """`tlrl.runner.ray_host.prestart` (what `tlrl train` does before it imports TF): the actors exist before
    their factory; a pool with the same options sends them their factory instead of starting new ones,
    and kills spares with other options (they would hold CPUs its own actors wait for)."""
    from tlrl.runner.ray_host import prestart
    from tlrl.runner.ray_pool import RayPool

    prestart(2, preload=(), num_cpus=0.5)
    spare_pids = sorted(local_ray.get([a.info.remote() for a, _ in _spares()]), key=str)
    with RayPool(toy_factory, 2, num_cpus=0.5) as pool:
        pool.start()
        for i in range(2):
            pool.submit(i, "echo", i)
        events = _collect(pool, 2)
        assert sorted(ev.value["x"] for ev in events) == [0, 1]
        assert sorted((pool.info(i) for i in range(2)), key=str) == spare_pids
        assert not _spares()
    prestart(1, preload=(), num_cpus=0.25)  # other options: not takeable by the next pool
    (other,) = [a for a, _ in _spares()]
    other_pid = local_ray.get(other.info.remote())["pid"]
    with RayPool(toy_factory, 1, num_cpus=0.5) as pool:
        pool.start()
        pool.submit(0, "pid")
        (ev,) = _collect(pool, 1)
        assert ev.value != other_pid and not _spares()
        assert wait_dead([other_pid]), "a spare the pool could not use still runs"


def _spares():
    from tlrl.runner import ray_host

    return list(ray_host.spares())
