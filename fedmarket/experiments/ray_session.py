"""One Ray runtime and one pool of client actors for many simulations in one process.

A simulation on its own starts Ray, creates its client actors (each imports torch, Flower
and fedmarket when it serves its first message) and shuts all of it down at the end: 10-25 s
on a 2-core machine before the first round trains, paid again by every point of a trade-off
sweep and every pass of a user's loop over settings. Inside ``ray_session()`` the first run
starts Ray and its actors, the runs after it reuse both, and they stop when the outermost
block ends; a run that ends abnormally (an error, Ctrl-C) stops them at once, and the next
run starts afresh. A run on its own is a session of one. The start itself overlaps what it
can (``start_runtime_warm``): the actors are made as soon as Ray is up and import the
client's code while the driver imports its own.

Flower 1.41 has no option for this: its ``RayBackend.terminate`` ends the actors and calls
``ray.shutdown()`` after every run. For a run inside a session fedmarket puts
``KeptRayBackend`` in its place (Flower's ``start_vce`` looks the class up in its module when
a run starts), which takes its actor pool from the session and leaves it, and Ray, running
when the run ends. Every message carries its run's ClientApp, so a kept actor serves the next
run's settings; what an actor keeps is caches keyed by what they hold (partitions by path
and manifest, models by architecture). A run with other client resources (CPUs, GPUs, Ray
address; the actors' thread count comes with them) restarts the runtime. Flower's message
threads also poll their queues for 20 ms instead of 1 s inside a session (``PromptQueue``),
so a run ends without the second Flower otherwise waits after its last round, and its
0.1 s polls between the ServerApp and the clients wake on the message instead
(``flower_polls``).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fedmarket.experiments import flower_polls
from fedmarket.experiments.ray_runtime import ClientResources, start_ray, stop_ray

log = logging.getLogger("fedmarket")


@dataclass
class _Runtime:
    """The session's Ray runtime: the resources it was started for and Flower's actor pool
    (made when it starts, reused by every run after it)."""

    resources: ClientResources
    pool: Any = None
    pool_resources: dict[str, Any] | None = None


_lock = threading.Lock()
_depth = 0
_runtime: _Runtime | None = None


@contextmanager
def ray_session() -> Iterator[None]:
    """Every simulation in this block (this process) runs on one Ray runtime and one pool of
    client actors: started by the first, stopped when the outermost block ends. Nests."""
    global _depth
    with _lock:
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            last = _depth == 0
        if last:
            end_runtime()


def in_session() -> bool:
    return _depth > 0


def start_runtime(resources: ClientResources) -> None:
    """Ray for a run: the session's runtime when it runs for these resources, else a new
    one (``start_ray``), which the session keeps."""
    global _runtime
    import ray

    if _runtime is not None and _runtime.resources == resources and ray.is_initialized():
        return
    end_runtime()
    start_ray(resources)
    if in_session():
        _runtime = _Runtime(resources)


def end_runtime() -> None:
    """Stop the kept client actors and every Ray process this process started."""
    global _runtime
    runtime, _runtime = _runtime, None
    ray = sys.modules.get("ray")
    if ray is None:  # nothing started Ray in this process (a sweep of centralised points)
        return
    if runtime is not None and runtime.pool is not None and ray.is_initialized():
        runtime.pool.terminate_all_actors()
    stop_ray()


def start_runtime_warm(resources: ClientResources, *, meanwhile: Callable[[], None]) -> None:
    """Start the session's runtime with its client actors already importing what their
    first message needs (torch, Flower, fedmarket), while ``meanwhile`` (the driver's own
    imports) runs in a background thread; raises what either raised.

    Ray starts in this thread, not the background one: the processes it starts are bound
    to the life of the thread that started them (Linux's parent-death signal), and it sets
    its SIGTERM handler only from the main thread.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            meanwhile()
        except BaseException as exc:  # raised here, in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="fedmarket-imports", daemon=True)
    thread.start()
    try:
        start_runtime(resources)
        _warm_actors(resources)
    finally:
        thread.join()
    if errors:
        raise errors[0]


def _warm_actors(resources: ClientResources) -> None:
    """Flower's actor pool for ``resources``, made now, each actor importing what a client
    needs; the run's ``KeptRayBackend`` takes it."""
    runtime = _runtime
    if runtime is None or runtime.pool is not None:
        return
    from flwr.simulation.ray_transport.ray_actor import BasicActorPool, ClientAppActor

    client_resources = resources.backend_config()["client_resources"]
    pool = BasicActorPool(
        actor_type=ClientAppActor, client_resources=client_resources, actor_kwargs={}
    )
    pool.add_actors_to_pool(pool.actors_capacity)
    for actor in pool.pool:  # queued before any message; the reference is not needed
        actor.run.remote(_import_client, None, "warm-up", None)
    runtime.pool, runtime.pool_resources = pool, dict(client_resources)


def _import_client() -> Callable[..., None]:
    """Run by each new actor as its first task: the ClientApp's imports, and no app.

    Also torch._dynamo: torch's optimisers import it on their first ``step`` (to mark it
    "not compiled"; 800 modules with sympy, most of an actor's first round on a small
    machine, training nothing), so it loads here, before round 1, not inside its training.
    """
    import torch._dynamo  # noqa: F401

    import clients.app  # noqa: F401  (torch, Flower and the client's fedmarket)

    return _no_reply


def _no_reply(message: Any, context: Any) -> None:
    return None


# How long Flower's message threads wait on an empty queue before they look at the run's stop
# event again (Flower waits 1 s: ~0.9 s at the end of every run, a sweep point's shutdown).
QUEUE_POLL_S = 0.02


class PromptQueue(queue.Queue):
    """A ``queue.Queue`` whose timed ``get`` waits at most ``QUEUE_POLL_S``.

    Flower's simulation workers call ``get(timeout=1.0)`` in a loop that checks the stop
    event between calls and takes ``Empty`` as "nothing yet"; with the shorter wait they
    notice the run's end within ``QUEUE_POLL_S`` instead of a second. A message that arrives
    is taken as soon as it arrives, as before; an untimed ``get`` is unchanged.
    """

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if block and timeout is not None:
            timeout = min(timeout, QUEUE_POLL_S)
        return super().get(block, timeout)


@contextmanager
def flower_backend() -> Iterator[None]:
    """While a run inside a session goes, Flower's simulation takes ``KeptRayBackend``, and
    its message threads (``vce_api``'s queues) end promptly when the run does, and messages
    move between the ServerApp and the clients when they arrive (``flower_polls``)."""
    if _runtime is None:
        yield
        return
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.superlink.fleet.vce.backend import raybackend

    replaced = [
        (raybackend, "RayBackend", _kept_backend(raybackend.RayBackend)),
        (vce_api, "Queue", PromptQueue),  # run_api's two queues
        *flower_polls.patches(),  # the grid's and the instruction thread's 0.1 s polls
    ]
    originals = [(module, name, getattr(module, name)) for module, name, _ in replaced]
    for module, name, value in replaced:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in originals:
            setattr(module, name, value)


def _kept_backend(base: type) -> type:
    """Flower's ``RayBackend`` with the session's actor pool, kept when the run ends."""

    class KeptRayBackend(base):  # type: ignore[valid-type,misc]
        def build(self, app_fn: Any) -> None:
            runtime = _runtime
            if runtime is None:  # the session ended under the run: Flower's own way
                super().build(app_fn)
                return
            if runtime.pool is not None and runtime.pool_resources == self.client_resources:
                self.pool, self.app_fn = runtime.pool, SharedApp(app_fn)
                log.debug("reusing Ray and %d client actors", self.pool.num_actors)
                return
            if runtime.pool is not None:  # other per-actor resources: new actors
                runtime.pool.terminate_all_actors()
            super().build(app_fn)
            self.app_fn = SharedApp(app_fn)
            runtime.pool, runtime.pool_resources = self.pool, dict(self.client_resources)

        def terminate(self) -> None:
            log.debug("keeping Ray and its client actors for the next run of this session")

    return KeptRayBackend


# The run's ClientApp loader in this process (an actor): (the run's token, the loader).
_app_cache: tuple[str, Callable[[], Any]] | None = None


class SharedApp:
    """The run's ClientApp loader, pickled once per run instead of once per message.

    Flower's ``RayBackend`` passes its ``app_fn`` with every message, so Ray cloudpickles the
    ClientApp (its closures, the run config: ~100 KB, ~9 ms on a loaded 2-core machine) in
    the driver for every client of every round, and each actor unpickles it again. This
    stand-in holds the loader already pickled (once, when the run starts): a message carries
    those bytes as they are, and an actor unpickles them on its first message of the run and
    keeps the loader for the rest; each message still calls the loader, as Flower's actor does.
    """

    def __init__(self, app_fn: Callable[[], Any]) -> None:
        import uuid

        from ray import cloudpickle

        self.token = uuid.uuid4().hex
        self.payload = cloudpickle.dumps(app_fn)

    def __call__(self) -> Any:
        global _app_cache
        cached = _app_cache
        if cached is None or cached[0] != self.token:
            from ray import cloudpickle

            cached = _app_cache = (self.token, cloudpickle.loads(self.payload))
        return cached[1]()
