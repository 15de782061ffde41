"""The semi-supervised GAN under DP: DP-SGD (Opacus, through ``fedmarket.privacy``) on the
discriminator only.

Only the discriminator reads real customers, so clipping each real customer's gradient and
adding Gaussian noise to the discriminator's updates makes the discriminator, and everything
computed from it afterwards, differentially private (post-processing): the generator, which
learns only through the private discriminator, and the class probabilities it outputs.

Two changes from the non-private training make that hold:

* The generator loses feature matching, whose target is the mean hidden features of a real
  batch (a statistic of real customers that no noise protects); it is trained by the
  non-saturating loss ``-log D(G(z))`` through the private discriminator instead.
* Each discriminator step sees a fixed number of generated rows (the batch size), not as
  many as the Poisson-sampled real batch holds: their count would otherwise depend on
  which customers were sampled. Generated rows depend only on earlier private steps, so
  one real customer changes the clipped, summed gradient by at most the clipping norm.

Epsilon is accounted by the project's accountant over every step (``PrivateTraining``).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from fedmarket.generative.ssgan import Discriminator, GANConfig, unsupervised_loss
from fedmarket.privacy.accounting import steps_per_epoch
from fedmarket.privacy.config import PrivacySettings
from fedmarket.privacy.engine import make_private
from fedmarket.privacy.epochs import private_epochs


def train_private(
    disc: Discriminator,
    gen: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    cfg: GANConfig,
    privacy: PrivacySettings,
    generator: torch.Generator,
    seed: int,
) -> tuple[Discriminator, float, float]:
    """Train ``disc`` (DP-SGD) and ``gen`` on standardised rows and labels ``data``:
    (the plain discriminator, epsilon spent, delta)."""
    xt, yt = data
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    steps = cfg.epochs * steps_per_epoch(len(xt), cfg.batch_size)
    priv = make_private(
        disc, opt_d, (xt, yt), privacy, None,
        batch_size=cfg.batch_size, generator=generator,
        noise_generator=torch.Generator().manual_seed(seed + 1),
        total_steps_planned=steps, steps_now=steps,
    )  # fmt: skip
    n_fake, g = cfg.batch_size, generator

    def batch_loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        real = xb + cfg.input_noise * torch.randn(xb.shape, generator=g)
        fake = gen(torch.randn(n_fake, cfg.latent_dim, generator=g)).detach()
        logits, _ = priv.module(torch.cat([real, fake]))
        real_logits, fake_logits = logits[: len(xb)], logits[len(xb) :]
        return F.cross_entropy(real_logits, yb) + unsupervised_loss(real_logits, fake_logits)

    def generator_step() -> None:
        priv.module.disable_hooks()  # the generator's step is post-processing
        try:
            fake_logits, _ = priv.module(gen(torch.randn(n_fake, cfg.latent_dim, generator=g)))
            lse = torch.logsumexp(fake_logits, dim=1)
            loss_g = (F.softplus(lse) - lse).mean()  # -log D(G(z))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        finally:
            priv.module.enable_hooks()

    try:
        private_epochs(priv, cfg.epochs, batch_loss, after_step=generator_step)
        spent, delta = priv.epsilon(), priv.plan.delta
    finally:
        plain = priv.close()
    return cast(Discriminator, plain), spent, delta  # close() unwraps the module passed in
