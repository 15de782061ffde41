"""What differential privacy a training run asks for, validated once.

The unit of privacy is the customer: each customer is one example of a split, so Opacus'
example-level (epsilon, delta) guarantee is a customer-level guarantee at that retailer.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmarket.checks import integer, number
from fedmarket.errors import ConfigError
from fedmarket.names import ACCOUNTANTS  # the names live where the CLI reads them light


def default_delta(n: int) -> float:
    """``1 / (10 n)``: the usual rule that delta stays well below ``1 / n``.

    A mechanism with ``delta >= 1 / n`` may publish one whole customer's record and still
    meet the definition; a tenth of that keeps the "probability of total failure" small
    relative to any single customer.
    """
    integer("default_delta: n", n, at_least=1, must="a positive number of customers")
    return 1.0 / (10 * n)


@dataclass(frozen=True)
class PrivacySettings:
    """DP-SGD settings for one client (or the centralised reference).

    Exactly one of ``target_epsilon`` and ``noise_multiplier``:

    - ``target_epsilon``: the noise is calibrated once for the whole planned training
      (all epochs, all federated rounds) and training is refused once the next call
      would spend more than this.
    - ``noise_multiplier``: fixed noise; epsilon is reported but no budget is enforced.

    ``delta`` None means ``default_delta(n)`` with n the number of training customers.
    ``accountant`` names an Opacus accountant: "rdp" (Renyi DP, a slightly loose upper
    bound, fast) or "prv" (privacy random variables, tighter, slower).
    ``poisson_sampling`` draws every customer into each batch independently with
    probability q, which is what the accountants assume; False uses shuffled fixed-size
    batches and the reported epsilon is then only an approximation.
    ``secure_mode`` makes Opacus draw Poisson samples and noise from a cryptographically
    secure generator (torchcsprng) and use noise robust to floating-point attacks; runs
    are then not reproducible from a seed. It is what a production deployment should
    use; torchcsprng is not installed here, so asking for it raises PrivacyError at
    training time.
    """

    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    delta: float | None = None
    accountant: str = "rdp"
    poisson_sampling: bool = True
    secure_mode: bool = False

    def __post_init__(self) -> None:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ConfigError(
                "privacy: give exactly one of target_epsilon (noise calibrated to a budget) "
                f"and noise_multiplier (fixed noise); got target_epsilon={self.target_epsilon!r}, "
                f"noise_multiplier={self.noise_multiplier!r}"
            )
        if self.target_epsilon is not None:
            number("privacy.target_epsilon", self.target_epsilon, above=0.0)
        if self.noise_multiplier is not None:
            number("privacy.noise_multiplier", self.noise_multiplier, at_least=0.0)
        number("privacy.max_grad_norm", self.max_grad_norm, above=0.0)
        if self.delta is not None:
            number("privacy.delta", self.delta, above=0.0)
            if self.delta >= 1.0:
                raise ConfigError(
                    f"privacy.delta must be below 1 (and below 1/n), got {self.delta}"
                )
        if self.accountant not in ACCOUNTANTS:
            raise ConfigError(
                f"privacy.accountant {self.accountant!r} is unknown; "
                f"use one of {', '.join(ACCOUNTANTS)}"
            )
        for name in ("poisson_sampling", "secure_mode"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"privacy.{name} must be true or false, got {getattr(self, name)!r}"
                )

    def resolve_delta(self, n: int) -> float:
        """The delta for ``n`` training customers; ConfigError when delta >= 1/n."""
        if self.delta is None:
            return default_delta(n)
        if self.delta >= 1.0 / n:
            raise ConfigError(
                f"privacy.delta={self.delta:g} is not below 1/n = {1.0 / n:g} for n={n} training "
                f"customers; such a delta allows leaking a whole record. Use a smaller delta or "
                f"leave it unset for 1/(10 n)"
            )
        return float(self.delta)
