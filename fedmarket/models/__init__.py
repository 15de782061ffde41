"""Sequence models for per-customer purchase prediction, each in a fast and a DP form.

Use ``build_model(name, n_features, task=..., dp=..., seed=...)``; the forms share one state-dict
layout, so weights trained with Opacus load into the fast model and back with ``strict=True``.
"""

from fedmarket.models.recurrent import RECURRENT_KINDS, RecurrentStack
from fedmarket.models.registry import (
    MODEL_REGISTRY,
    ModelSpec,
    available_models,
    build_model,
    head_keys,
    model_hparams,
    split_head,
    split_private,
)
from fedmarket.models.sequence import SequenceModel

__all__ = [
    "MODEL_REGISTRY",
    "RECURRENT_KINDS",
    "ModelSpec",
    "RecurrentStack",
    "SequenceModel",
    "available_models",
    "build_model",
    "head_keys",
    "model_hparams",
    "split_head",
    "split_private",
]
