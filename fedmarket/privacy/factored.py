"""Clipping per-sample gradients that are kept as factors, never built (ghost clipping).

A layer whose weight is applied at every time step, ``z_nt = W a_nt``, has per-sample gradient
``grad_n = sum_t d_nt a_nt^T = D_n^T A_n`` (``D_n``: ``[T, out]`` output gradients of customer n,
``A_n``: ``[T, in]`` inputs). Opacus builds ``[B, out, in]`` of those, zero-fills a buffer for
them, copies, takes norms and sums them weighted by the clip factors: for ``BatchedDPLSTM``'s
``[B, 200, 50]`` recurrent weight that memory traffic was most of a DP step on a CPU. Both
numbers clipping needs come from the factors directly:

    ||D_n^T A_n||_F^2 = <D_n D_n^T, A_n A_n^T>            (two [T, T] Gram matrices per customer)
    sum_n c_n D_n^T A_n = D^T (c * A)                       (one product over all B x T rows)

The same arithmetic as Opacus' flat clipping (norm over all parameters, factor
``min(1, C / (norm + 1e-6))``), so the clipped sum, the noise and therefore the privacy
guarantee are those of ``DPOptimizer``; only rounding differs. Layers that leave factors put
them in ``param.grad_factors`` as a list of ``(D, A)`` pairs (one per backward pass), with a
zero-strided placeholder in ``param.grad_sample`` for Opacus' book-keeping; every other
parameter keeps Opacus' dense ``grad_sample``.
"""

from __future__ import annotations

import torch
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from torch import Tensor, nn

from fedmarket.errors import PrivacyError


def _factors(p: nn.Parameter) -> tuple[Tensor, Tensor] | None:
    pairs = getattr(p, "grad_factors", None)
    if not pairs:
        return None
    if len(pairs) == 1:
        return pairs[0]
    return torch.cat([d for d, _ in pairs]), torch.cat([a for _, a in pairs])


class FactoredDPOptimizer(DPOptimizer):
    """``DPOptimizer`` (flat clipping) that also clips per-sample gradients left as factors.

    Build it with ``from_dp_optimizer`` from the optimiser ``PrivacyEngine.make_private``
    returns: same wrapped optimiser, noise, clip, expected batch size, generator and step hook.
    """

    @classmethod
    def from_dp_optimizer(cls, dp: DPOptimizer) -> FactoredDPOptimizer:
        if type(dp) is not DPOptimizer:
            raise PrivacyError(
                f"factored clipping extends Opacus' flat-clipping DPOptimizer, got "
                f"{type(dp).__name__}; use clipping='flat' without distributed training"
            )
        new = cls(
            dp.original_optimizer,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=dp.expected_batch_size,
            loss_reduction=dp.loss_reduction,
            generator=dp.generator,
            secure_mode=dp.secure_mode,
        )
        new.step_hook = dp.step_hook
        return new

    def _get_flat_grad_sample(self, p: torch.Tensor) -> Tensor:
        pair = _factors(p)
        if pair is None:
            return super()._get_flat_grad_sample(p)
        # only its length is read (batch size, empty-batch check): no memory behind it
        return pair[0].new_zeros(()).expand(len(pair[0]), *p.shape)

    def clip_and_accumulate(self) -> None:
        """Opacus' flat clipping, with factored parameters' norms and sums from their factors."""
        pairs = {id(p): _factors(p) for p in self.params}
        batch = len(self.grad_samples[0])
        grams: dict[int, Tensor] = {}  # one D D^T per layer: D is shared by its two weights

        def gram(t: Tensor) -> Tensor:
            if id(t) not in grams:
                grams[id(t)] = torch.bmm(t, t.transpose(1, 2))
            return grams[id(t)]

        if batch == 0:
            factor = torch.zeros((0,), device=self.params[0].device)
        else:
            norms = []
            for p in self.params:
                pair = pairs[id(p)]
                if pair is None:
                    norms.append(self._get_flat_grad_sample(p).reshape(batch, -1).norm(2, dim=-1))
                else:
                    squared = (gram(pair[0]) * gram(pair[1])).sum(dim=(1, 2))
                    norms.append(squared.clamp_min(0.0).sqrt())
            total = torch.stack(norms, dim=1).norm(2, dim=1)
            factor = (self.max_grad_norm / (total + 1e-6)).clamp(max=1.0)
        for p in self.params:
            _check_processed_flag(p.grad_sample)
            pair = pairs[id(p)]
            c = factor.to(p.dtype)
            if pair is None:
                grad = torch.einsum("i,i...", c, self._get_flat_grad_sample(p).to(p.dtype))
            elif batch == 0:
                grad = torch.zeros_like(p)
            else:
                d, a = pair  # the clip factors go onto A, narrower than D
                grad = d.flatten(0, 1).t() @ (a * c[:, None, None]).flatten(0, 1)
            if p.summed_grad is not None:
                p.summed_grad += grad
            else:
                p.summed_grad = grad
            _mark_as_processed(p.grad_sample)

    def zero_grad(self, set_to_none: bool = False) -> None:
        for p in self.params:
            p.grad_factors = None
        super().zero_grad(set_to_none)
