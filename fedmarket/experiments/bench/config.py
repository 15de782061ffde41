"""What `fedmarket bench` measures: one frozen, validated configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from fedmarket.checks import integer
from fedmarket.errors import ConfigError
from fedmarket.models import available_models
from fedmarket.names import did_you_mean
from fedmarket.threads import choose_threads

# What `--skip` names: the floor against the federated run, DP-SGD throughput, and one stage
# per other goal of issue #20 (`goal_stages`).
STAGES = (
    "federated",
    "throughput",
    "startup",
    "sweep",
    "contention",
    "prepare",
    "overhead",
    "quickstart",
    "pfl",
)
GOAL_ONLY = STAGES[2:]  # the scale point measures what scale changes, not these


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run. The federated run and the floor do the same work: ``rounds``
    passes over ``clients x customers`` training customers in batches of ``batch_size``.

    ``clients_per_round`` None trains every client each round (then a round is one epoch of
    the floor); fewer makes it the scale point (1,000 retailers, 10 per round).
    ``client_gpus`` None means a quarter of a GPU per client when there is one, else 0.
    """

    out: Path
    model: str = "cnn-lstm"
    clients: int = 8
    customers: int = 8192
    rounds: int = 3
    clients_per_round: int | None = None
    batch_size: int = 256
    seq_len: int = 28
    n_features: int = 11
    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    throughput_steps: int = 60
    client_cpus: float = 1.0
    client_gpus: float | None = None
    device: str = "auto"
    dp: bool = True
    seed: int = 0
    quick: bool = False
    threads: int | None = None  # torch threads of the floor (and the driver): fedmarket.threads
    skip: tuple[str, ...] = ()  # stages not to run (STAGES)

    def __post_init__(self) -> None:
        choose_threads(self.threads)  # a bad --threads or $FEDMARKET_THREADS: an error now
        unknown = [name for name in self.skip if name not in STAGES]
        if unknown:
            raise ConfigError(
                f"bench --skip: unknown stage {unknown[0]!r}; "
                f"{did_you_mean(unknown[0], STAGES)}the stages are {', '.join(STAGES)}"
            )
        if self.model not in available_models():
            raise ConfigError(
                f"bench --model: unknown model {self.model!r}; "
                f"{did_you_mean(self.model, available_models())}"
                f"use one of {', '.join(available_models())}"
            )
        for name, low in (
            ("clients", 1),
            ("customers", 2),
            ("rounds", 2),  # the steady state is rounds after the first
            ("batch_size", 1),
            ("seq_len", 1),
            ("n_features", 2),
            ("throughput_steps", 2),
            ("seed", 0),
        ):
            integer(f"bench --{name.replace('_', '-')}", getattr(self, name), at_least=low)
        per_round = self.clients_per_round
        if per_round is not None and not (
            isinstance(per_round, int) and 1 <= per_round <= self.clients
        ):
            raise ConfigError(
                f"bench --clients-per-round: expected 1..{self.clients} (the clients), "
                f"got {per_round!r}"
            )
        if not self.noise_multiplier > 0 or not self.max_grad_norm > 0:
            raise ConfigError("bench: noise multiplier and clipping norm must be > 0")
        if self.client_cpus <= 0 or (self.client_gpus is not None and self.client_gpus < 0):
            raise ConfigError("bench: --client-cpus must be > 0 and --client-gpus >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"bench --device: auto, cpu or cuda, got {self.device!r}")
        if self.device == "cpu" and self.client_gpus:
            raise ConfigError(
                "bench: --device cpu with --client-gpus > 0; the floor and the "
                "clients must train on the same device"
            )
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("bench --device cuda: no CUDA device is available")

    @classmethod
    def quick_mode(cls, out: Path, **changes: Any) -> BenchConfig:
        """A smoke run in about a minute on 2 cores: 4 clients x 1,024 customers."""
        values = {"clients": 4, "customers": 1024, "rounds": 3, "throughput_steps": 10}
        return cls(out=out, quick=True, **{**values, **changes})

    @classmethod
    def scale_point(cls, out: Path, **changes: Any) -> BenchConfig:
        """The issue's scale point: 1,000 retailers (10 per round), 1,000,000 customers."""
        values = {"clients": 1000, "customers": 1000, "clients_per_round": 10, "rounds": 3}
        changes["skip"] = tuple(dict.fromkeys([*GOAL_ONLY, *changes.get("skip", ())]))
        return cls(out=out, **{**values, **changes})

    @property
    def torch_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    @property
    def gpus_per_client(self) -> float:
        if self.client_gpus is not None:
            return self.client_gpus
        return 0.25 if self.torch_device == "cuda" else 0.0

    def runs(self, stage: str) -> bool:
        return stage not in self.skip

    @property
    def per_round(self) -> int:
        return self.clients_per_round or self.clients

    def fraction_train(self) -> float:
        return self.per_round / self.clients

    def with_(self, **changes: Any) -> BenchConfig:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["out"] = str(self.out)
        out["skip"] = list(self.skip)
        out["resolved_device"] = self.torch_device
        out["resolved_client_gpus"] = self.gpus_per_client
        return out
