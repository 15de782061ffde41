"""Run settings of a federated simulation: one frozen dataclass, validated once.

The keys are the Flower App config's kebab-case keys (``[tool.flwr.app.config]`` in
pyproject.toml, overridden with ``--run-config``). ``DEFAULTS`` here is the one source of
truth; a test checks that pyproject.toml carries the same defaults, because ``flwr run``
reads them from there and ``fedmarket simulate`` (which may run from an installed wheel)
reads them from here.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from fedmarket.aggregation import check_rule_name
from fedmarket.checks import integer, is_int, number
from fedmarket.errors import ConfigError
from fedmarket.privacy.config import ACCOUNTANTS, PrivacySettings, default_delta

if TYPE_CHECKING:
    from fedmarket.training import TrainConfig

DP_MODES = ("none", "client", "central")

DEFAULTS: dict[str, Any] = {
    "num-server-rounds": 3,
    "model": "cnn-lstm",
    "task": "purchase",
    "strategy": "fedavg",
    "fraction-train": 1.0,
    "fraction-evaluate": 1.0,
    "evaluate-every": 1,
    "min-train-replies": 1,
    "local-epochs": 1,
    "batch-size": 64,
    "learning-rate": 0.003,
    "dp": "client",
    "target-epsilon": 8.0,
    "noise-multiplier": 0.0,
    "max-grad-norm": 1.0,
    "delta": 0.0,
    "accountant": "rdp",
    "central-noise-multiplier": 0.5,
    "central-clipping-norm": 1.0,
    "proximal-mu": 0.01,
    "server-learning-rate": 1.0,
    "server-momentum": 0.9,
    "trim-beta": 0.2,
    "num-malicious-nodes": 0,
    "round-timeout": 600.0,
    "data-dir": "",
    "out-dir": "",
    "state-dir": "",
    "seed": 0,
}


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one federated run. See README "Run settings" for each key.

    ``target-epsilon`` > 0 calibrates each client's noise so its whole run spends at most
    that epsilon; ``target-epsilon = 0`` uses the fixed ``noise-multiplier`` instead.
    ``delta = 0`` means 1 / (10 × total training customers), one delta for every client
    and for the centralised reference. Empty paths mean "not set".
    """

    num_server_rounds: int
    model: str
    task: str
    strategy: str
    fraction_train: float
    fraction_evaluate: float
    evaluate_every: int
    min_train_replies: int
    local_epochs: int
    batch_size: int
    learning_rate: float
    dp: str
    target_epsilon: float
    noise_multiplier: float
    max_grad_norm: float
    delta: float
    accountant: str
    central_noise_multiplier: float
    central_clipping_norm: float
    proximal_mu: float
    server_learning_rate: float
    server_momentum: float
    trim_beta: float
    num_malicious_nodes: int
    round_timeout: float
    data_dir: str
    out_dir: str
    state_dir: str
    seed: int

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "run config") -> RunConfig:
        """Defaults overlaid with ``values`` (kebab-case keys); unknown keys are errors."""
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known keys: "
                f"{', '.join(sorted(DEFAULTS))}"
            )
        merged = {**DEFAULTS, **values}
        kwargs = {k.replace("-", "_"): _coerce(k, v, DEFAULTS[k], where) for k, v in merged.items()}
        return cls(**kwargs)

    def __post_init__(self) -> None:
        from fedmarket.models import available_models
        from fedmarket.tasks import get_task

        for key, low in (
            ("num-server-rounds", 1),
            ("local-epochs", 1),
            ("batch-size", 1),
            ("evaluate-every", 1),
            ("min-train-replies", 1),
            ("num-malicious-nodes", 0),
            ("seed", 0),
        ):
            integer(f"run config: {key}", getattr(self, key.replace("-", "_")), at_least=low)
        number("run config: fraction-train", self.fraction_train, above=0.0, at_most=1.0)
        # 0: no client-side evaluation
        number("run config: fraction-evaluate", self.fraction_evaluate, at_least=0.0, at_most=1.0)
        for key in (
            "learning-rate",
            "max-grad-norm",
            "central-clipping-norm",
            "round-timeout",
            "server-learning-rate",
        ):
            number(f"run config: {key}", getattr(self, key.replace("-", "_")), above=0.0)
        for key in (
            "target-epsilon",
            "noise-multiplier",
            "central-noise-multiplier",
            "proximal-mu",
            "server-momentum",
        ):
            number(f"run config: {key}", getattr(self, key.replace("-", "_")), at_least=0.0)
        number("run config: delta", self.delta, at_least=0.0, below=1.0)
        number("run config: trim-beta", self.trim_beta, at_least=0.0, below=0.5)
        if self.model not in available_models():
            raise ConfigError(
                f"run config: model {self.model!r} is unknown; known: "
                f"{', '.join(available_models())}"
            )
        try:
            get_task(self.task)
        except ConfigError as exc:
            raise ConfigError(f"run config: task: {exc}") from None
        if self.dp not in DP_MODES:
            raise ConfigError(
                f"run config: dp {self.dp!r} is unknown; use one of {', '.join(DP_MODES)}"
            )
        if self.dp == "client" and self.target_epsilon == 0 and self.noise_multiplier == 0:
            raise ConfigError(
                "run config: dp='client' needs target-epsilon > 0 or noise-multiplier > 0 "
                "(or set dp='none')"
            )
        if self.accountant not in ACCOUNTANTS:
            raise ConfigError(
                f"run config: accountant {self.accountant!r} is unknown; use "
                f"{' or '.join(ACCOUNTANTS)}"
            )
        check_rule_name(self.strategy)

    def to_flower(self) -> dict[str, Any]:
        """The kebab-case mapping Flower carries in ``context.run_config``."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with kebab-case or snake_case keys changed, re-validated."""
        current = self.to_flower()
        current.update({k.replace("_", "-"): v for k, v in changes.items()})
        return RunConfig.from_mapping(current)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    # --- settings derived for the rest of fedmarket (one home for each conversion) --------
    def client_delta(self, n_train_total: int) -> float:
        """Customer-level delta: ``delta``, or ``1 / (10 n)`` over every retailer's training
        customers, so all clients and the centralised reference share one delta."""
        return self.delta if self.delta > 0 else default_delta(n_train_total)

    def privacy(self, n_train_total: int) -> PrivacySettings | None:
        """Client-level DP-SGD settings under ``dp = "client"`` (None otherwise), for every
        client and for the matched centralised reference."""
        if self.dp != "client":
            return None
        target = self.target_epsilon > 0
        return PrivacySettings(
            target_epsilon=self.target_epsilon if target else None,
            noise_multiplier=None if target else self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            delta=self.client_delta(n_train_total),
            accountant=self.accountant,
        )

    @property
    def total_epochs(self) -> int:
        """Passes over a retailer's customers in the whole run: rounds x local epochs."""
        return self.num_server_rounds * self.local_epochs

    def train_config(self, *, epochs: int | None = None, seed: int | None = None) -> TrainConfig:
        """One training job with the run's batch size and learning rate, no validation split:
        ``local-epochs`` (a client's round) unless ``epochs`` is given (the centralised
        reference trains ``total_epochs``), seeded with ``seed`` or the run's seed."""
        from fedmarket.training import TrainConfig

        return TrainConfig(
            epochs=self.local_epochs if epochs is None else epochs,
            batch_size=self.batch_size,
            lr=self.learning_rate,
            val_fraction=0.0,
            seed=self.seed if seed is None else seed,
        )


def format_overrides(values: Mapping[str, Any]) -> str:
    """``{"dp": "none", "seed": 1}`` -> ``"dp='none' seed=1"`` (TOML values, as flwr reads);
    the inverse of ``parse_overrides``."""
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            if "'" in value or " " in value:
                raise ConfigError(f"run config value {key}={value!r} cannot hold quotes or spaces")
            text = f"'{value}'"
        else:
            text = repr(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def parse_overrides(text: str, *, where: str = "--run-config") -> dict[str, Any]:
    """Parse ``"k=v k2=v2"`` as flwr does (values are TOML), also taking bare words as strings."""
    values: dict[str, Any] = {}
    for item in text.split():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{where}: {item!r} is not key=value")
        try:
            values[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key] = raw
    return values


def _coerce(key: str, value: Any, default: Any, where: str) -> Any:
    kind = type(default)
    if kind is float and is_int(value):
        value = float(value)
    if type(value) is not kind:
        raise ConfigError(
            f"{where}: {key} must be {kind.__name__}, got {value!r} ({type(value).__name__})"
        )
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}: {key} must be finite, got {value!r}")
    return value
