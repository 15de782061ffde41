"""Run settings of a federated simulation: one frozen dataclass, validated once.

The keys are the Flower App config's kebab-case keys (``[tool.flwr.app.config]`` in
pyproject.toml, overridden with ``--run-config``). ``DEFAULTS`` here is the one source of
truth; a test checks that pyproject.toml carries the same defaults, because ``flwr run``
reads them from there and ``fedmarket simulate`` (which may run from an installed wheel)
reads them from here.

This module imports no torch (the privacy settings and the training config it derives are
imported when asked for), so the CLI reads and checks a run config before it loads the
experiments: a bad setting is an error in well under a second.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from fedmarket.aggregation import RULE_NAMES, check_rule_name
from fedmarket.checks import integer, is_int, number
from fedmarket.errors import ConfigError
from fedmarket.names import (
    ACCOUNTANTS,
    COUNT_LOSSES,
    MODELS,
    PRODUCTS_TASK,
    RANKING_MODEL,
    RANKING_TASKS,
    TASKS,
    did_you_mean,
)

if TYPE_CHECKING:
    from fedmarket.privacy.config import PrivacySettings
    from fedmarket.training import TrainConfig

DP_MODES = ("none", "client", "central")
# Personalised models (fedmarket.federated.personal): none, fine-tuning of the final global
# model, FedPer's private head, Ditto's proximally regularised personal model.
PERSONALISATIONS = ("none", "finetune", "fedper", "ditto")

DEFAULTS: dict[str, Any] = {
    "num-server-rounds": 3,
    "model": "cnn-lstm",
    "task": "purchase",
    "count-loss": "poisson",
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
    "local-only-models": True,
    "personalisation": "none",
    "personal-epochs": 1,
    "ditto-lambda": 0.1,
    "data-dir": "",
    "out-dir": "",
    "state-dir": "",
    "seed": 0,
}

# One line per setting for `--help` (README "Run settings" has the longer table); a test
# keeps the keys equal to DEFAULTS.
SETTINGS_HELP: dict[str, str] = {
    "num-server-rounds": "federated rounds",
    "model": ", ".join(MODELS),
    "task": " or ".join(TASKS),
    "count-loss": f"{' or '.join(COUNT_LOSSES)}: the loss of task purchase-count",
    "strategy": ", ".join(RULE_NAMES),
    "fraction-train": "share of clients sampled to train each round",
    "fraction-evaluate": "share of clients sampled to evaluate (0: none)",
    "evaluate-every": "evaluate the global model every k rounds (and after the last)",
    "min-train-replies": "fewer successful replies and the round is not aggregated",
    "local-epochs": "epochs of local training per round",
    "batch-size": "batch size (expected batch size under DP-SGD)",
    "learning-rate": "Adam learning rate",
    "dp": "'client' (DP-SGD at each retailer), 'central' (Flower's server-side DP) or 'none'",
    "target-epsilon": "epsilon budget over the whole run (0: use noise-multiplier)",
    "noise-multiplier": "fixed DP-SGD noise multiplier when target-epsilon is 0",
    "max-grad-norm": "per-customer gradient clipping norm",
    "delta": "delta (0: 1/(10 n), n the training customers)",
    "accountant": " or ".join(ACCOUNTANTS),
    "central-noise-multiplier": "noise of server-side DP (dp='central')",
    "central-clipping-norm": "clipping norm of server-side DP (dp='central')",
    "proximal-mu": "FedProx proximal term",
    "server-learning-rate": "server learning rate (FedAvgM, FedAdam, FedYogi, FedAdagrad)",
    "server-momentum": "server momentum (FedAvgM)",
    "trim-beta": "share trimmed at each end (FedTrimmedAvg)",
    "num-malicious-nodes": "clients assumed malicious (Krum, MultiKrum, Bulyan)",
    "round-timeout": "seconds to wait for the replies of a round",
    "local-only-models": "also train each retailer's model on its own data alone (simulate)",
    "personalisation": ", ".join(PERSONALISATIONS) + ": each retailer's personalised model",
    "personal-epochs": "epochs of personal training (finetune: once; ditto: every round)",
    "ditto-lambda": "Ditto's pull of the personal model toward the global one",
    "data-dir": "prepared data ('': the default retailers)",
    "out-dir": "run directory",
    "state-dir": "where clients keep their privacy journal",
    "seed": "seed of the data order, the models and Flower's sampling",
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
    count_loss: str
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
    local_only_models: bool
    personalisation: str
    personal_epochs: int
    ditto_lambda: float
    data_dir: str
    out_dir: str
    state_dir: str
    seed: int

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "run config") -> RunConfig:
        """Defaults overlaid with ``values`` (kebab-case keys); unknown keys are errors.

        An unknown key names the key it most likely meant, since a misspelt setting that
        was silently dropped would run the default instead of what was asked for.
        """
        unknown = [k for k in values if k not in DEFAULTS]
        if unknown:
            known = ", ".join(sorted(DEFAULTS))
            if len(unknown) == 1:
                (key,) = unknown
                hint = did_you_mean(key, DEFAULTS)
                raise ConfigError(f"{where}: unknown key {key!r}; {hint}known keys: {known}")
            hints = {k: did_you_mean(k, DEFAULTS).strip() for k in unknown}
            named = ", ".join(f"{k!r} ({hints[k]})" if hints[k] else repr(k) for k in unknown)
            raise ConfigError(f"{where}: unknown keys {named}; known keys: {known}")
        merged = {**DEFAULTS, **values}
        kwargs = {k.replace("-", "_"): _coerce(k, v, DEFAULTS[k], where) for k, v in merged.items()}
        try:
            return cls(**kwargs)
        except ConfigError as exc:  # the checks say "run config"; name where it came from
            raise ConfigError(re.sub(r"^run config\b", lambda _: where, str(exc))) from None

    def __post_init__(self) -> None:
        for key, low in (
            ("num-server-rounds", 1),
            ("local-epochs", 1),
            ("personal-epochs", 1),
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
            "ditto-lambda",
        ):
            number(f"run config: {key}", getattr(self, key.replace("-", "_")), at_least=0.0)
        number("run config: delta", self.delta, at_least=0.0, below=1.0)
        number("run config: trim-beta", self.trim_beta, at_least=0.0, below=0.5)
        for key, value, known in (
            ("model", self.model, MODELS),
            ("task", self.task, TASKS),
            ("count-loss", self.count_loss, COUNT_LOSSES),
            ("dp", self.dp, DP_MODES),
            ("accountant", self.accountant, ACCOUNTANTS),
            ("personalisation", self.personalisation, PERSONALISATIONS),
        ):
            if value not in known:
                raise ConfigError(
                    f"run config: {key} {value!r} is unknown; {did_you_mean(value, known)}"
                    f"known: {', '.join(known)}"
                )
        if (self.task in RANKING_TASKS) != (self.model == RANKING_MODEL):
            raise ConfigError(
                f"run config: task {self.task!r} with model {self.model!r}: the recommender's "
                f"tasks {' and '.join(map(repr, RANKING_TASKS))} are trained by model "
                f"{RANKING_MODEL!r} only, and that model predicts nothing else; set both or "
                "neither"
            )
        if self.personalisation != "none" and self.task in RANKING_TASKS:
            extra = (
                " (next-products is personal already: each retailer's product table stays with it)"
                if self.task == PRODUCTS_TASK
                else ""
            )
            raise ConfigError(
                f"run config: personalisation={self.personalisation!r} scores each retailer's "
                f"customers, and task {self.task!r} ranks items; leave personalisation at "
                f"'none' for the recommender{extra}"
            )
        if self.count_loss != "poisson" and self.task != "purchase-count":
            raise ConfigError(
                f"run config: count-loss={self.count_loss!r} is the loss of task "
                f"'purchase-count', and task is {self.task!r}; set task='purchase-count' or "
                "leave count-loss at 'poisson'"
            )
        if self.dp == "client" and self.target_epsilon == 0 and self.noise_multiplier == 0:
            raise ConfigError(
                "run config: dp='client' needs target-epsilon > 0 or noise-multiplier > 0 "
                "(or set dp='none')"
            )
        if self.target_epsilon > 0 and self.noise_multiplier > 0:
            # one would silently win: the target calibrates its own noise
            raise ConfigError(
                f"run config: target-epsilon={self.target_epsilon:g} and noise-multiplier="
                f"{self.noise_multiplier:g} both set the DP-SGD noise; for a fixed noise "
                "multiplier add target-epsilon=0, for a budget leave noise-multiplier at 0"
            )
        try:
            check_rule_name(self.strategy)
        except ConfigError as exc:
            raise ConfigError(f"run config: {exc}") from None

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
        from fedmarket.privacy.config import default_delta

        return self.delta if self.delta > 0 else default_delta(n_train_total)

    def privacy(self, n_train_total: int) -> PrivacySettings | None:
        """Client-level DP-SGD settings under ``dp = "client"`` (None otherwise), for every
        client and for the matched centralised reference."""
        if self.dp != "client":
            return None
        from fedmarket.privacy.config import PrivacySettings

        target = self.target_epsilon > 0
        return PrivacySettings(
            target_epsilon=self.target_epsilon if target else None,
            noise_multiplier=None if target else self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            delta=self.client_delta(n_train_total),
            accountant=self.accountant,
        )

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of ``build_model`` that come from the run config (beyond the
        model's name and task): every place that builds the run's model passes them, so the
        clients, the server and the centralised reference build the same weights."""
        if self.model == RANKING_MODEL:  # its vocabulary comes from the data (recommend.data)
            return {}
        return {"count_loss": self.count_loss}

    @property
    def total_epochs(self) -> int:
        """Passes over a retailer's customers in the whole run: rounds x local epochs."""
        return self.num_server_rounds * self.local_epochs

    @property
    def client_epochs(self) -> int:
        """Passes over a retailer's customers its privacy budget covers: the rounds' epochs
        plus personalisation's (finetune: ``personal-epochs`` once after the last round;
        ditto: ``personal-epochs`` every round for the personal model; fedper: none, its
        private head trains inside the rounds). Each client calibrates its noise for this
        many, so the run's whole training, personal steps included, stays within the target.
        """
        extra = {"finetune": 1, "ditto": self.num_server_rounds}.get(self.personalisation, 0)
        return self.total_epochs + extra * self.personal_epochs

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
            if "'" in value and '"' in value:
                raise ConfigError(
                    f"run config value {key}={value!r} holds both quote characters; "
                    "flwr's --run-config cannot carry it: rename it"
                )
            text = f'"{value}"' if "'" in value else f"'{value}'"
        else:
            text = repr(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


# One ``key=value`` item as flwr's own parser (flwr.common.config.parse_config_args) finds
# it: a quoted value may hold spaces; anything else ends at the next space.
_ITEM = re.compile(r"""(\S+?)=('[^']*'|"[^"]*"|\S*)(?=\s|$)""")


def parse_overrides(text: str, *, where: str = "--run-config") -> dict[str, Any]:
    """Parse ``"k=v k2=v2"`` as flwr does: every value is TOML, so a string is in quotes.

    A quoted value may contain spaces (``out-dir='runs/my run'``), as under ``flwr run``.
    A bare word (``model=lstm``) is refused with the quoted form to use instead, rather than
    read as a string: ``flwr run`` refuses it, and the two commands should take one syntax.
    """
    values: dict[str, Any] = {}
    position = 0
    while (start := _next_item(text, position)) is not None:
        match = _ITEM.match(text, start)
        if match is None:
            item = text[start:].split(maxsplit=1)[0]
            if "=" not in item or item.startswith("="):
                raise ConfigError(f"{where}: {item!r} is not key=value (e.g. num-server-rounds=5)")
            key, _, raw = item.partition("=")
            raise ConfigError(f"{where}: {_not_toml(key, raw)}")
        key, raw = match.groups()
        try:
            values[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"{where}: {_not_toml(key, raw)}") from None
        position = match.end()
    return values


def _next_item(text: str, position: int) -> int | None:
    """Where the next non-space character is, or None at the end."""
    while position < len(text) and text[position].isspace():
        position += 1
    return position if position < len(text) else None


def _not_toml(key: str, raw: str) -> str:
    """Why ``key=raw`` is not a TOML value, and the spelling that is."""
    if raw and not any(q in raw for q in "'\""):
        return f"{key}={raw}: a string must be quoted, as flwr reads TOML: {key}='{raw}'"
    return (
        f"{key}={raw} is not a TOML value: use a number, true or false, or a string in "
        f"matching quotes ({key}='text')"
    )


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
