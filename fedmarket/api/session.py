"""Many runs in one Python process on one Ray runtime: a loop over settings in a notebook."""

from __future__ import annotations

from contextlib import AbstractContextManager


def ray_session() -> AbstractContextManager[None]:
    """A block whose ``simulate`` calls share one Ray runtime and its client actors.

    Each run on its own starts Ray and its actors and shuts them down (10-25 s on a 2-core
    machine before its first round); in the block the first run starts them, the others
    reuse them, and they stop when the block ends (or at once if a run fails)::

        with fedmarket.ray_session():
            runs = [fedmarket.simulate(data=data, run_config={"seed": s}) for s in range(5)]

    ``tradeoff`` runs its points in one already. Runs with other ``client_cpus`` /
    ``client_gpus`` / ``ray_address`` than the one before start a new runtime.
    """
    from fedmarket.experiments.ray_session import ray_session as session

    return session()
