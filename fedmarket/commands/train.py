"""Bodies of `fedmarket centralised` and `fedmarket baselines`."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from fedmarket.progress import console, progress_bar


def _privacy(epsilon, noise_multiplier, max_grad_norm, delta, accountant):
    from fedmarket.privacy.config import PrivacySettings

    if epsilon is None and noise_multiplier is None:
        return None
    return PrivacySettings(
        target_epsilon=epsilon,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        delta=delta,
        accountant=accountant,
    )


def centralised(
    data: Path,
    out: Path,
    model: str,
    task: str,
    epochs: int,
    batch_size: int,
    lr: float,
    lr_schedule: str,
    patience: int | None,
    epsilon: float | None,
    noise_multiplier: float | None,
    max_grad_norm: float,
    delta: float | None,
    accountant: str,
    seed: int,
) -> None:
    from fedmarket.centralised import run_centralised, write_centralised
    from fedmarket.training import TrainConfig

    privacy = _privacy(epsilon, noise_multiplier, max_grad_norm, delta, accountant)
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=lr_schedule,
        patience=patience,
        seed=seed,
    )
    with progress_bar(f"training {model}", epochs) as advance:
        result = run_centralised(
            data, model=model, task=task, train_cfg=cfg, privacy=privacy, progress=advance
        )
    paths = write_centralised(result, out)
    table = Table(title=f"{model} / {task}: test metrics ({result.n_test:,} customers)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.test.items():
        if isinstance(value, int | float):
            table.add_row(key, f"{value:.4f}")
    console.print(table)
    if result.epsilon is not None:
        console.print(
            f"DP-SGD: epsilon = {result.epsilon:.3f}, delta = {result.delta:.3g}, "
            f"noise multiplier = {result.noise_multiplier:.3f}, clip = {max_grad_norm}"
        )
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")


def baselines(
    data: Path, out: Path, task: str, sequence_models: str, epochs: int, seed: int
) -> None:
    from fedmarket.baselines import ResultRow, render_table, run_classical_baselines, write_results
    from fedmarket.centralised import run_centralised
    from fedmarket.data import store
    from fedmarket.training import TrainConfig

    train, test = store.load_pooled(data, "train"), store.load_pooled(data, "test")
    with progress_bar("classical baselines", None) as advance:
        rows = run_classical_baselines(
            train, test, task=task, seed=seed, progress=lambda name: advance(1, description=name)
        )
    for name in [m.strip() for m in sequence_models.split(",") if m.strip()]:
        cfg = TrainConfig(
            epochs=epochs, batch_size=256, lr=3e-3, lr_schedule="cosine", patience=3, seed=seed
        )
        with progress_bar(f"training {name}", epochs) as advance:
            result = run_centralised(data, model=name, task=task, train_cfg=cfg, progress=advance)
        metrics = {k: v for k, v in result.test.items() if isinstance(v, int | float)}
        rows.append(
            ResultRow(
                model=name,
                family="sequence",
                metrics=metrics,
                fit_seconds=result.wall_s,
                notes=f"{result.epochs_run} epochs",
            )
        )
    console.print(render_table(rows, task))
    csv_path, json_path = write_results(rows, out)
    console.print(f"wrote {csv_path} and {json_path}")
