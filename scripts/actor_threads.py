"""torch's thread count inside a client actor, with Ray started as `fedmarket simulate` starts it.

Usage::

    .venv/bin/python scripts/actor_threads.py [CLIENT_CPUS]

Prints the actor's threads before fedmarket sets them (Ray's OMP_NUM_THREADS), the
environment it was given, and fedmarket's choice there (what the ClientApp applies).
"""

from __future__ import annotations

import os
import sys

import ray

from fedmarket.experiments.ray_runtime import ClientResources, start_ray, stop_ray


@ray.remote
class Probe:
    def threads(self) -> dict[str, object]:
        import torch

        before = torch.get_num_threads()
        from fedmarket.threads import apply_threads

        choice = apply_threads()
        return {
            "torch_before": before,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "FEDMARKET_THREADS": os.environ.get("FEDMARKET_THREADS"),
            "torch_after": torch.get_num_threads(),
            "choice": choice.describe(),
        }


def main() -> None:
    cpus = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    start_ray(ClientResources(num_cpus=cpus))
    try:
        print(
            f"--client-cpus {cpus:g}:",
            ray.get(Probe.options(num_cpus=cpus).remote().threads.remote()),
        )
    finally:
        stop_ray()


if __name__ == "__main__":
    main()
