import copy
import importlib.util

import numpy as np
import pytest
import torch
from opacus.accountants import PRVAccountant, RDPAccountant

from fedmarket.data.store import SplitArrays
from fedmarket.errors import BudgetExhaustedError, PrivacyError
from fedmarket.models import build_model
from fedmarket.privacy import (
    AccountantState,
    PrivacySettings,
    PrivateTraining,
    calibrate_noise,
    make_private,
)
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, fit

T, F = 8, 11
PURCHASE = get_task("purchase")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy(n: int, seed: int = 0) -> SplitArrays:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = (X[:, -1, 0] + X[:, -2, 1] > 0).astype(np.float32)
    return SplitArrays(X, np.zeros((n, 1), np.float32), y, y, np.array([f"c{i}" for i in range(n)]))


def tiny(dp: bool = True, seed: int = 0) -> torch.nn.Module:
    return build_model("lstm", F, dp=dp, seed=seed, hidden_size=4, num_layers=1, dropout=0.0)


def rdp(history, delta) -> float:
    acc = RDPAccountant()
    acc.history = list(history)
    return acc.get_epsilon(delta)


def snapshot(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def per_example_grads(model, xb, yb) -> list[list[torch.Tensor]]:
    """Slow reference: each example's gradient computed alone."""
    loss_fn = PURCHASE.loss()
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        list(torch.autograd.grad(loss_fn(model(xb[i : i + 1]), yb[i : i + 1]), params))
        for i in range(len(xb))
    ]


def norm(grads: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


def clipped_sum(model, xb, yb, clip) -> tuple[list[torch.Tensor], list[float]]:
    """Each example's gradient clipped to ``clip`` as Opacus does (norm + 1e-6), then summed."""
    grads = per_example_grads(model, xb, yb)
    factors = [min(1.0, clip / (norm(g) + 1e-6)) for g in grads]
    total = [
        sum(f * g[j] for f, g in zip(factors, grads, strict=True)) for j in range(len(grads[0]))
    ]
    return total, factors


def median_norm(model, X, y) -> float:
    return float(np.median([norm(g) for g in per_example_grads(model, X, y)]))


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_clipping_matches_slow_reference_with_expected_batch_size():
    data = toy(40)
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y_purchase)
    model = tiny()
    reference = copy.deepcopy(model)

    def private(clip: float) -> PrivateTraining:
        settings = PrivacySettings(noise_multiplier=0.0, max_grad_norm=clip)
        return make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=1.0),
            (X, y),
            settings,
            None,
            batch_size=10,
            generator=torch.Generator().manual_seed(1),
            total_steps_planned=4,
            steps_now=4,
        )

    # a first, unused wrap shows the batch seed 1 draws, to clip at its median norm
    peek = private(1.0)
    clip = median_norm(reference, *next(iter(peek.loader)))
    peek.close()
    priv = private(clip)
    assert priv.plan.sample_rate == 0.25 and priv.optimizer.expected_batch_size == 10
    xb, yb = next(iter(priv.loader))
    assert 0 < len(xb) != 10  # Poisson: the real batch differs from the expected one
    before = [p.detach().clone() for p in model.parameters()]
    priv.optimizer.zero_grad()
    PURCHASE.loss()(priv.module(xb), yb).backward()
    priv.optimizer.step()
    summed, factors = clipped_sum(reference, xb, yb, clip)
    assert min(factors) < 1.0 and max(factors) == 1.0  # some clipped, some not
    for p0, p1, g in zip(before, model.parameters(), summed, strict=True):
        torch.testing.assert_close(p1.detach() - p0, -g / 10, atol=1e-5, rtol=0)
    assert priv.state.history == ((0.0, 0.25, 1),)
    plain = priv.close()
    assert plain is model and not any(hasattr(p, "grad_sample") for p in model.parameters())


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_noisy_step_matches_slow_reference():
    """Clipping and noise together: the update is -(sum of each example's clipped gradient +
    N(0, (sigma C)^2) per coordinate) / expected batch, the noise replayed from the same seed
    in parameter order, the per-example gradients computed one customer at a time."""
    data = toy(40)
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y_purchase)
    model = tiny()
    reference = copy.deepcopy(model)
    sigma, clip = 0.7, 0.05
    priv = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        (X, y),
        PrivacySettings(noise_multiplier=sigma, max_grad_norm=clip),
        None,
        batch_size=10,
        generator=torch.Generator().manual_seed(1),
        noise_generator=torch.Generator().manual_seed(7),
        total_steps_planned=4,
        steps_now=4,
    )
    xb, yb = next(iter(priv.loader))
    before = [p.detach().clone() for p in model.parameters()]
    priv.optimizer.zero_grad()
    PURCHASE.loss()(priv.module(xb), yb).backward()
    priv.step()
    summed, factors = clipped_sum(reference, xb, yb, clip)
    assert max(factors) < 1.0  # every example clipped
    replay = torch.Generator().manual_seed(7)
    for p0, p1, g in zip(before, model.parameters(), summed, strict=True):
        noise = torch.normal(0.0, sigma * clip, size=p0.shape, generator=replay)
        torch.testing.assert_close(p1.detach() - p0, -(g + noise) / 10, atol=1e-5, rtol=0)
    priv.close()


def test_fit_dp_step_equals_clipped_adam_step():
    data = toy(12)
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y_purchase)
    model = tiny()
    reference = copy.deepcopy(model)
    clip = median_norm(reference, X, y)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, val_fraction=0)  # q = 1: everyone in
    fit(
        model,
        data,
        PURCHASE,
        cfg,
        privacy=PrivacySettings(noise_multiplier=0.0, max_grad_norm=clip),
    )
    summed, _ = clipped_sum(reference, X, y, clip)
    for p0, p1, s in zip(before, model.parameters(), summed, strict=True):
        g = s / 12  # Adam's first step is lr * g / (|g| + eps) after bias correction
        torch.testing.assert_close(
            p1.detach() - p0, -1e-3 * g / (g.abs() + 1e-8), atol=1e-5, rtol=0
        )


def test_reported_epsilon_matches_independent_accountant_and_target():
    data = toy(64)
    settings = PrivacySettings(target_epsilon=2.0)
    result = fit(
        tiny(),
        data,
        PURCHASE,
        TrainConfig(epochs=2, batch_size=16, val_fraction=0),
        privacy=settings,
    )
    delta = 1 / (10 * 64)
    noise = calibrate_noise(2.0, delta, 0.25, 8, "rdp")
    assert (result.noise_multiplier, result.delta, result.steps) == (noise, delta, 8)
    assert result.privacy_state.history == ((noise, 0.25, 8),)
    assert result.epsilon == rdp([(noise, 0.25, 8)], delta)
    assert 1.9 < result.epsilon <= 2.0
    assert [h["epsilon"] for h in result.history] == [
        rdp([(noise, 0.25, 4)], delta),
        result.epsilon,
    ]


def test_epsilon_accumulates_over_calls_then_budget_is_refused():
    data, model = toy(64), tiny()
    start = snapshot(model)
    settings = PrivacySettings(target_epsilon=3.0, accountant="rdp")
    cfg = TrainConfig(epochs=1, batch_size=16, val_fraction=0, seed=7)
    first = fit(model, data, PURCHASE, cfg, privacy=settings, planned_epochs=2)
    carried = AccountantState.from_dict(first.privacy_state.to_dict())  # as a client stores it
    second = fit(
        model, data, PURCHASE, cfg, privacy=settings, privacy_state=carried, planned_epochs=2
    )
    noise, delta = first.noise_multiplier, first.delta
    assert second.noise_multiplier == noise  # calibrated once, for both calls
    assert noise == calibrate_noise(3.0, delta, 0.25, 8, "rdp")
    both = RDPAccountant()
    both.history = [(noise, 0.25, 4)]
    for _ in range(4):
        both.step(noise_multiplier=noise, sample_rate=0.25)
    assert second.privacy_state.history == tuple(both.history) == ((noise, 0.25, 8),)
    assert second.epsilon == both.get_epsilon(delta) <= 3.0
    assert first.epsilon < second.epsilon
    # the second call drew fresh sampling and noise: from the same start it ends elsewhere
    replay = tiny()
    replay.load_state_dict(start)
    other = fit(
        replay, data, PURCHASE, cfg, privacy=settings, privacy_state=carried, planned_epochs=2
    )
    assert not same(other.state_dict, first.state_dict)
    # a third call would overspend: refused before the model is touched
    trained = snapshot(model)
    with pytest.raises(
        BudgetExhaustedError, match=r"spent so far .* would reach .* over the target 3"
    ):
        fit(model, data, PURCHASE, cfg, privacy=settings, privacy_state=second.privacy_state)
    assert same(snapshot(model), trained)
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_empty_poisson_batches_still_step_and_epoch_has_planned_steps(monkeypatch):
    empty = []
    original = PrivateTraining.empty_step
    monkeypatch.setattr(
        PrivateTraining,
        "empty_step",
        lambda self, after=None: (empty.append(1), original(self, after)),
    )
    # n = 93, batch 1: Opacus alone would take int(1 / (1 / 93)) = 92 steps
    result = fit(
        tiny(),
        toy(93),
        PURCHASE,
        TrainConfig(epochs=1, batch_size=1, val_fraction=0),
        privacy=PrivacySettings(noise_multiplier=1.0),
    )
    assert result.steps == 93 and result.privacy_state.steps == 93
    assert len(empty) > 0 and result.samples_seen < 93 + 20
    assert result.privacy_state.history == ((1.0, 1 / 93, 93),)


def test_shuffled_batches_without_poisson_sampling():
    result = fit(
        tiny(),
        toy(40),
        PURCHASE,
        TrainConfig(epochs=1, batch_size=16, val_fraction=0),
        privacy=PrivacySettings(noise_multiplier=1.0, poisson_sampling=False),
    )
    assert (result.steps, result.samples_seen) == (3, 40)
    assert result.privacy_state.history == ((1.0, 1 / 3, 3),)


def test_incompatible_model_and_settings_are_privacy_errors():
    data, cfg = toy(16), TrainConfig(epochs=1, batch_size=16, val_fraction=0)
    with pytest.raises(PrivacyError, match="dp=True"):
        fit(tiny(dp=False), data, PURCHASE, cfg, privacy=PrivacySettings(noise_multiplier=1.0))
    with pytest.raises(PrivacyError, match="cannot be combined"):
        fit(
            tiny(),
            data,
            PURCHASE,
            cfg,
            privacy=PrivacySettings(noise_multiplier=1.0, accountant="prv"),
            privacy_state=AccountantState("rdp", ((1.0, 1.0, 1),)),
        )


@pytest.mark.skipif(
    importlib.util.find_spec("torchcsprng") is not None, reason="torchcsprng installed"
)
def test_secure_mode_without_torchcsprng_says_so():
    with pytest.raises(PrivacyError, match="torchcsprng"):
        fit(
            tiny(),
            toy(16),
            PURCHASE,
            TrainConfig(epochs=1, batch_size=16, val_fraction=0),
            privacy=PrivacySettings(noise_multiplier=1.0, secure_mode=True),
        )


def test_prv_accountant_end_to_end():
    data = toy(32)
    result = fit(
        tiny(), data, PURCHASE, TrainConfig(epochs=1, batch_size=16, val_fraction=0),
        privacy=PrivacySettings(noise_multiplier=1.2, accountant="prv"),
    )  # fmt: skip
    prv = PRVAccountant()
    prv.history = [(1.2, 0.5, 2)]
    assert result.privacy_state == AccountantState("prv", ((1.2, 0.5, 2),), None)
    assert result.epsilon == prv.get_epsilon(1 / 320)


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_after_noise_hook_edits_the_privatised_gradient():
    data = toy(16)
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y_purchase)
    model = tiny()
    reference = copy.deepcopy(model)
    priv = make_private(
        model, torch.optim.SGD(model.parameters(), lr=1.0), (X, y),
        PrivacySettings(noise_multiplier=0.0, max_grad_norm=1e6), None,
        batch_size=16, generator=torch.Generator().manual_seed(0),
        total_steps_planned=1, steps_now=1,
    )  # fmt: skip
    seen = []

    def shift() -> None:  # sees the averaged gradient, and its change reaches the update
        seen.append([p.grad.clone() for p in model.parameters()])
        for p in model.parameters():
            p.grad.add_(0.5)

    xb, yb = next(iter(priv.loader))  # q = 1: all 16 customers
    before = [p.detach().clone() for p in model.parameters()]
    priv.optimizer.zero_grad()
    PURCHASE.loss()(priv.module(xb), yb).backward()
    priv.step(shift)
    summed, _ = clipped_sum(reference, xb, yb, 1e6)
    for g_seen, g_ref in zip(seen[0], summed, strict=True):
        torch.testing.assert_close(g_seen, g_ref / 16, atol=1e-6, rtol=0)
    for p0, p1, g in zip(before, model.parameters(), summed, strict=True):
        torch.testing.assert_close(p1.detach() - p0, -(g / 16 + 0.5), atol=1e-5, rtol=0)
    assert priv.state.history == ((0.0, 1.0, 1),)
    priv.close()


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_close_clears_what_an_interrupted_step_left():
    """A step that raised between forward and backward leaves captured activations; close
    removes them so a reused model's next call sees only its own batch."""
    data = toy(20)
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y_purchase)
    model = tiny()
    priv = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        (X, y),
        PrivacySettings(noise_multiplier=1.0, max_grad_norm=1.0),
        None,
        batch_size=5,
        generator=torch.Generator().manual_seed(1),
        total_steps_planned=4,
        steps_now=4,
    )
    xb, _ = next(iter(priv.loader))
    priv.module(xb)  # forward only: the backward never comes
    assert any(hasattr(m, "activations") for m in model.modules())
    plain = priv.close()
    for module in plain.modules():
        assert not hasattr(module, "activations") and not hasattr(module, "max_batch_len")
        assert getattr(module, "_stash", None) is None
