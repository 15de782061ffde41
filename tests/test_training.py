import math

import numpy as np
import pytest
import torch

from fedmarket.data.store import SplitArrays
from fedmarket.errors import ConfigError, DataError
from fedmarket.models import build_model
from fedmarket.privacy import AccountantState, PrivacySettings
from fedmarket.tasks import get_task
from fedmarket.training import TrainConfig, evaluate, fit, predict, resolve_device

T, F = 8, 11
PURCHASE, COUNT = get_task("purchase"), get_task("purchase-count")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The test machine has two shared cores; one thread is faster and steadier here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy(n: int, seed: int = 0, flip: bool = False) -> SplitArrays:
    """Buyers are the customers whose last two steps score positive: learnable by an LSTM."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    signal = X[:, -1, 0] + X[:, -2, 1]
    y = (signal > 0).astype(np.float32)
    if flip:
        y = 1 - y
    count = np.clip(np.round(np.exp(0.8 * signal)), 0, None).astype(np.float32)
    return SplitArrays(
        X, np.zeros((n, 2), np.float32), y, count, np.array([f"c{i}" for i in range(n)])
    )


def small(dp: bool = False, seed: int = 0, task: str = "purchase", **hp) -> torch.nn.Module:
    hp = {"hidden_size": 8, "num_layers": 1, **hp}
    return build_model("lstm", F, task=task, dp=dp, seed=seed, **hp)


def same_state(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 2.0),
        ("batch_size", 0),
        ("lr", 0.0),
        ("lr", math.nan),
        ("weight_decay", -1e-4),
        ("lr_schedule", "linear"),
        ("patience", 0),
        ("val_fraction", 1.0),
        ("val_fraction", -0.1),
        ("seed", -1),
        ("seed", True),
        ("device", "gpu7"),
    ],
)
def test_train_config_rejects_bad_fields(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_train_config_defaults_and_device():
    cfg = TrainConfig()
    assert (cfg.batch_size, cfg.lr, cfg.lr_schedule, cfg.patience) == (256, 1e-3, "none", None)
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")


def test_fit_is_deterministic_and_leaves_global_rng_alone():
    data, cfg = toy(96), TrainConfig(epochs=2, batch_size=16, seed=3, val_fraction=0.25)
    before = torch.get_rng_state()
    first = fit(small(), data, PURCHASE, cfg)
    assert torch.equal(before, torch.get_rng_state())
    again = fit(small(), data, PURCHASE, cfg)
    other = fit(
        small(), data, PURCHASE, TrainConfig(epochs=2, batch_size=16, seed=4, val_fraction=0.25)
    )
    assert same_state(first.state_dict, again.state_dict)
    assert first.history == again.history
    assert not same_state(first.state_dict, other.state_dict)
    assert (first.n_train, first.steps, first.samples_seen) == (72, 2 * 5, 2 * 72)


def test_loss_decreases_on_learnable_problem():
    model = small(hidden_size=16)
    result = fit(model, toy(256), PURCHASE, TrainConfig(epochs=6, batch_size=32, lr=1e-2))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.75 * losses[0]
    assert result.history[-1]["val_roc_auc"] > 0.85
    assert result.epsilon is None and result.privacy_state is None
    assert result.best_epoch == result.epochs_run == 6
    assert set(result.history[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_roc_auc",
        "lr",
        "epsilon",
    }


def test_count_task_learns():
    model = small(task="purchase-count", hidden_size=16)
    cfg = TrainConfig(epochs=5, batch_size=32, lr=1e-2)
    result = fit(model, toy(256), COUNT, cfg)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert "val_rmse" in result.history[-1]


def test_early_stopping_stops_and_restores_best():
    train, val = toy(128), toy(64, seed=1, flip=True)  # the better it fits, the worse on val
    cfg = TrainConfig(epochs=15, batch_size=16, lr=1e-2, patience=2)
    model = small()
    result = fit(model, train, PURCHASE, cfg, val=val)
    val_losses = [h["val_loss"] for h in result.history]
    assert result.epochs_run < 15
    assert result.best_epoch == 1 + int(np.argmin(val_losses))
    assert result.epochs_run == result.best_epoch + 2
    assert same_state(model.state_dict(), result.state_dict)
    # the kept weights are exactly those after best_epoch epochs of the same run
    replay = fit(
        small(),
        train,
        PURCHASE,
        TrainConfig(epochs=result.best_epoch, batch_size=16, lr=1e-2),
        val=val,
    )
    assert same_state(replay.state_dict, result.state_dict)


def test_lr_schedules_follow_torch_formulas():
    data = toy(32)
    cosine = fit(
        small(), data, PURCHASE, TrainConfig(epochs=4, batch_size=32, lr=0.1, lr_schedule="cosine")
    )
    expected = [0.05 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose([h["lr"] for h in cosine.history], expected, rtol=1e-9)
    step = fit(
        small(), data, PURCHASE, TrainConfig(epochs=6, batch_size=32, lr=0.1, lr_schedule="step")
    )
    np.testing.assert_allclose([h["lr"] for h in step.history], [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3])


def test_progress_is_called_once_per_epoch():
    calls = []
    fit(
        small(),
        toy(32),
        PURCHASE,
        TrainConfig(epochs=3, batch_size=32),
        progress=lambda n=1, description=None: calls.append((n, description)),
    )
    assert calls == [(1, "epoch 1/3"), (1, "epoch 2/3"), (1, "epoch 3/3")]


def test_bad_input_is_reported():
    data = toy(32)
    with pytest.raises(ConfigError, match="patience needs validation"):
        fit(small(), data, PURCHASE, TrainConfig(epochs=1, patience=1, val_fraction=0))
    with pytest.raises(ConfigError, match="privacy_state given without"):
        fit(small(), data, PURCHASE, TrainConfig(epochs=1), privacy_state=AccountantState())
    X = data.X.copy()
    X[5, 2, 3] = np.nan
    bad = SplitArrays(X, data.agg, data.y_purchase, data.y_count, data.customer)
    with pytest.raises(DataError, match="row 5"):
        fit(small(), bad, PURCHASE, TrainConfig(epochs=1, val_fraction=0))
    flat = SplitArrays(data.X[:, 0], data.agg, data.y_purchase, data.y_count, data.customer)
    with pytest.raises(DataError, match="time steps"):
        fit(small(), flat, PURCHASE, TrainConfig(epochs=1, val_fraction=0))
    with pytest.raises(DataError, match="leaves none"):
        fit(small(), data.take(np.arange(1)), PURCHASE, TrainConfig(epochs=1, val_fraction=0.5))


def test_predict_and_evaluate_match_direct_computation():
    data, model = toy(64), small()
    fit(model, data, PURCHASE, TrainConfig(epochs=1, batch_size=16, val_fraction=0))
    model.eval()
    with torch.no_grad():
        score = model(torch.from_numpy(data.X))
    prob = predict(model, data.X, PURCHASE, batch_size=10, device="cpu")
    np.testing.assert_allclose(prob, torch.sigmoid(score).numpy(), rtol=1e-6)
    metrics = evaluate(model, data, PURCHASE, batch_size=7, device="cpu")
    expected = get_task("purchase").metrics(data.y_purchase, prob)
    assert metrics["roc_auc"] == pytest.approx(expected["roc_auc"])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        score, torch.from_numpy(data.y_purchase)
    )
    assert metrics["loss"] == pytest.approx(float(bce), rel=1e-6)
    counts = small(task="purchase-count")
    with torch.no_grad():
        rate = torch.exp(counts.eval()(torch.from_numpy(data.X)))
    np.testing.assert_allclose(
        predict(counts, data.X, COUNT, device="cpu"), rate.numpy(), rtol=1e-6
    )


def test_dp_fit_is_deterministic_and_loads_into_fast_model():
    data = toy(64)
    cfg = TrainConfig(epochs=1, batch_size=16, seed=5, val_fraction=0)
    settings = PrivacySettings(noise_multiplier=1.0)
    first = fit(small(dp=True), data, PURCHASE, cfg, privacy=settings)
    again = fit(small(dp=True), data, PURCHASE, cfg, privacy=settings)
    assert same_state(first.state_dict, again.state_dict)
    assert not same_state(first.state_dict, small(dp=True).state_dict())
    fast = small(dp=False)
    assert list(fast.state_dict()) == list(first.state_dict)
    fast.load_state_dict(first.state_dict, strict=True)
    assert not any(k.startswith("_module.") for k in first.state_dict)


def _drift(before: dict, after: dict) -> float:
    return float(
        sum(((after[k] - before[k]) ** 2).sum() for k in before if before[k].is_floating_point())
    )


@pytest.mark.parametrize("dp", [False, True])
def test_proximal_term_keeps_weights_near_the_start(dp):
    data, cfg = toy(64), TrainConfig(epochs=4, batch_size=16, lr=1e-2, val_fraction=0)
    privacy = PrivacySettings(noise_multiplier=0.0) if dp else None
    start = small(dp=dp).state_dict()
    free = fit(small(dp=dp), data, PURCHASE, cfg, privacy=privacy)
    held = fit(small(dp=dp), data, PURCHASE, cfg, privacy=privacy, proximal_mu=50.0)
    assert _drift(start, held.state_dict) < 0.25 * _drift(start, free.state_dict)
    with pytest.raises(ConfigError, match="proximal_mu"):
        fit(small(dp=dp), data, PURCHASE, cfg, privacy=privacy, proximal_mu=-1.0)


def test_proximal_gradient_pulls_toward_the_anchor_by_hand():
    """(lam / 2) ||w - w0||^2 has gradient lam (w - w0): w = (3, -1, 0.5), w0 = (1, 1, 0.5),
    lam = 0.1 -> (0.2, -0.2, 0); the bias, at 2 against 0, adds 0.2. The penalty itself,
    0.05 (4 + 4 + 0 + 4) = 0.6, is what autograd of the same expression gives."""
    from fedmarket.training import proximal_gradient

    net = torch.nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0, -1.0, 0.5]]))
        net.bias.fill_(2.0)
    anchor = {"weight": torch.tensor([[1.0, 1.0, 0.5]]), "bias": torch.tensor([0.0])}
    penalty = 0.1 / 2 * sum(((p - anchor[n]) ** 2).sum() for n, p in net.named_parameters())
    assert float(penalty.detach()) == pytest.approx(0.6)
    penalty.backward()
    autograd = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    proximal_gradient(net, 0.1, anchor)()
    assert net.weight.grad[0].tolist() == pytest.approx([0.2, -0.2, 0.0])
    assert net.bias.grad.tolist() == pytest.approx([0.2])
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, autograd[n])
    # without an anchor the pull is toward the weights held when the hook was made
    hook = proximal_gradient(net, 0.1)
    with torch.no_grad():
        net.bias.fill_(3.0)
    net.bias.grad.zero_()
    hook()
    assert net.bias.grad.tolist() == pytest.approx([0.1])
    assert proximal_gradient(net, 0.0, anchor) is None
    with pytest.raises(ConfigError, match="anchor lacks parameter"):
        proximal_gradient(net, 0.1, {"weight": anchor["weight"]})


def test_fit_with_a_strong_anchor_stays_near_it():
    """Ditto's personal model, started away from the global one, ends nearer it the larger
    lambda is."""
    train = toy(256)
    anchor = small(seed=1).state_dict()
    distances = []
    for lam in (0.0, 50.0):
        net = small(seed=0)
        fit(net, train, get_task("purchase"), TrainConfig(epochs=3, batch_size=32, lr=0.01, seed=0),
            proximal_mu=lam, proximal_anchor=anchor)  # fmt: skip
        state = net.state_dict()
        distances.append(sum(float(((state[k] - anchor[k]) ** 2).sum()) for k in anchor))
    assert distances[1] < 0.5 * distances[0]
