"""A label-conditioned variational autoencoder over flattened customer sequences, trained
with DP-SGD (Opacus, through ``fedmarket.privacy``): the generator of private synthetic
customers (``fedmarket.generative.federated_generator`` averages it over retailers).

Why a VAE and not the GAN of ``fedmarket.generative.ssgan``/``private``:

* One loss, one network pair, no adversarial game. Under DP-SGD every update is clipped and
  noised, and under FedAvg the retailers' models are averaged; a GAN's two players are
  already fragile without either (averaging discriminators trained against different local
  generators has no fixed point to aim at), while the ELBO is an ordinary loss whose average
  is a sensible update. A small DP VAE trains stably in a few rounds on ~1,000 customers per
  retailer; it is the simpler DP generative model the issue allows.
* Every parameter trains under DP-SGD, so the generator is private directly, not through a
  post-processing argument about which network saw which data.
* The price: a Gaussian decoder blurs sharp and zero-inflated marginals (most customers have
  no event in most time steps). The fidelity report measures how much (KS, Wasserstein).

Why linear by default (``hidden = 0``: a linear encoder and decoder, i.e. probabilistic PCA
with a class shift): DP-SGD clips each customer's whole gradient to one norm and adds the
same noise to every weight, so the fewer the weights, the more of a customer's signal each
one keeps. With two 64-wide hidden layers (~51,000 weights over 308 features) the noise
swamped the class signal: on the 4-retailer data at epsilon 4, classifiers trained on its
synthetic customers ranked real test customers at or below chance (test ROC-AUC 0.31-0.67
over configurations and seeds), while the linear model (~5,600 weights) reached 0.60
(logistic regression) and 0.75 (gradient boosting) against 0.81 and 0.82 trained on the real
customers (seed 0, before the clipping of ``synthetic_table``; BENCHMARKS.md has the
figures after, over seeds: they vary widely). Without DP the MLP VAE reached 0.75 and 0.79:
the loss is DP's, not the model's.

The model, per customer with flattened features ``x`` (T x F) and 0/1 label ``y``:

* encoder ``q(z | x, y)``: an MLP to the mean and log-variance of a ``latent_dim`` Gaussian;
* decoder ``p(x | z, y)``: an MLP of ``(z, y)`` plus a learned per-feature shift for ``y = 1``
  (a class's mean offset the decoder need not discover through one input among many), with
  one learned log-sigma per feature;
* label prior ``p(y)``: one learned logit. It is part of the same per-customer loss, so the
  synthetic table's class balance is learned under the same DP guarantee as everything else
  (no label count is released outside DP). The logit and the log-sigmas are ``Linear`` layers
  applied to a column of ones, so Opacus computes their per-customer gradients like any
  other layer's.

Loss per customer (minimised; clipped per customer, summed, noised, averaged by Opacus):
``0.5 sum_d ((x_d - mu_d) / sigma_d)^2 + log sigma_d`` + ``KL(q(z | x, y) || N(0, I))`` +
``BCE(prior logit, y)``, the first two divided by D. Why divided: DP-SGD clips each
customer's whole gradient to one norm, so a term's share of that norm is its share of the
signal that survives the noise; summed over ~300 features the label's term was a rounding
error, and under DP the learned label rate did not move from its start. The
reparameterisation noise is drawn outside the module from a seeded generator and passed
in, so a fit is a function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fedmarket.checks import integer, number

LOG_SIGMA_RANGE = (-4.0, 2.0)  # decoder noise of standardised features: 0.02 to 7.4 std


@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes and schedule of the DP VAE and of its federated training."""

    latent_dim: int = 4
    hidden: int = 0  # 0: linear encoder and decoder (probabilistic PCA); > 0: two-layer MLPs
    rounds: int = 10
    local_epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    head_lr: float = 1e-2  # the label prior, log-sigmas and class shift: few weights each
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        integer("generator latent_dim", self.latent_dim, at_least=1)
        integer("generator hidden", self.hidden, at_least=0)
        integer("generator rounds", self.rounds, at_least=1)
        integer("generator local_epochs", self.local_epochs, at_least=1)
        integer("generator batch_size", self.batch_size, at_least=2)
        number("generator lr", self.lr, above=0.0)
        number("generator head_lr", self.head_lr, above=0.0)
        number("generator max_grad_norm", self.max_grad_norm, above=0.0)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    if hidden == 0:  # linear: with a linear decoder the VAE is probabilistic PCA
        return nn.Sequential(nn.Linear(n_in, n_out))
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, n_out),
    )  # fmt: skip


class ConditionalVAE(nn.Module):
    """``forward(x, y, eps)`` -> the per-customer loss, shape [batch] (see the module doc)."""

    def __init__(self, n_features: int, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.n_features, self.latent_dim = n_features, cfg.latent_dim
        self.encoder = _mlp(n_features + 1, cfg.hidden, 2 * cfg.latent_dim)
        self.decoder = _mlp(cfg.latent_dim + 1, cfg.hidden, n_features)
        self.log_sigma = nn.Linear(1, n_features)  # on a column of ones: per-feature noise
        self.label_logit = nn.Linear(1, 1)  # on a column of ones: the label prior
        self.class_shift = nn.Linear(1, n_features)  # on y: a class's mean shift

    def forward(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        y = y.reshape(-1, 1).to(x.dtype)
        ones = torch.ones_like(y)
        mu_z, logvar_z = self.encoder(torch.cat([x, y], dim=1)).chunk(2, dim=1)
        z = mu_z + torch.exp(0.5 * logvar_z) * eps
        mean = self.decoder(torch.cat([z, y], dim=1)) + self.class_shift(y)
        log_sigma = self.log_sigma(ones).clamp(*LOG_SIGMA_RANGE)
        rec = (0.5 * ((x - mean) * torch.exp(-log_sigma)).pow(2) + log_sigma).sum(dim=1)
        kl = 0.5 * (mu_z.pow(2) + logvar_z.exp() - 1.0 - logvar_z).sum(dim=1)
        label = F.binary_cross_entropy_with_logits(
            self.label_logit(ones).squeeze(1), y.squeeze(1), reduction="none"
        )
        # per feature, so the label's term is not one of ~300 in a customer's clipped gradient
        return (rec + kl) / self.n_features + label

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` synthetic customers: (features [n, D], labels [n] as 0.0/1.0)."""
        ones = torch.ones(n, 1)
        y = torch.bernoulli(torch.sigmoid(self.label_logit(ones)), generator=generator)
        z = torch.randn(n, self.latent_dim, generator=generator)
        mean = self.decoder(torch.cat([z, y], dim=1)) + self.class_shift(y)
        sigma = torch.exp(self.log_sigma(ones).clamp(*LOG_SIGMA_RANGE))
        return mean + sigma * torch.randn(mean.shape, generator=generator), y.squeeze(1)

    def param_groups(self, cfg: GeneratorConfig) -> list[dict]:
        """The networks at ``cfg.lr``, the heads (label prior, log-sigmas, class shift) at
        ``cfg.head_lr``: under DP noise Adam moves every weight by about its learning rate
        per step, which keeps the networks' random walk small only with a small rate, while
        the heads (one weight per feature or fewer, each fed by every customer) then barely
        leave their start."""
        heads = [
            *self.log_sigma.parameters(),
            *self.label_logit.parameters(),
            *self.class_shift.parameters(),
        ]
        nets = [*self.encoder.parameters(), *self.decoder.parameters()]
        return [{"params": nets, "lr": cfg.lr}, {"params": heads, "lr": cfg.head_lr}]

    def label_rate(self) -> float:
        """P(y = 1) under the learned label prior."""
        with torch.no_grad():
            return float(torch.sigmoid(self.label_logit(torch.ones(1, 1)))[0, 0])
