"""The Ray backend on a simulated 2-node cluster (one Ray session for the module): placement on both
nodes, a killed actor restarted, actors gone at the end, Ray and the pool's socket bound to 127.0.0.1 only."""
import importlib.util
import logging
import os
import shutil
import subprocess
import time

import pytest

from .helpers import toy_factory, wait_dead

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")

CORRIDOR = "runner.helpers:ShortCorridor"
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cluster():
    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")}
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # what tlrl.runner.init_ray does: loopback only
    # Ray's worker processes inherit the nodes' environment: let them import the test helpers.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, saved["PYTHONPATH"]) if p)
    import ray
    from ray.cluster_utils import Cluster
    from ray.util import get_node_ip_address

    assert get_node_ip_address() == "127.0.0.1", "ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_a3c_workers_use_both_nodes_and_survive_a_killed_actor(cluster, caplog):
    import ray

    from tlrl.algorithms import A3C

    agent = A3C(CORRIDOR, seed=0, n_workers=2, backend="ray", n_steps=5, n_envs=2, net_arch=(16,))
    seen = {}

    def callback(agent_, info):
        pool = agent_.workers.pool
        for i in range(2):
            where = pool.info(i)
            seen[where["pid"]] = where["node_id"]
        # Kill the first actor that has delivered twice (one that never worked is not restarted):
        # which one that is depends on which actor finished importing TF first.
        busy = [i for i in range(2) if pool.completed[i] >= 2]
        if "killed" not in seen and busy:
            seen["killed"], index[0] = pool.info(busy[0])["pid"], busy[0]
            pool.kill(busy[0])  # SIGKILL of the actor's process

    index = [None]
    with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
        agent.learn(2000, callback=callback)
    killed = seen.pop("killed")
    assert agent.num_timesteps >= 2000
    assert f"worker {index[0]} of 2 (Ray actor) died" in caplog.text and "restart 1 of at most 3" in caplog.text
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert set(seen.values()) == nodes and len(nodes) == 2, "the workers were not spread over both nodes"
    assert len(seen) == 3 and killed in seen  # two workers and the restarted one
    assert wait_dead(seen), "an actor process outlived learn()"


def test_apex_actors_run_on_ray(cluster):
    from tlrl.algorithms import DQN
    from tlrl.runner import ApeX

    agent = DQN(CORRIDOR, seed=0, learning_starts=64, buffer_size=2000, batch_size=16, train_freq=8,
                gradient_steps=2, net_arch=(16,), jit_compile=False)
    apex = ApeX(agent, workers=2, backend="ray", block_steps=16)
    pids = []
    apex.learn(512, callback=lambda a, info: pids.extend(apex.pool.info(i)["pid"] for i in range(2)) if not pids
               else None)
    assert agent.num_timesteps == 512 and apex.stats["updates"] > 0
    assert wait_dead(set(pids))


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss to list listening sockets")
def test_ray_listens_on_the_loopback_address_only(cluster):
    ray_pids = set()
    for node in [cluster.head_node, *cluster.worker_nodes]:
        for infos in node.all_processes.values():
            ray_pids.update(info.process.pid for info in infos)
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    listening = [line for line in out if any(f"pid={pid}," in line for pid in ray_pids)]
    assert listening, "found no listening socket of Ray's processes"
    for line in listening:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")), f"Ray listens beyond loopback: {line}"


def test_a_pool_joining_a_cluster_listens_on_the_drivers_node_address_for_actors_on_every_node(cluster):
    import ray
    from ray.util import get_node_ip_address

    from tlrl.runner.ray_pool import RayPool

    with RayPool(toy_factory, 2) as pool:  # Ray was started by the fixture, not by tlrl
        pool.start()
        assert pool.listen_address[0] == get_node_ip_address() == "127.0.0.1"  # the loopback cluster's node address
        for i in range(2):
            pool.submit(i, "echo", i)
        events, deadline = [], time.monotonic() + 120.0  # a hang guard only
        while len(events) < 2 and time.monotonic() < deadline:
            events += pool.poll(timeout=1.0)
        assert sorted((ev.index, ev.value["x"]) for ev in events) == [(0, 0), (1, 1)]
        where = [pool.info(i) for i in range(2)]
    assert {w["node_id"] for w in where} == {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert wait_dead([w["pid"] for w in where])
