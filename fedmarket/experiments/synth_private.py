"""`fedmarket synth-private`: private synthetic customers a consortium can share, with their
utility, fidelity and privacy measured on the real customers they stand for.

1. A label-conditioned DP VAE (``fedmarket.generative.dpvae``; why a VAE and not the GAN:
   its docstring) is trained federatedly over the retailers' training customers, DP-SGD at
   each retailer with its own accountant (``fedmarket.generative.federated_generator``).
2. ``customers`` synthetic customers are sampled, clipped to each feature's possible range
   (known from the manifest: no count below 0, no "days since" beyond the window), and
   written as a Parquet table: flattened event-feature sequences plus the task's label, no
   ids (``synthetic_table``). Sampling and clipping are post-processing: the table carries
   each retailer's epsilon, and nothing more.
3. Utility: each utility model (logistic regression, gradient boosting; fedmarket.baselines'
   definitions) is trained once on the real training customers and once on the synthetic
   ones, both tested on the same real held-out customers: ROC-AUC with DeLong intervals and
   the paired DeLong difference (``fedmarket.paired``).
4. Fidelity: per-feature KS and Wasserstein, correlation-matrix difference, a PNG
   (``fidelity``); the same numbers between real training and real held-out customers are
   the reference for how far two real samples already differ.
5. Privacy: each retailer's epsilon and the shared delta; and a membership-inference audit
   of the table itself, distance to closest record (DCR): a training customer of the
   generator scores ``-min distance to any synthetic row``, a held-out customer likewise,
   equal numbers per retailer (``fedmarket.privacy.membership``'s sampling and statistics:
   AUC with its DeLong interval, TPR at low FPR, an empirical epsilon bound). The
   loss-threshold audit of ``fedmarket audit`` needs a classifier's loss; an analyst holding
   the table holds only rows, so DCR is the attack that fits what is shared.

The normalisation statistics in the manifest (training customers' mean and std, computed by
`data prepare` without DP) are shared metadata outside this guarantee; the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from sklearn.neighbors import NearestNeighbors

from fedmarket.baselines import evaluate_predictions, fit_and_predict
from fedmarket.checks import integer, number
from fedmarket.data import store
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.errors import ConfigError, DataError
from fedmarket.experiments.synth_report import render_markdown
from fedmarket.generative.dpvae import GeneratorConfig
from fedmarket.generative.federated_generator import (
    FederatedGenerator,
    RetailerRows,
    train_federated_generator,
)
from fedmarket.generative.fidelity import fidelity, fidelity_figure
from fedmarket.generative.synthetic_table import (
    clip_to_bounds,
    column_names,
    feature_bounds,
    flatten,
    synthetic_frame,
    write_table,
)
from fedmarket.names import BINARY_TASKS, did_you_mean
from fedmarket.paired import paired_delong
from fedmarket.privacy.membership import attack_metrics, membership_samples
from fedmarket.rundir import RunDir, write_json
from fedmarket.tasks import get_task

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

TABLE: Final[str] = "synthetic_customers.parquet"
REPORT_JSON: Final[str] = "synth_report.json"
REPORT_MD: Final[str] = "synth_report.md"
FIGURE: Final[str] = "synth_fidelity.png"
RUN_SUBDIR: Final[str] = "synthetic"  # RUN_DIR/synthetic when given a run directory
UTILITY_MODELS: Final[tuple[str, ...]] = ("logistic-regression", "gradient-boosting")
DCR_ATTACK: Final[str] = "distance-to-closest-record"


@dataclass(frozen=True)
class SynthSettings:
    """What one `synth-private` run asks for; checked before any data is read."""

    task: str = "purchase"
    epsilon: float = 4.0
    customers: int | None = None  # None: as many as the real training customers
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)

    def __post_init__(self) -> None:
        if self.task not in BINARY_TASKS:
            raise ConfigError(
                f"synth-private: task {self.task!r} is not a 0/1 task; "
                f"{did_you_mean(self.task, BINARY_TASKS)}use one of {', '.join(BINARY_TASKS)}"
            )
        number("synth-private: epsilon", self.epsilon, above=0.0)
        if self.customers is not None:
            integer("synth-private: customers", self.customers, at_least=2)
        integer("synth-private: seed", self.seed, at_least=0)


def resolve_inputs(
    run_dir: Path | None, data: Path | None, out: Path | None, *, overwrite: bool = False
) -> tuple[Path, Path, str | None]:
    """(prepared data, output directory, the run's task or None) from RUN_DIR or --data; an
    earlier table in the output is refused here, before any training, unless ``overwrite``."""
    if (run_dir is None) == (data is None):
        raise ConfigError("synth-private: give a run directory or --data PREPARED (one of them)")
    if run_dir is not None:
        cfg = RunDir(Path(run_dir)).read_config()  # ConfigError where it is not a run
        out_dir = Path(out) if out else Path(run_dir) / RUN_SUBDIR
        return Path(cfg.data_dir), check_out(out_dir, overwrite), cfg.task
    if out is None:
        raise ConfigError("synth-private: with --data, say where to write with --out DIR")
    return Path(data), check_out(Path(out), overwrite), None  # type: ignore[arg-type]


def check_out(out: Path, overwrite: bool) -> Path:
    """``out`` where it can take the table: a shared table is not silently replaced (the rule
    of ``fedmarket export``'s --out, on the table this command writes)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"synth-private: --out {out} is a file; give a directory")
    if (out / TABLE).exists() and not overwrite:
        raise ConfigError(
            f"synth-private: {out} already holds {TABLE} from an earlier run; pass --overwrite "
            "to replace it, or choose another --out"
        )
    return out


def _flat_labelled(split: store.SplitArrays, task: str) -> tuple[np.ndarray, np.ndarray]:
    return flatten(split.X), np.asarray(get_task(task).targets(split), dtype=np.float64)


def synth_private(
    data_dir: Path,
    out: Path,
    settings: SynthSettings,
    *,
    key_file: Path | None = None,
    advance: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train, sample, write the table, measure; returns the report (also written as JSON and
    Markdown next to the table). ``advance()`` is called after each federated round."""
    data_dir, out = Path(data_dir), Path(out)
    manifest = store.read_manifest(data_dir)
    fernet = prepared_data_fernet(data_dir, key_file, outside=[out])
    ids = store.partition_ids(manifest)
    names = manifest["feature_names"]
    parts = store.load_partitions(data_dir, "train", ids, fernet, mmap=False)
    test = store.load_pooled(data_dir, "test", ids, fernet)
    n_steps = int(parts[0].X.shape[1])
    rows = _retailer_rows(manifest, parts, settings.task)
    fit = train_federated_generator(
        rows, settings.generator, target_epsilon=settings.epsilon, seed=settings.seed,
        advance=advance,
    )  # fmt: skip
    real_x = np.concatenate([r.x for r in rows])
    real_y = np.concatenate([r.y for r in rows])
    n_synth = settings.customers or len(real_x)
    syn_x, syn_y = fit.sample(n_synth, seed=settings.seed + 1)
    bounds = feature_bounds(manifest)
    if bounds is not None:  # post-processing with the manifest's public metadata
        syn_x = clip_to_bounds(syn_x, bounds, n_steps)
    out.mkdir(parents=True, exist_ok=True)
    write_table(synthetic_frame(syn_x, syn_y, names, n_steps, settings.task), out / TABLE)
    test_x, test_y = _flat_labelled(test, settings.task)
    report: dict[str, Any] = {
        "data_dir": str(data_dir),
        "task": settings.task,
        "seed": settings.seed,
        "generator": {"model": "label-conditioned DP VAE", **asdict(settings.generator)},
        "n_real_train": len(real_x),
        "n_real_test": len(test_x),
        "n_synthetic": n_synth,
        "clipped_to_feature_ranges": bounds is not None,
        "columns": len(names) * n_steps + 1,
        "table": TABLE,
        "utility": utility(real_x, real_y, syn_x, syn_y, test_x, test_y, settings),
        "fidelity": fidelity_report(real_x, real_y, syn_x, syn_y, test_x, test_y, names),
        "privacy": privacy_report(fit, data_dir, syn_x, settings, fernet),
        "figure": FIGURE,
    }
    fidelity_figure(real_x, syn_x, names, n_steps, out / FIGURE)
    write_json(out / REPORT_JSON, report)
    (out / REPORT_MD).write_text(render_markdown(report))
    return report


def _retailer_rows(
    manifest: store.Manifest, parts: list[store.SplitArrays], task: str
) -> list[RetailerRows]:
    """Each partition's training customers, named by its retailer where it has one."""
    rows = []
    for entry, part in zip(manifest["partitions"], parts, strict=True):
        x, y = _flat_labelled(part, task)
        rows.append(RetailerRows(str(entry.get("retailer", f"partition {entry['id']}")), x, y))
    return rows


def utility(
    real_x: np.ndarray,
    real_y: np.ndarray,
    syn_x: np.ndarray,
    syn_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    settings: SynthSettings,
) -> dict[str, Any]:
    """Per utility model: test metrics trained on real and on synthetic, the paired
    difference of ROC-AUC (synthetic - real) on the same test customers."""
    result: dict[str, Any] = {}
    for name in UTILITY_MODELS:
        if np.unique(syn_y).size < 2:
            result[name] = {"skipped": "the synthetic table holds one class only"}
            continue
        scores, entry = {}, {}
        for source, (x, y) in {"real": (real_x, real_y), "synthetic": (syn_x, syn_y)}.items():
            scores[source], _ = fit_and_predict(settings.task, name, x, y, test_x, settings.seed)
            metrics = evaluate_predictions(settings.task, test_y, scores[source])
            keys = ("roc_auc", "roc_auc_low", "roc_auc_high", "pr_auc", "pr_auc_low",
                    "pr_auc_high", "n_positive", "n_negative")  # fmt: skip
            entry[source] = {k: metrics[k] for k in keys if k in metrics}
        entry["difference"] = paired_delong(test_y, scores["synthetic"], scores["real"]).to_dict()
        result[name] = entry
    return result


def fidelity_report(
    real_x: np.ndarray,
    real_y: np.ndarray,
    syn_x: np.ndarray,
    syn_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    names: list[str],
) -> dict[str, Any]:
    """Synthetic against real training customers, and the real-vs-real reference."""
    columns = column_names(names, real_x.shape[1] // len(names))
    synthetic = fidelity(real_x, syn_x, columns)
    reference = fidelity(real_x, test_x, columns)
    return {
        "synthetic_vs_real_train": synthetic.to_dict(),
        "real_test_vs_real_train": reference.summary(),
        "label_rate": {
            "real_train": float(real_y.mean()),
            "real_test": float(test_y.mean()),
            "synthetic": float(syn_y.mean()),
        },
    }


def privacy_report(
    fit: FederatedGenerator,
    data_dir: Path,
    syn_x: np.ndarray,
    settings: SynthSettings,
    fernet: Fernet | None,
) -> dict[str, Any]:
    """Each retailer's epsilon, the delta, and the DCR membership audit of the table."""
    members, nonmembers = membership_samples(data_dir, seed=settings.seed, fernet=fernet)
    nn = NearestNeighbors(n_neighbors=1).fit(syn_x)
    distances = [nn.kneighbors(flatten(s.X))[0][:, 0] for s in (members, nonmembers)]
    if any(len(d) < 2 for d in distances):
        raise DataError("synth-private: the audit needs two training and two test customers")
    is_member = np.concatenate([np.ones(len(distances[0]), bool), np.zeros(len(distances[1]))])
    audit = attack_metrics(
        -np.concatenate(distances), is_member, delta=fit.delta, seed=settings.seed,
        attack=DCR_ATTACK,
    )  # fmt: skip
    return {
        "unit": "customer",
        "target_epsilon": fit.target_epsilon,
        "delta": fit.delta,
        "epsilon_max": max(r.epsilon for r in fit.retailers),
        "retailers": [asdict(r) for r in fit.retailers],
        "audit": {
            **audit.to_dict(),
            "median_dcr_members": float(np.median(distances[0])),
            "median_dcr_nonmembers": float(np.median(distances[1])),
        },
    }
