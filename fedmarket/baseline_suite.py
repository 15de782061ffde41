"""Every row of `fedmarket baselines`, in its order, for the command and ``compare_baselines``.

The command and the Python API train the same models on the same customers and must give
the same rows; they differ only in how progress is shown and when the rows are written (the
command rewrites its files after each model, so a stopped run keeps what finished). So the
rows are made here once, and each front door passes its own callbacks:

- ``bars(description, total, unit=...)`` opens one progress display for a stage and yields
  ``advance(n=1, description=None)`` (``fedmarket.progress.progress_bar`` is one); none
  shows nothing;
- ``say(line)`` takes the lines a person should read (an anchor fit skipped, and why);
- ``on_row(row)`` is called with each row as it is finished.

Module imports stay light (the CLI checks the settings before it loads anything heavy);
the models load inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.errors import ConfigError
from fedmarket.names import MODELS, RANKING_TASKS, TASKS, did_you_mean
from fedmarket.threads import ThreadChoice

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

    from fedmarket.baselines import ResultRow
    from fedmarket.data.store import SplitArrays
    from fedmarket.generative.ssgan import GANConfig

Advance = Callable[..., None]
Bars = Callable[..., AbstractContextManager[Advance]]
Say = Callable[[str], None]
OnRow = Callable[["ResultRow"], None]


@dataclass(frozen=True)
class SuiteSettings:
    """What `fedmarket baselines` trains (its options, by the same names)."""

    task: str = "purchase"
    seed: int = 0
    classical: tuple[str, ...] | None = None  # None: every registered model of the task
    generative: bool = True
    generative_models: tuple[str, ...] | None = None  # None: every GAN row
    gan: GANConfig | None = None  # None: GANConfig()
    gan_epsilon: float | None = None
    anchors: bool = True
    anchor_epsilon: float | None = None
    sequence_models: tuple[str, ...] = ()
    count_loss: str = "poisson"
    epochs: int = 20

    def params(self) -> dict[str, Any]:
        """The settings as the command's options name them: what MLflow logs for the run
        (``fedmarket.tracking.log_baselines``), the same from either front door."""
        out: dict[str, Any] = {
            "task": self.task,
            "count-loss": self.count_loss,
            "sequence-models": ",".join(self.sequence_models),
            "anchors": self.anchors,
            "anchor-epsilon": self.anchor_epsilon,
            "generative": self.generative,
            "gan-epochs": self.gan.epochs if self.gan is not None else None,
            "gan-epsilon": self.gan_epsilon,
            "epochs": self.epochs,
            "seed": self.seed,
        }
        if self.classical is not None:
            out["classical"] = ",".join(self.classical)
        if self.generative_models is not None:
            out["generative-models"] = ",".join(self.generative_models)
        return out


@dataclass(frozen=True)
class SuiteData:
    """The prepared data every row reads: the training partitions and the pooled test split."""

    data: Path
    manifest: dict[str, Any]
    train_parts: list[SplitArrays]
    test: SplitArrays
    fernet: Fernet | None = None

    @classmethod
    def load(cls, data: Path, fernet: Fernet | None = None) -> SuiteData:
        from fedmarket.data import store

        manifest = store.read_manifest(data)
        train_parts = store.load_partitions(data, "train", store.partition_ids(manifest), fernet)
        test = store.load_pooled(data, "test", fernet=fernet)
        return cls(Path(data), manifest, list(train_parts), test, fernet)

    @cached_property
    def train(self) -> SplitArrays:
        """The partitions' training customers pooled (the classical and GAN rows fit on it)."""
        from fedmarket.data.store import SplitArrays

        return SplitArrays.concat(self.train_parts)


def check_names(
    task: str, sequence_models: Sequence[str] | str, count_loss: str = "poisson"
) -> list[str]:
    """The sequence models (a list, or the CLI's comma-separated text); a clear error for an
    unknown task or model (with the closest name), or a count loss the task does not take
    (checked as the run setting count-loss), before anything is read or trained."""
    if task not in TASKS:
        raise ConfigError(
            f"--task: unknown task {task!r}; {did_you_mean(task, TASKS)}known: {', '.join(TASKS)}"
        )
    if task in RANKING_TASKS:
        raise ConfigError(
            f"--task {task}: the recommender's baselines (popularity, co-occurrence kNN, ALS) "
            f"run with `fedmarket centralised --task {task} --model gru-ncf` and in every "
            f"`fedmarket simulate` run of that task"
        )
    if isinstance(sequence_models, str):
        sequence_models = sequence_models.split(",")
    names = [m.strip() for m in sequence_models if m.strip()]
    for name in names:
        if name not in MODELS:
            raise ConfigError(
                f"--sequence-models: unknown model {name!r}; {did_you_mean(name, MODELS)}"
                f"known: {', '.join(MODELS)}"
            )
    from fedmarket.config import RunConfig

    RunConfig.from_mapping({"task": task, "count-loss": count_loss}, where="--count-loss")
    return names


def baseline_rows(
    inputs: SuiteData,
    settings: SuiteSettings,
    *,
    threads: int | ThreadChoice | None = None,
    bars: Bars | None = None,
    say: Say | None = None,
    on_row: OnRow | None = None,
) -> list[ResultRow]:
    """The classical rows, the GAN rows, the customer-base anchors (BG/NBD, Pareto/NBD), then
    one row per sequence model, as each is enabled in ``settings``. ``threads``: torch's
    threads for the sequence models (a ``ThreadChoice`` a command made and showed is told to
    ``say`` before the first of them, so the line and the threads used agree)."""
    from fedmarket.baselines import run_classical_baselines
    from fedmarket.generative.rows import run_generative_baselines

    bars = bars or _no_bars
    rows: list[ResultRow] = []

    def keep(row: ResultRow) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    with bars("classical baselines", None, unit="models") as advance:
        run_classical_baselines(
            inputs.train,
            inputs.test,
            task=settings.task,
            seed=settings.seed,
            models=settings.classical,
            progress=lambda name: advance(1, description=name),
            on_row=keep,
        )
    if settings.generative:
        with bars("generative baselines", None, unit="models") as advance:
            run_generative_baselines(
                inputs.train,
                inputs.test,
                task=settings.task,
                seed=settings.seed,
                models=settings.generative_models,
                cfg=settings.gan,
                epsilon=settings.gan_epsilon,
                progress=lambda name: advance(1, description=name),
                on_row=keep,
            )
    if settings.anchors:
        _anchor_rows(inputs, settings, bars, say, keep)
    if settings.sequence_models and say is not None and isinstance(threads, ThreadChoice):
        say(threads.describe())
    for name in settings.sequence_models:
        keep(sequence_row(inputs, name, settings, threads=threads, bars=bars))
    return rows


def sequence_row(
    inputs: SuiteData,
    model: str,
    settings: SuiteSettings,
    *,
    threads: int | ThreadChoice | None = None,
    bars: Bars | None = None,
) -> ResultRow:
    """One sequence model trained centrally on the same training customers (named MODEL-nb
    under the negative-binomial count loss)."""
    from fedmarket import centralised
    from fedmarket.baselines import ResultRow
    from fedmarket.training import TrainConfig

    cfg = TrainConfig(
        epochs=settings.epochs,
        batch_size=256,
        lr=3e-3,
        lr_schedule="cosine",
        patience=3,
        seed=settings.seed,
    )
    with (bars or _no_bars)(f"training {model}", settings.epochs, unit="epochs") as advance:
        result = centralised.run_centralised(
            inputs.data,
            model=model,
            task=settings.task,
            train_cfg=cfg,
            hparams={"count_loss": settings.count_loss},
            fernet=inputs.fernet,
            progress=advance,
            threads=threads,
        )
    metrics = {k: v for k, v in result.test.items() if isinstance(v, int | float)}
    notes, prediction = f"{result.epochs_run} epochs", result.test_scores[1]
    label = f"{model}-nb" if settings.count_loss == "negative-binomial" else model
    return ResultRow(label, "sequence", metrics, result.wall_s, notes, prediction)


def _anchor_rows(
    inputs: SuiteData, settings: SuiteSettings, bars: Bars, say: Say | None, keep: OnRow
) -> None:
    """BG/NBD and Pareto/NBD rows (pooled, federated, and federated under DP with an
    ``anchor_epsilon``), or a line saying why the data cannot have them."""
    from fedmarket.anchors import AnchorData, run_manifest_anchors

    skip = AnchorData.missing(inputs.manifest)
    if skip:
        if say is not None:
            say(f"customer-base anchors skipped: {skip}")
        return
    with bars("customer-base anchors", None, unit="fits") as advance:
        run_manifest_anchors(
            inputs.manifest,
            inputs.train_parts,
            inputs.test,
            task=settings.task,
            epsilon=settings.anchor_epsilon,
            seed=settings.seed,
            progress=lambda name: advance(1, description=name),
            on_row=keep,
        )


@contextmanager
def _no_bars(*args: object, **kwargs: object) -> Iterator[Advance]:
    yield lambda n=1, description=None: None
