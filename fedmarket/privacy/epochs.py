"""The DP-SGD epoch loop over ``make_private``'s Poisson loader, shared by every private trainer.

The model training loop (``fedmarket.training``), the federated generator's local rounds and
the private semi-supervised GAN take their private steps the same way; what differs is the
loss of a batch and what they do after a step. Kept in one place, the parts the privacy
argument rests on cannot drift apart:

* an empty Poisson batch still takes a noise-only step (``PrivateTraining.empty_step``):
  skipping it would reveal that nobody was sampled, which the accountant does not allow for;
* the step count (every loader batch, empty or not) is what the accountant counted.

Importing this module does not import Opacus (``PrivateTraining`` is only a type here).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from fedmarket.privacy.engine import PrivateTraining

# Opacus' backward hooks on the first layer fire although the input needs no gradient; torch
# warns about it on every step, harmlessly.
HOOK_WARNING = "Full backward hook is firing"


def private_epochs(
    priv: PrivateTraining,
    epochs: int,
    batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    after_noise: Callable[[], None] | None = None,
    after_step: Callable[[], None] | None = None,
) -> tuple[float, int, int]:
    """``epochs`` passes of DP-SGD over ``priv.loader``: (loss sum, rows seen, steps taken).

    For each non-empty batch (xb, yb): zero the gradients, ``batch_loss(xb, yb)`` (a scalar,
    backpropagated here), ``priv.step(after_noise)``, then ``after_step()`` (e.g. a
    generator's update, which must not touch the per-sample hooks' state). An empty batch
    takes ``priv.empty_step(after_noise)``. The loss sum weighs each batch's loss by its
    rows. The gradients are cleared at the end, so no per-sample gradient outlives the loop.
    """
    total, seen, steps = 0.0, 0, 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=HOOK_WARNING)
        for _ in range(epochs):
            for xb, yb in priv.loader:
                steps += 1
                if len(xb) == 0:
                    priv.empty_step(after_noise)
                    continue
                priv.optimizer.zero_grad(set_to_none=True)
                loss = batch_loss(xb, yb)
                loss.backward()
                priv.step(after_noise)
                total += float(loss.detach()) * len(xb)
                seen += len(xb)
                if after_step is not None:
                    after_step()
    priv.optimizer.zero_grad(set_to_none=True)
    return total, seen, steps
