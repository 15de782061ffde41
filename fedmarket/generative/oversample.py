"""GAN-based minority oversampling: a small GAN trained on the minority class's training rows
only generates synthetic minority customers, which are added to the training set before an
ordinary classifier is fitted.

Why: a rare class (buyers; or churners where most customers stay) gives a classifier few
examples; the literature proposes generated minority examples in place of SMOTE's
interpolation. Whether it helps is measured, not assumed: `fedmarket baselines` reports the
same classifier with and without the synthetic rows on the same test customers.

The GAN is the standard one (non-saturating loss) on standardised rows; generated rows are
clipped to the range the real minority rows span per column (a generator can extrapolate
far outside it early in training) and mapped back to the feature scale, so every synthetic
row is finite and within the observed ranges. Test customers are never seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from fedmarket.checks import integer
from fedmarket.errors import DataError
from fedmarket.generative.ssgan import (
    Discriminator,
    GANConfig,
    Standardiser,
    check_rows,
    generator_net,
    seeded_init,
)


class MinorityGAN:
    """A GAN on one class's rows: ``fit(x)``, then ``sample(n)`` synthetic rows like them."""

    def __init__(self, cfg: GANConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or GANConfig()
        self.seed = seed
        self._gen: torch.nn.Module | None = None
        self._scale: Standardiser | None = None
        self._low = self._high = np.zeros(0)

    def fit(self, x: np.ndarray) -> MinorityGAN:
        x = check_rows(x, "minority rows")
        cfg, g = self.cfg, torch.Generator().manual_seed(self.seed)
        self._scale = Standardiser(x)
        xt = self._scale.apply(x)
        self._low, self._high = xt.min(0).values, xt.max(0).values
        disc, gen = Discriminator(cfg, x.shape[1], 1), generator_net(cfg, x.shape[1])
        seeded_init(disc, g)
        seeded_init(gen, g)
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(xt), generator=g).split(cfg.batch_size):
                real = xt[idx] + cfg.input_noise * torch.randn(xt[idx].shape, generator=g)
                fake = gen(torch.randn(len(idx), cfg.latent_dim, generator=g))
                real_logit, _ = disc(real)
                fake_logit, _ = disc(fake.detach())
                # -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit)
                loss_d = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
                loss_g = F.softplus(-disc(fake)[0]).mean()  # non-saturating: -log D(G(z))
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()
        self._gen = gen.eval()
        return self

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` synthetic rows on the input's scale, clipped to the real rows' range."""
        n = integer("number of synthetic rows", n, at_least=0, numpy=True)
        if self._gen is None or self._scale is None:
            raise DataError("MinorityGAN: call fit before sample")
        g = torch.Generator().manual_seed(self.seed + 1 if seed is None else seed)
        with torch.no_grad():
            z = self._gen(torch.randn(n, self.cfg.latent_dim, generator=g))
            z = torch.maximum(torch.minimum(z, self._high), self._low)
        return self._scale.invert(z)


@dataclass(frozen=True)
class Oversampled:
    """Training rows with the synthetic minority rows appended after the real ones."""

    x: np.ndarray
    y: np.ndarray
    minority: float  # the label that was oversampled
    n_synthetic: int


def gan_oversample(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_synthetic: int | None = None,
    cfg: GANConfig | None = None,
    seed: int = 0,
) -> Oversampled:
    """Append ``n_synthetic`` GAN-generated rows of the rarer class (default: as many as
    bring it level with the other class) to the training rows ``x``, ``y`` (0/1)."""
    x = check_rows(x, "training features")
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(x),) or not np.isin(y, (0.0, 1.0)).all():
        raise DataError("oversampling labels: expected one 0/1 label per training row")
    counts = {c: int((y == c).sum()) for c in (0.0, 1.0)}
    minority = min(counts, key=lambda c: (counts[c], c))
    if counts[minority] < 2:
        raise DataError(
            f"oversampling: the minority class ({minority:g}) has {counts[minority]} training "
            "row(s); a GAN needs at least 2 to learn from"
        )
    if n_synthetic is None:
        n_synthetic = counts[1.0 - minority] - counts[minority]
    n_synthetic = integer("n_synthetic", n_synthetic, at_least=0, numpy=True)
    gan = MinorityGAN(cfg, seed).fit(x[y == minority])
    synthetic = gan.sample(n_synthetic)
    return Oversampled(
        np.concatenate([x, synthetic]),
        np.concatenate([y, np.full(n_synthetic, minority)]),
        minority,
        n_synthetic,
    )
