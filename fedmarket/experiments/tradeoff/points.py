"""What a sweep is: its settings, epsilons and seeds, and the points they make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedmarket.checks import integer, is_int, number
from fedmarket.config import parse_overrides
from fedmarket.errors import ConfigError
from fedmarket.threads import choose_threads

SETTINGS: tuple[str, ...] = ("federated-client-dp", "federated-central-dp", "centralised-dp")
DEFAULT_EPSILONS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
QUICK_EPSILONS: tuple[float, ...] = (1.0, 8.0)
QUICK_SYNTH = {"n_retailers": 3, "n_customers": 800, "days": 90, "seed": 0}
# Set by the sweep for each point; anything else may be passed with --run-config.
RESERVED_KEYS = (
    "dp",
    "target-epsilon",
    "noise-multiplier",
    "central-noise-multiplier",
    "seed",
    "num-server-rounds",
    "data-dir",
    "out-dir",
    "state-dir",
)
# F1 at the top-10% cut, the decision a campaign takes: at 0.5 a rare purchase reads 0.
# The 95% intervals are those of the point's one test set (shown when a row has one seed).
TEST_KEYS = (
    "roc_auc",
    "pr_auc",
    "f1_at_10",
    "lift_at_10",
    "roc_auc_low",
    "roc_auc_high",
    "pr_auc_low",
    "pr_auc_high",
)

PointRunner = Callable[["Point", Path], dict[str, Any]]


@dataclass(frozen=True)
class SweepConfig:
    """One sweep. ``data`` None: the default retailers (or, with ``quick``, a small
    synthetic set made once under ``out/data``). ``run_config`` overrides apply to every
    point (e.g. ``"model='lstm' local-epochs=2"``). ``key_file`` (else
    $FEDMARKET_ENCRYPTION_KEY) opens encrypted data; it is not part of what a resumed
    sweep must agree on, and no record names it."""

    out: Path
    data: Path | None = None
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    settings: tuple[str, ...] = SETTINGS
    rounds: int = 3
    run_config: str = ""
    audit: bool = True
    quick: bool = False
    key_file: Path | None = None
    threads: int | None = None  # torch's, in the driver (fedmarket.threads); not agreed on

    def __post_init__(self) -> None:
        choose_threads(self.threads)  # a bad --threads or $FEDMARKET_THREADS: an error now
        for eps in self.epsilons:
            number(
                "tradeoff: every epsilon",
                eps,
                above=0.0,
                must="a positive finite number (no DP is always included)",
            )
        if len(set(self.epsilons)) != len(self.epsilons):
            raise ConfigError(f"tradeoff: epsilons repeat: {self.epsilons}")
        unknown = [s for s in self.settings if s not in SETTINGS]
        if unknown or not self.settings:
            raise ConfigError(
                f"tradeoff: unknown or no settings {unknown}; use some of {', '.join(SETTINGS)}"
            )
        if (
            not self.seeds
            or any(not is_int(s) or s < 0 for s in self.seeds)
            or len(set(self.seeds)) != len(self.seeds)
        ):
            raise ConfigError(f"tradeoff: seeds must be distinct integers >= 0, got {self.seeds}")
        integer("tradeoff: rounds", self.rounds, at_least=1)
        reserved = sorted(set(parse_overrides(self.run_config)) & set(RESERVED_KEYS))
        if reserved:
            raise ConfigError(
                f"tradeoff --run-config: {', '.join(reserved)} are set by the sweep "
                "for each point; use --epsilons, --seeds, --rounds, --data"
            )

    @classmethod
    def quick_mode(cls, out: Path, **changes: Any) -> SweepConfig:
        """A smoke run: epsilon 1 and 8 plus no DP, one seed, two rounds, small data."""
        values = {"epsilons": QUICK_EPSILONS, "seeds": (0,), "rounds": 2, "quick": True}
        return cls(out=out, **{**values, **changes})

    def fixed(self) -> dict[str, Any]:
        """What every point shares; a resumed sweep must agree on it."""
        data = (
            str(self.data.resolve())
            if self.data is not None
            else ("quick synthetic" if self.quick else "default retailers")
        )
        return {"data": data, "rounds": self.rounds, "run_config": self.run_config}


@dataclass(frozen=True)
class Point:
    """One (setting, target epsilon, seed); ``epsilon`` None is no DP."""

    setting: str
    epsilon: float | None
    seed: int

    @property
    def family(self) -> str:
        return "federated" if self.setting.startswith("federated") else "centralised"

    @property
    def key(self) -> str:
        """The run's name; without DP both federated settings share one run."""
        if self.epsilon is None:
            return f"{self.family}-nodp-seed{self.seed}"
        return f"{self.setting}-eps{self.epsilon:g}-seed{self.seed}"


def sweep_points(cfg: SweepConfig) -> list[Point]:
    """Every row of the result, seed by seed (so an early stop still covers each setting)."""
    levels: list[float | None] = [*cfg.epsilons, None]
    return [Point(s, e, seed) for seed in cfg.seeds for s in cfg.settings for e in levels]


def sweep_runs(cfg: SweepConfig) -> list[Point]:
    """The points that are trained: one per key (no DP is shared by the federated settings)."""
    runs: dict[str, Point] = {}
    for point in sweep_points(cfg):
        runs.setdefault(point.key, point)
    return list(runs.values())
