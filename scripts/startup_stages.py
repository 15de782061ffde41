"""Where a simulation's start-up goes, stage by stage in one process (a probe, not a test).

Usage::

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python scripts/startup_stages.py

Prints the seconds of each stage in the order `fedmarket simulate` meets them: the CLI, torch,
the rest of the experiment's imports, Flower, Ray, the apps, ``ray.init`` as fedmarket starts it,
and two one-CPU actors importing what a client imports for its first message. Point PYTHONPATH
at another source tree to time another version.
"""

import importlib
import time

t0 = time.perf_counter()


def lap(name: str) -> None:
    global t0
    now = time.perf_counter()
    print(f"{name:40s} {now - t0:6.2f}", flush=True)
    t0 = now


import fedmarket.cli  # noqa: E402

lap("fedmarket.cli")
import torch  # noqa: E402, F401

lap("torch")
import fedmarket.experiments.simulate  # noqa: E402, F401

lap("fedmarket.experiments.simulate (rest)")
import flwr.simulation  # noqa: E402, F401

lap("flwr.simulation")
import ray  # noqa: E402

lap("ray")
import clients.app  # noqa: E402, F401
import server.app  # noqa: E402, F401

lap("clients.app + server.app")
from fedmarket.experiments.ray_runtime import (  # noqa: E402
    ClientResources,
    ray_environment,
    start_ray,
    stop_ray,
)

ray_environment()
start_ray(ClientResources())
lap("ray.init")


@ray.remote(num_cpus=1)
class Client:
    def ping(self) -> int:
        importlib.import_module("clients.app")  # what the first message's closure needs
        return 1


actors = [Client.remote() for _ in range(2)]
ray.get([a.ping.remote() for a in actors])
lap("2 actors + their imports")
stop_ray()
