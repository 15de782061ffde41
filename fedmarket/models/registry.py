"""Models by name, so run config, CLI and benchmarks pick one with a string.

Every recurrent entry is ``SequenceModel`` with its architecture fixed (cell kind, whether a
Conv1d front exists), ``mlp`` is ``MLPModel`` (flattens the steps: the model for customer
tables, one step per customer); each lists its tunable hyper-parameters with their defaults;
anything not listed is rejected, so a typo fails loudly instead of training the default model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from fedmarket.checks import integer
from fedmarket.errors import ConfigError
from fedmarket.models.mlp import MLPModel
from fedmarket.models.sequence import SequenceModel
from fedmarket.names import did_you_mean


def _gru_ncf(n_features: int, **kwargs: Any) -> nn.Module:
    # imported on use: fedmarket.recommend.model builds on fedmarket.models.recurrent
    from fedmarket.recommend.model import GruNcf

    return GruNcf(n_features, **kwargs)


_RECURRENT_DEFAULTS: dict[str, Any] = {
    "hidden_size": 50,
    "num_layers": 2,
    "dropout": 0.2,
    "base_rate": None,
    "count_loss": "poisson",
}


# The final layer of every model that predicts per customer: its ``head`` module, mapping
# the body's representation of a customer to the task's output. FedPer keeps it private.
_HEAD = ("head.", "dispersion.")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model: constructor(n_features, task=, dp=, **defaults).

    ``head``: the state-dict prefixes of the model's head (its final layer(s)), the part a
    FedPer client keeps private (``head_keys``); () where the model has none to personalise.
    """

    constructor: Callable[..., nn.Module]
    defaults: Mapping[str, Any]
    description: str
    head: tuple[str, ...] = _HEAD
    # (task, state-dict prefixes) that never leave the client, whatever the personalisation
    # (next-products' retailer-private product table); what FedAvg averages is the rest
    private: tuple[tuple[str, tuple[str, ...]], ...] = ()


MODEL_REGISTRY: Mapping[str, ModelSpec] = MappingProxyType(
    {
        "cnn-lstm": ModelSpec(
            partial(SequenceModel, cell="lstm"),
            MappingProxyType(
                {
                    "conv_layers": 2,
                    "conv_channels": 32,
                    "kernel_size": 3,
                    **_RECURRENT_DEFAULTS,
                    "num_layers": 1,
                }
            ),
            "Conv1d over time (2 x 32 channels, kernel 3, ReLU) feeding a 1-layer LSTM (50)",
        ),
        "lstm": ModelSpec(
            partial(SequenceModel, cell="lstm", conv_layers=0),
            MappingProxyType(dict(_RECURRENT_DEFAULTS)),
            "stacked LSTM, 2 layers of 50, dropout 0.2 (the LSTM frequency study's setting)",
        ),
        "gru": ModelSpec(
            partial(SequenceModel, cell="gru", conv_layers=0),
            MappingProxyType(dict(_RECURRENT_DEFAULTS)),
            "stacked GRU baseline, same sizes as lstm",
        ),
        "rnn": ModelSpec(
            partial(SequenceModel, cell="rnn", conv_layers=0),
            MappingProxyType(dict(_RECURRENT_DEFAULTS)),
            "stacked Elman RNN (tanh) baseline, same sizes as lstm",
        ),
        "mlp": ModelSpec(
            MLPModel,
            MappingProxyType(
                {
                    "n_steps": 1,
                    "hidden_size": 64,
                    "num_layers": 2,
                    "dropout": 0.1,
                    "base_rate": None,
                    "count_loss": "poisson",
                }
            ),
            "MLP over the flattened steps (2 x 64 ReLU, dropout 0.1): for customer tables "
            "(one step); n_steps = the window's steps on event data",
        ),
        "gru-ncf": ModelSpec(
            _gru_ncf,
            MappingProxyType(
                {
                    "vocabulary": None,
                    "catalogue": None,
                    "mode": "gru-ncf",
                    "embedding_dim": 32,
                    "hidden_size": 64,
                    "mlp_size": 64,
                    "dropout": 0.1,
                }
            ),
            "task next-categories: GRU (64) over the category events -> customer state, NCF "
            "(GMF + MLP 64) over (state, content embedding of each item, 32); mode gru / ncf "
            "for the GRU-only and NCF-only ablations; needs vocabulary=manifest['recommend']; "
            "task next-products: plus a retailer-private product table (catalogue=...)",
            (),  # ranks items; no per-customer head to personalise
            (("next-products", ("products.",)),),
        ),
    }
)


def available_models() -> list[str]:
    """Names accepted by ``build_model``, sorted."""
    return sorted(MODEL_REGISTRY)


def _spec(name: str) -> ModelSpec:
    if name not in MODEL_REGISTRY:
        raise ConfigError(
            f"unknown model {name!r}; {did_you_mean(name, available_models())}"
            f"known: {', '.join(available_models())}"
        )
    return MODEL_REGISTRY[name]


def head_keys(name: str, keys: Iterable[str]) -> list[str]:
    """The keys among ``keys`` (a state dict's) that belong to model ``name``'s head.

    The one definition of "head" (``ModelSpec.head``): FedPer's client keeps these and sends
    the rest. An error for a model without a head, or keys that hold none of it (another
    architecture's state dict).
    """
    prefixes = _spec(name).head
    if not prefixes:
        raise ConfigError(f"model {name!r} has no head to keep private; use another model")
    keys = list(keys)
    head = [k for k in keys if k.startswith(prefixes)]
    if not head or len(head) == len(keys):
        raise ConfigError(
            f"model {name!r}: the state dict's keys ({', '.join(keys[:3])}, ...) do not split "
            f"into a body and a head ({', '.join(prefixes)}); is it this model's?"
        )
    return head


def split_head(
    name: str, state_dict: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(body, head) of model ``name``'s ``state_dict``, each in the state dict's order."""
    head = set(head_keys(name, state_dict))
    body = {k: v for k, v in state_dict.items() if k not in head}
    return body, {k: v for k, v in state_dict.items() if k in head}


def private_prefixes(name: str, task: str) -> tuple[str, ...]:
    """The state-dict prefixes of model ``name`` that stay at the client for ``task``."""
    return dict(_spec(name).private).get(task, ())


def split_private(
    name: str, task: str, state_dict: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(shared, private) of ``state_dict``: the private part (``ModelSpec.private``, e.g. the
    retailer's product table of next-products) is what a client keeps and never sends; for
    a task without one, (everything, {})."""
    prefixes = private_prefixes(name, task)
    if not prefixes:
        return dict(state_dict), {}
    shared = {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}
    return shared, {k: v for k, v in state_dict.items() if k.startswith(prefixes)}


def model_hparams(name: str) -> dict[str, Any]:
    """Default hyper-parameters of model ``name`` (a fresh dict, safe to modify)."""
    return dict(_spec(name).defaults)


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch for the block only; the caller's RNG state is restored afterwards."""
    if seed is None:
        yield
        return
    seed = integer("model seed", seed, at_least=0, numpy=True, must="an integer >= 0 or None")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_model(
    name: str,
    n_features: int,
    *,
    task: str = "purchase",
    dp: bool | str = False,
    seed: int | None = None,
    **hparams: Any,
) -> nn.Module:
    """Build model ``name`` for ``n_features`` per-step features, on the CPU.

    ``dp=True`` gives the Opacus-ready form (``dp="opacus"``: with Opacus' own DPLSTM instead
    of the faster ``BatchedDPLSTM``); its state dict is interchangeable with the fast form's.
    With ``seed`` the initial weights depend on the seed alone (identical for every form) and
    torch's global RNG is left untouched (``torch.random.fork_rng``); with ``seed=None``
    construction draws from the global RNG. Hyper-parameter names are snake_case (see
    ``model_hparams``); run-config kebab-case keys must be translated by the caller.
    """
    spec = _spec(name)
    unknown = sorted(set(hparams) - set(spec.defaults))
    if unknown:
        raise ConfigError(
            f"unknown hyper-parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"allowed: {', '.join(sorted(spec.defaults))}"
        )
    with _seeded(seed):
        return spec.constructor(n_features, task=task, dp=dp, **{**spec.defaults, **hparams})
