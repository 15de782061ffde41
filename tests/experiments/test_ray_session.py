"""One Ray runtime and its client actors for many simulations in one process."""

import csv

import pytest

from fedmarket.experiments import flower_polls, ray_session
from fedmarket.experiments.ray_session import in_session
from fedmarket.experiments.ray_session import ray_session as session
from fedmarket.experiments.simulate import ClientResources, simulate
from fedmarket.experiments.tradeoff import SweepConfig, run_sweep


def test_sessions_nest_and_a_sweep_runs_its_points_in_one(tmp_path):
    seen = []

    def runner(point, run_dir):
        seen.append(in_session())
        return {}

    assert not in_session()
    with session():
        with session():
            assert in_session()
        assert in_session()
    assert not in_session()
    run_sweep(
        SweepConfig(out=tmp_path, settings=("centralised-dp",), epsilons=(8.0,)), runner=runner
    )
    assert seen and all(seen) and not in_session()


def train_losses(run_dir) -> list[float]:
    with open(run_dir / "rounds.csv") as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_two_simulations_in_a_session_start_ray_and_the_actors_once(
    tiny_data, tmp_path, monkeypatch
):
    """The second run reuses the first one's Ray and actors, and trains exactly as a run on
    a fresh runtime does (same seed, same losses); the session's end stops Ray."""
    import ray
    from flwr.simulation.ray_transport.ray_actor import BasicActorPool

    inits, pools = [], []
    real_init, real_pool = ray.init, BasicActorPool.__init__

    def counting_init(*args, **kwargs):
        inits.append(kwargs)
        return real_init(*args, **kwargs)

    def counting_pool(self, *args, **kwargs):
        pools.append(self)
        real_pool(self, *args, **kwargs)

    monkeypatch.setattr(ray, "init", counting_init)
    monkeypatch.setattr(BasicActorPool, "__init__", counting_pool)
    settings = "dp='none' num-server-rounds=2 seed=3"

    def run(name):
        simulate(
            data=tiny_data,
            run_config=settings,
            out=tmp_path / name,
            centralised=False,
            resources=ClientResources(num_cpus=1.0),
        )
        return train_losses(tmp_path / name)

    fresh = run("fresh")  # on its own: Ray started and shut down
    assert len(inits) == 1 and not ray.is_initialized()
    with session():
        first = run("first")
        assert ray.is_initialized()  # kept between the runs
        second = run("second")
        assert ray.is_initialized()
    assert not ray.is_initialized() and ray_session._runtime is None
    assert len(inits) == 2 and len(pools) == 2  # one each: the lone run and the session
    # FedAvg sums the replies in the order they arrive: equal up to float32 rounding
    assert first == pytest.approx(fresh, rel=1e-5) and second == pytest.approx(fresh, rel=1e-5)


def test_flowers_message_queues_poll_briefly_inside_a_session(monkeypatch):
    """Flower's threads wait ``get(timeout=1.0)`` on empty queues before they see that a run
    has ended; inside a session they wait ``QUEUE_POLL_S``, and Flower's own class is back
    after the run."""
    import queue
    import time

    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.superlink.fleet.vce.backend import raybackend

    prompt = ray_session.PromptQueue()
    started = time.perf_counter()
    with pytest.raises(queue.Empty):
        prompt.get(timeout=1.0)
    assert time.perf_counter() - started < 0.5  # 0.02 s asked; a busy machine is slow to wake
    prompt.put("reply")
    assert prompt.get(timeout=1.0) == "reply" and prompt.empty()

    original_queue, original_backend = vce_api.Queue, raybackend.RayBackend
    flowers = {(m.__name__, name): getattr(m, name) for m, name, _ in flower_polls.patches()}
    with ray_session.flower_backend():  # no session: Flower's own classes
        assert vce_api.Queue is original_queue
    monkeypatch.setattr(ray_session, "_runtime", ray_session._Runtime(ClientResources()))
    with ray_session.flower_backend():
        assert vce_api.Queue is ray_session.PromptQueue
        assert raybackend.RayBackend.__name__ == "KeptRayBackend"
        for module, name, ours in flower_polls.patches():  # the 0.1 s polls: fedmarket's
            assert getattr(module, name) is ours is not flowers[(module.__name__, name)]
    assert vce_api.Queue is original_queue and raybackend.RayBackend is original_backend
    for module, name, _ in flower_polls.patches():  # Flower's own again after the run
        assert getattr(module, name) is flowers[(module.__name__, name)]


def test_the_client_app_is_pickled_once_per_run_and_unpickled_once_per_actor(monkeypatch):
    """Flower sends its ClientApp loader with every message (cloudpickled per client per
    round); ``SharedApp`` pickles it once per run and an actor unpickles it once."""
    import pickle

    monkeypatch.setattr(ray_session, "_app_cache", None)
    shared = ray_session.SharedApp(_CountedLoader())
    assert _CountedLoader.pickled == 1
    sent = [pickle.dumps(shared) for _ in range(3)]  # three messages
    assert _CountedLoader.pickled == 1 and sent[0] == sent[2]
    first, second = pickle.loads(sent[0]), pickle.loads(sent[1])
    assert first() == "the ClientApp" and second() == "the ClientApp"
    assert _CountedLoader.unpickled == 1 and _CountedLoader.calls == 2  # loaded per message
    other_run = pickle.loads(pickle.dumps(ray_session.SharedApp(_CountedLoader())))
    assert other_run() == "the ClientApp" and _CountedLoader.unpickled == 2


class _CountedLoader:
    """A ClientApp loader that counts how often it is pickled, unpickled and called."""

    pickled = unpickled = calls = 0

    def __reduce__(self):
        _CountedLoader.pickled += 1
        return (_CountedLoader._restore, ())

    @staticmethod
    def _restore() -> "_CountedLoader":
        _CountedLoader.unpickled += 1
        return _CountedLoader()

    def __call__(self) -> str:
        _CountedLoader.calls += 1
        return "the ClientApp"
