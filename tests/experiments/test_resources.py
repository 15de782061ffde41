"""Ray settings for the client actors (no simulation is started here)."""

from fedmarket.experiments.ray_runtime import ClientResources, ray_environment


def test_clients_without_a_gpu_share_cannot_see_the_gpu(monkeypatch):
    monkeypatch.delenv("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", raising=False)
    ray_environment()
    import os

    assert os.environ["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] == "1"  # Ray hides it at 0 GPUs
    monkeypatch.setenv("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray_environment()
    assert os.environ["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] == "0"  # the user's choice wins
    shared = ClientResources(num_cpus=1.0, num_gpus=0.25).backend_config()
    assert shared["client_resources"] == {
        "num_cpus": 1.0,
        "num_gpus": 0.25,
        "max_restarts": -1,  # a dead client actor comes back ...
        "max_task_retries": 0,  # ... and the message it lost fails its round, counted
    }


def test_client_actors_get_threads_from_their_cpus(monkeypatch):
    """--client-cpus 2 gives each actor two torch threads, a fraction one; start_ray hands
    the number to every actor ($FEDMARKET_THREADS, read by the ClientApp): through the
    environment Ray's processes start in when it starts here (its workers inherit it, so
    the actors run in the workers Ray starts with the node), and through the job's
    runtime_env when it joins a running cluster."""
    import os

    import ray

    from fedmarket.experiments import ray_runtime

    assert [ClientResources(num_cpus=c).threads for c in (0.25, 1.0, 2.0, 2.5)] == [1, 1, 2, 2]
    started: dict = {}

    def init(**kwargs):
        started.update(kwargs, seen=os.environ.get("FEDMARKET_THREADS"))

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("FEDMARKET_THREADS", "7")  # the driver's own, given back after
    for local in (ClientResources(num_cpus=2.0), ClientResources(ray_address="local")):
        started.clear()
        ray_runtime.start_ray(local)
        assert "runtime_env" not in started
        assert started["seen"] == str(local.threads)
        assert os.environ["FEDMARKET_THREADS"] == "7"
    monkeypatch.delenv("FEDMARKET_THREADS")
    ray_runtime.start_ray(ClientResources(num_cpus=1.0))
    assert "FEDMARKET_THREADS" not in os.environ  # not left behind in the driver either
    for joined, env in (
        (ClientResources(num_cpus=2.0, ray_address="auto"), {}),
        (ClientResources(num_cpus=2.0), {"RAY_ADDRESS": "10.0.0.5:6379"}),
    ):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        started.clear()
        ray_runtime.start_ray(joined)
        assert started["runtime_env"]["env_vars"]["FEDMARKET_THREADS"] == "2"
        assert started["seen"] is None


def test_a_ray_address_is_checked_before_ray_starts():
    import pytest

    from fedmarket.errors import ConfigError

    for good in ("auto", "local", "10.0.0.5:6379", "head.example.org:6379", "ray://head:10001"):
        assert ClientResources(ray_address=good).backend_config()["init_args"]["address"] == good
    assert "address" not in ClientResources().backend_config()["init_args"]
    for bad in ("", "10.0.0.5", "head:port", "head:0", "head:70000", "http://head:6379", " auto"):
        with pytest.raises(ConfigError, match="is not a Ray address"):
            ClientResources(ray_address=bad)
