"""A semi-supervised GAN classifier (Salimans et al. 2016, "Improved techniques for training
GANs", section 5) on per-customer flat features.

The discriminator outputs K class logits ``l``; the implicit (K+1)-th class "generated" has
logit 0, so ``P(real | x) = Z / (Z + 1)`` with ``Z = sum_k exp(l_k)`` and the class
probabilities of a real customer are the softmax over the K logits. Its loss is the
supervised cross-entropy on labelled customers plus the unsupervised GAN loss
``-log P(real | x) - log(1 - P(real | G(z)))``; the generator is trained by feature matching
(the squared distance between the mean hidden features of real and generated batches),
which Salimans et al. found the stable choice for classification.

Why it is here: studies report GAN-based classifiers beating logistic regression on churn;
fedmarket measures the claim on the same test customers as every other model. All training
customers are labelled, so the GAN part acts as a learned regulariser, not as a source of
extra labels. Inputs are standardised with the training customers' mean and std only.

Determinism: every random draw (initial weights, batches, noise) comes from generators
seeded by ``seed``; the same seed and data give the same probabilities on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fedmarket.checks import integer, number
from fedmarket.errors import DataError
from fedmarket.privacy.config import PrivacySettings


@dataclass(frozen=True)
class GANConfig:
    """Sizes and schedule shared by the GAN models (small: aggregates have ~14 columns).
    ``ssgan-seq``'s wider input (T x F sequence cells + aggregates, 322 on a 28-step set)
    keeps the same width: 128 instead of 64 changed its ROC-AUC by 0.005 (BENCHMARKS.md)."""

    latent_dim: int = 16
    hidden: int = 64
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    input_noise: float = 0.1  # Gaussian noise on the discriminator's inputs (Salimans et al.)

    def __post_init__(self) -> None:
        integer("latent_dim", self.latent_dim, at_least=1)
        integer("hidden", self.hidden, at_least=2)
        integer("epochs", self.epochs, at_least=1)
        integer("batch_size", self.batch_size, at_least=2)
        number("lr", self.lr, above=0.0)
        number("input_noise", self.input_noise, at_least=0.0)


def generator_net(cfg: GANConfig, n_features: int) -> nn.Module:
    """z -> a standardised customer row."""
    return nn.Sequential(
        nn.Linear(cfg.latent_dim, cfg.hidden),
        nn.ReLU(),
        nn.Linear(cfg.hidden, cfg.hidden),
        nn.ReLU(),
        nn.Linear(cfg.hidden, n_features),
    )


class Discriminator(nn.Module):
    """x -> (``out_dim`` logits, the hidden features feature matching compares)."""

    def __init__(self, cfg: GANConfig, n_features: int, out_dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_features, cfg.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(cfg.hidden, cfg.hidden // 2),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(cfg.hidden // 2, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.head(h), h


class Standardiser:
    """Column mean/std of the training rows (std 0 -> 1): fitted once, applied to both splits."""

    def __init__(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)

    def apply(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x - self.mean) / self.std, dtype=torch.float32)

    def invert(self, z: torch.Tensor) -> np.ndarray:
        return z.detach().numpy().astype(np.float64) * self.std + self.mean


def check_rows(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` as a finite 2-D float64 matrix with at least two rows; DataError otherwise."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise DataError(f"{where}: expected a 2-D [customers, features] array, got {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{where}: holds NaN or infinite values; use finite features")
    return x


def seeded_init(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every Linear layer's weights from ``generator`` (PyTorch's default scheme), so
    the initial model does not depend on the global random state."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=5**0.5, generator=generator)
            bound = 1 / layer.in_features**0.5
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def unsupervised_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))) with D = Z / (Z + 1), Z = sum exp(logits), in stable form:
    -log D = softplus(lse) - lse and -log(1 - D) = softplus(lse)."""
    lse_real = torch.logsumexp(real_logits, dim=1)
    lse_fake = torch.logsumexp(fake_logits, dim=1)
    return (F.softplus(lse_real) - lse_real).mean() + F.softplus(lse_fake).mean()


class SSGANClassifier:
    """Fit on labelled training rows, then ``predict_proba`` like a scikit-learn classifier
    (``classes_`` = 0.0, 1.0). With ``privacy`` the discriminator trains under DP-SGD
    (``fedmarket.generative.private``) and ``epsilon``/``delta`` say what it spent."""

    def __init__(
        self, cfg: GANConfig | None = None, seed: int = 0, privacy: PrivacySettings | None = None
    ) -> None:
        self.cfg = cfg or GANConfig()
        self.seed = seed
        self.privacy = privacy
        self.epsilon: float | None = None
        self.delta: float | None = None
        self.classes_ = np.array([0.0, 1.0])
        self._disc: Discriminator | None = None
        self._scale: Standardiser | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> SSGANClassifier:
        x = check_rows(x, "SSGAN training features")
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (len(x),) or not np.isin(y, (0.0, 1.0)).all():
            raise DataError("SSGAN labels: expected one 0/1 label per training row")
        if np.unique(y).size < 2:
            raise DataError("SSGAN labels hold a single class; a classifier needs both")
        cfg, g = self.cfg, torch.Generator().manual_seed(self.seed)
        self._scale = Standardiser(x)
        xt, yt = self._scale.apply(x), torch.as_tensor(y, dtype=torch.long)
        disc, gen = Discriminator(cfg, x.shape[1], 2), generator_net(cfg, x.shape[1])
        seeded_init(disc, g)
        seeded_init(gen, g)
        if self.privacy is not None:
            from fedmarket.generative.private import train_private

            disc, self.epsilon, self.delta = train_private(
                disc, gen, (xt, yt), cfg, self.privacy, g, self.seed
            )
        else:
            self._train(disc, gen, xt, yt, g)
        self._disc = disc.eval()
        return self

    def _train(self, disc, gen, xt, yt, g) -> None:
        cfg = self.cfg
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(xt), generator=g).split(cfg.batch_size):
                real = xt[idx] + cfg.input_noise * torch.randn(xt[idx].shape, generator=g)
                z = torch.randn(len(idx), cfg.latent_dim, generator=g)
                real_logits, _ = disc(real)
                fake_logits, _ = disc(gen(z).detach())
                loss_d = F.cross_entropy(real_logits, yt[idx]) + unsupervised_loss(
                    real_logits, fake_logits
                )
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
                _, real_h = disc(real)
                _, fake_h = disc(gen(torch.randn(len(idx), cfg.latent_dim, generator=g)))
                loss_g = (real_h.detach().mean(0) - fake_h.mean(0)).pow(2).mean()
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[rows, 2]: P(class 0), P(class 1) given the customer is real (softmax over K)."""
        if self._disc is None or self._scale is None:
            raise DataError("SSGANClassifier: call fit before predict_proba")
        x = check_rows(x, "SSGAN features") if len(x) > 1 else np.asarray(x, np.float64)
        with torch.no_grad():
            logits, _ = self._disc(self._scale.apply(x))
            return torch.softmax(logits, dim=1).double().numpy()
