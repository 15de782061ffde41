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
