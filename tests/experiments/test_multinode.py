"""A federated simulation on a two-node Ray cluster (both nodes on this machine).

Ray's own ``cluster_utils.Cluster`` starts a head node and a worker node, each a raylet with
one CPU and a custom resource naming it; fedmarket joins it with ``ray_address`` as
``--ray-address`` does. With one CPU per client actor each node holds exactly one actor, so
the clients are placed on both. The run must train exactly as a one-node run with the same
seed does.
"""

import csv
import tempfile

import pytest

from fedmarket.experiments import ray_session
from fedmarket.experiments.simulate import ClientResources, simulate

pytestmark = [pytest.mark.slow, pytest.mark.multinode, pytest.mark.usefixtures("one_torch_thread")]

SETTINGS = "dp='none' num-server-rounds=2 seed=5"
NODES = ("fm-node-head", "fm-node-worker")  # custom resources, one on each node


def train_losses(run_dir) -> list[float]:
    with open(run_dir / "rounds.csv") as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


def actor_reports(pool) -> list[tuple[str, list[int]]]:
    """Each kept client actor's Ray node and the partitions it loaded (its clients)."""
    import ray

    def probe_app():  # a "ClientApp" for the actor's `run`: reports instead of training
        def report(message, context):
            from fedmarket.federated import client

            node = ray.get_runtime_context().get_node_id()
            return node, sorted({key[1] for key in client._PARTITIONS})

        return report

    futures = [actor.run.remote(probe_app, None, "probe", None) for actor in pool.pool]
    return [reply for _, reply, _ in ray.get(futures, timeout=60)]


@pytest.fixture
def private_ray_dir(monkeypatch):
    """Ray's temp directory for this test alone: ``Cluster`` writes its address to
    ``$RAY_TMPDIR/ray/ray_current_cluster``, which a plain ``ray.init()`` elsewhere on this
    shared machine would otherwise join. Short, for Ray's socket paths."""
    with tempfile.TemporaryDirectory(prefix="fmray", dir="/tmp") as where:
        monkeypatch.setenv("RAY_TMPDIR", where)
        yield where


@pytest.mark.usefixtures("private_ray_dir")
def test_clients_run_on_both_nodes_of_a_cluster_and_train_as_on_one(tiny_data, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    one_node = simulate(
        data=tiny_data,
        run_config=SETTINGS,
        out=tmp_path / "one-node",
        centralised=False,
        resources=ClientResources(num_cpus=1.0),
    )
    assert not ray.is_initialized()

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {NODES[0]: 1}, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1, resources={NODES[1]: 1})
        cluster.wait_for_nodes()
        resources = ClientResources(num_cpus=1.0, ray_address=cluster.address)
        with ray_session.ray_session():  # keeps the actors after the run, to ask them
            two_nodes = simulate(
                data=tiny_data,
                run_config=SETTINGS,
                out=tmp_path / "two-nodes",
                centralised=False,
                resources=resources,
            )
            named = {
                node["NodeID"]: name
                for node in ray.nodes()
                for name in NODES
                if node["Alive"] and name in node["Resources"]
            }
            reports = actor_reports(ray_session._runtime.pool)
        assert not ray.is_initialized()  # the driver left; the cluster is still up
        assert len(cluster.list_all_nodes()) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert sorted(named.values()) == sorted(NODES)
    assert sorted(named[node] for node, _ in reports) == sorted(NODES)  # one actor each
    assert all(partitions for _, partitions in reports)  # and each trained clients
    served = [p for _, partitions in reports for p in partitions]
    assert set(served) == {0, 1, 2}  # every retailer, somewhere
    assert one_node["summary"] and two_nodes["summary"]
    # FedAvg sums the replies in the order they arrive: equal up to float32 rounding
    assert train_losses(tmp_path / "two-nodes") == pytest.approx(
        train_losses(tmp_path / "one-node"), rel=1e-5
    )
