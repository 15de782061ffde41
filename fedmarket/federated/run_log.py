"""The server's record of a federated run: rounds, checkpoints, global test metrics.

``RunLog`` receives each round's reply summary from the recording strategy and the
aggregated weights, evaluates the global model on the pooled test customers when the
server has them (simulation), and at the end of every round commits it: the checkpoint,
the round's row and the commit marker become durable together (``fedmarket.rundir``), so a
crash costs at most the round in flight and a resume continues exactly where the directory
is. At the end it writes ``federated.json``. It sees only what clients sent: weights and
aggregates.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fedmarket.aggregation import nodes_per_round
from fedmarket.config import RunConfig
from fedmarket.data import store
from fedmarket.errors import ConfigError, RunStopped
from fedmarket.metrics import interval_keys
from fedmarket.models import build_model
from fedmarket.names import PRODUCTS_TASK, RANKING_TASK
from fedmarket.predictions import Predictions, pooled_partitions, write_predictions
from fedmarket.privacy.central import central_epsilon, default_central_delta
from fedmarket.recommend.data import RecSplit, load_rec_partitions, model_inputs
from fedmarket.rundir import RunDir, write_json
from fedmarket.tasks import get_task
from fedmarket.training import predict

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

log = logging.getLogger("fedmarket")
ROUND_FIELDS = (
    "round",
    "sent",
    "ok",
    "failed",
    "declined",
    "timed_out",
    "eval_ok",
    "eval_failed",
    "train_loss",
    "epsilon_max",
    "elapsed_s",
    # where the round's time went (see fedmarket.experiments.bench): replies awaited, aggregation,
    # the global evaluation, and the clients' own training time (sum and slowest)
    "train_wait_s",
    "aggregate_s",
    "server_eval_s",
    "client_train_s_sum",
    "client_train_s_max",
    "client_gpu_peak_mb",
)
TEST_KEYS = ("roc_auc", "pr_auc", "f1", "accuracy", "log_loss", "lift_at_10", "mae", "rmse", "r2")
# The server's pooled test set also has the intervals (test_roc_auc_low, ...); the clients'
# averaged metrics (fed_*) never do: a mean of intervals is no interval.
TEST_INTERVAL_KEYS = tuple(k for key in ("roc_auc", "pr_auc") for k in interval_keys(key))


class RunLog:
    """Implements the strategies' RoundRecorder and Flower's ``evaluate_fn``."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        data_dir: Path | None,
        *,
        num_nodes: int,
        round_offset: int = 0,
        fernet: Fernet | None = None,
        stop_requested: Callable[[], bool] | None = None,
        progress: Callable[..., None] | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.offset = cfg, RunDir(run_dir), round_offset
        self.num_nodes = num_nodes
        self.stop_requested = stop_requested  # asked at every round's end, after its commit
        self.progress = progress  # advance(1) at every round's commit (a progress bar)
        self.started = time.perf_counter()
        self.task = get_task(cfg.task)
        self.test = None
        self.n_features = None
        self.data_options: dict[str, Any] = {}  # what the data adds to the model's arguments
        self.n_train_total = None
        self.test_partition: np.ndarray | None = None  # each pooled test customer's partition
        self.partition_ids: list[int] = []  # the partitions expected to take part
        self.labels: dict[str, Any] | None = None  # the manifest's: what the labels count
        if data_dir is not None:
            manifest = store.read_manifest(data_dir)
            self.n_features, self.data_options = model_inputs(manifest, cfg.task)
            self.n_train_total = store.n_train_total(manifest)
            self.partition_ids = store.partition_ids(manifest)
            self.labels = manifest.get("labels")
            if cfg.task == PRODUCTS_TASK:
                # no server-side test: the global model is the shared part only, and each
                # retailer's product table never leaves it (the clients evaluate)
                self.test = None
            elif cfg.task == RANKING_TASK:  # the recommender's split (fedmarket.recommend)
                self.test = RecSplit.concat(load_rec_partitions(data_dir, "test", fernet))
                self.test_partition = self.test.partition
            else:
                self.test = store.load_pooled(data_dir, "test", fernet=fernet)
                self.test_partition = pooled_partitions(data_dir, "test", len(self.test))
        self.rows: dict[int, dict[str, Any]] = {}
        self.epsilon_by_client: dict[int, float] = {}
        # rounds in which each partition's update was aggregated (a client that never
        # trains is named in the report instead of disappearing from an average)
        self.participation: dict[int, int] = {}
        self.final_test: dict[str, Any] | None = None
        self.rounds_done = round_offset  # the last round whose aggregate is the model
        self.skipped: list[int] = []  # rounds not aggregated: too few valid replies
        self.weights_file: str | None = None
        self.previous_wall_s = 0.0  # time spent by the processes before a resume
        self._pending: tuple[int, dict[str, torch.Tensor]] | None = None
        self._scores: Predictions | None = None  # saved at the next commit
        self.run_dir.checkpoints.mkdir(parents=True, exist_ok=True)
        if round_offset > 0:
            self._restore()

    # --- RoundRecorder -------------------------------------------------------------------
    def on_train(self, summary: Any, arrays: Any, metrics: Any) -> None:
        rnd = self.offset + summary.server_round
        row = self._row(rnd)
        row.update(
            sent=summary.sent,
            ok=summary.ok,
            failed=summary.failed,
            declined=summary.declined,
            timed_out=summary.timed_out,
        )
        for client in summary.per_client:
            if "epsilon" in client and "partition-id" in client:
                self.epsilon_by_client[int(client["partition-id"])] = float(client["epsilon"])
            if "partition-id" in client and arrays is not None:
                pid = int(client["partition-id"])
                self.participation[pid] = self.participation.get(pid, 0) + 1
        if metrics is not None and "train-loss" in metrics:
            row["train_loss"] = float(metrics["train-loss"])
        row["epsilon_max"] = self._epsilon_max(rnd)
        row.update(_timings(summary))
        for node_id, code, reason in summary.failures:
            log.warning("round %d: client %s failed (code %s): %s", rnd, node_id, code, reason)
        if arrays is not None:  # saved with the round's row at the end of the round
            self._pending = (rnd, arrays.to_torch_state_dict())
            self.rounds_done = rnd
        else:
            self.skipped.append(rnd)
        if self.epsilon_by_client:  # the round's line has the maximum; the file keeps each
            log.debug(
                "round %d: epsilon per client %s",
                rnd,
                {k: round(v, 3) for k, v in sorted(self.epsilon_by_client.items())},
            )

    def on_evaluate(self, summary: Any, metrics: Any) -> None:
        row = self._row(self.offset + summary.server_round)
        row.update(eval_ok=summary.ok, eval_failed=summary.failed + summary.timed_out)
        for key, value in (metrics or {}).items():
            if key in TEST_KEYS:
                row[f"fed_{key}"] = float(value)

    # --- evaluate_fn ---------------------------------------------------------------------
    def evaluate_global(self, server_round: int, arrays: Any) -> dict[str, float] | None:
        """Global model on the pooled test customers (simulation only); writes the round's row.

        With ``evaluate-every = k`` only every k-th round and the last one are evaluated (at
        many retailers the pooled test set makes the evaluation the largest part of a
        round); the other rows are written without test metrics.
        """
        rnd = self.offset + server_round
        if server_round == 0 and self.offset > 0:
            return None  # a resume: the restored model was evaluated when it was committed
        report = None
        started = time.perf_counter()
        if self.test is not None and len(arrays.keys()) > 0 and self.evaluates(rnd):
            report = self.test_metrics(arrays.to_torch_state_dict())
            self.final_test = report
        if server_round > 0:
            row = self._row(rnd)
            row["server_eval_s"] = time.perf_counter() - started
            row["elapsed_s"] = self.wall_s()
            server_keys = (*TEST_KEYS, *TEST_INTERVAL_KEYS)
            row.update({f"test_{k}": report[k] for k in server_keys if report and k in report})
            self.commit(rnd)
            self._log_round(rnd, report)
            if self.progress is not None:
                self.progress(1)
            if self.stop_requested is not None and self.stop_requested():
                raise RunStopped(self.run_dir.path, rnd)
        if report is None:
            return None
        return {
            k: float(v) for k, v in report.items() if isinstance(v, int | float) and k in TEST_KEYS
        }

    def evaluates(self, rnd: int) -> bool:
        every = self.cfg.evaluate_every
        return rnd == 0 or rnd % every == 0 or rnd >= self.cfg.num_server_rounds

    def test_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, Any]:
        model = build_model(
            self.cfg.model,
            self.n_features,
            task=self.cfg.task,
            dp=False,
            **self.cfg.model_options(),
            **self.data_options,
        )
        model.load_state_dict(weights, strict=True)
        y = self.task.targets(self.test)
        score = predict(model, self.test.X, self.task)
        if self.task.target_ndim == 2:  # a ranking: its comparison is the run's recommend.json
            return self.task.report(y, score)
        self._scores = Predictions(
            task=self.task.name,
            model=self.cfg.model,
            partition=self.test_partition,
            customer=np.asarray(self.test.customer).astype(str),
            label=y,
            score=score,
        )
        return self.task.report(y, score)

    # --- the commit point and results ---------------------------------------------------
    def commit(self, rnd: int, *, wall_s: float | None = None) -> None:
        """Make round ``rnd`` durable: its checkpoint (if it aggregated), then every row up
        to it, then the marker that says the directory is at ``rnd``."""
        if self._pending is not None:
            done, weights = self._pending
            self.weights_file = self.run_dir.save_checkpoint(done, weights).name
            self._pending = None
        if self._scores is not None:  # behind final_test: the gains figure, `fedmarket compare`
            write_predictions(self.run_dir.test_scores, self._scores)
            self._scores = None
        fields = [
            *ROUND_FIELDS,
            *(f"{p}_{k}" for p in ("test", "fed") for k in TEST_KEYS),
            *(f"test_{k}" for k in TEST_INTERVAL_KEYS),
        ]
        self.run_dir.write_rounds([self.rows[r] for r in sorted(self.rows) if r <= rnd], fields)
        self.run_dir.commit(
            {
                "round": rnd,
                "path": self.weights_file,
                "model_round": self.rounds_done,
                "epsilon_by_client": {str(k): v for k, v in self.epsilon_by_client.items()},
                "participation": {str(k): v for k, v in sorted(self.participation.items())},
                "skipped": self.skipped,
                "wall_s": self.wall_s() if wall_s is None else wall_s,
                "final_test": self.final_test,
                # Flower draws central-DP noise and client samples from the global generators:
                # a resume restores them, so it draws what the uninterrupted run would have
                "rng": global_rng_state(),
            }
        )

    def wall_s(self) -> float:
        """Seconds the run has taken so far, over every process that worked on it."""
        return self.previous_wall_s + time.perf_counter() - self.started

    def epsilon_summary(self) -> dict[str, Any]:
        if self.cfg.dp == "client":
            if not self.epsilon_by_client:
                return {"max": None, "per_client": {}, "unit": "customer"}
            return {
                "max": max(self.epsilon_by_client.values()),
                "unit": "customer",
                "per_client": {str(k): v for k, v in sorted(self.epsilon_by_client.items())},
            }
        if self.cfg.dp == "central":
            eps = self._central_epsilon(self.rounds_done)
            return {
                "max": eps,
                "per_client": None,
                "unit": "retailer",
                "delta": self.central_delta(),
            }
        # the same keys without DP, so summary.json readers need no special case
        return {"max": None, "per_client": None, "unit": None}

    def central_delta(self) -> float:
        return self.cfg.delta if self.cfg.delta > 0 else default_central_delta(self.num_nodes)

    def finish(self, wall_s: float | None = None) -> dict[str, Any]:
        """federated.json; ``wall_s`` is this process's time, the resumed ones' are added.

        The last round is committed once more first: what arrived after its commit (the
        clients' evaluation, on the SecAgg+ path) and a model not yet saved are kept.
        """
        total_s = self.previous_wall_s + wall_s if wall_s is not None else self.wall_s()
        if self.rows:
            self.commit(max(self.rows), wall_s=total_s)
        result = {
            "test": self.final_test,
            "rounds": self.rounds_done,
            "wall_s": total_s,
            "participation": self.participation_summary(),
            "skipped_rounds": list(self.skipped),
            "epsilon": self.epsilon_summary(),
            "delta": self.client_delta(),
            "labels": self.labels,
            "failures": {
                k: int(sum(r.get(k) or 0 for r in self.rows.values()))
                for k in ("failed", "declined", "timed_out")
            },
        }
        write_json(self.run_dir.federated, result)
        return result

    def participation_summary(self) -> dict[str, Any]:
        """Rounds each partition's update was aggregated in, and who never took part."""
        counts = {str(k): v for k, v in sorted(self.participation.items())}
        never = [pid for pid in self.partition_ids if pid not in self.participation]
        return {"rounds_aggregated": counts, "never": never}

    def client_delta(self) -> float | None:
        if self.cfg.dp == "client" and self.n_train_total:
            return self.cfg.client_delta(self.n_train_total)
        if self.cfg.dp == "central":
            return self.central_delta()
        return None

    # --- internals ----------------------------------------------------------------------
    def _log_round(self, rnd: int, report: dict[str, Any] | None) -> None:
        """The round's one line: replies, the global test metric, the largest epsilon.

        ``round 2/3: 3/3 replies ok, test roc_auc 0.8123, epsilon max 7.995``; failures,
        declines, time-outs and a round not aggregated are named, and make it a warning.
        """
        row = self.rows.get(rnd, {})
        key = self.task.primary_metric[0]
        problems = [
            f"{row[k]} {word}"
            for k, word in (
                ("failed", "failed"),
                ("declined", "declined"),
                ("timed_out", "timed out"),
            )
            if row.get(k)
        ]
        parts = [f"{row.get('ok', 0)}/{row.get('sent', 0)} replies ok"]
        if problems:
            parts[0] += f" ({', '.join(problems)})"
        if rnd in self.skipped:
            parts.append(f"not aggregated (fewer than {self.cfg.min_train_replies} valid replies)")
        if report is not None and key in report:
            parts.append(f"test {key} {report[key]:.4f}")
        elif row.get(f"fed_{key}") is not None:  # no pooled test set: the clients' own
            parts.append(f"clients' {key} {row[f'fed_{key}']:.4f}")
        elif self.test is not None:
            parts.append(f"test every {self.cfg.evaluate_every} rounds")
        if self.cfg.dp != "none":
            parts.append(f"epsilon max {_fmt(row.get('epsilon_max'))}")
        level = logging.WARNING if problems or rnd in self.skipped else logging.INFO
        log.log(level, "round %d/%d: %s", rnd, self.cfg.num_server_rounds, ", ".join(parts))

    def _restore(self) -> None:
        """On resume, take the committed state: rows up to the commit (later ones were work
        in flight), each client's last epsilon (a client silent after the restart still shows
        what it spent), participation, skipped rounds and the time already spent."""
        marker = self.run_dir.read_marker() or {}
        try:
            self.epsilon_by_client.update(
                {int(k): float(v) for k, v in (marker.get("epsilon_by_client") or {}).items()}
            )
            self.participation.update(
                {int(k): int(v) for k, v in (marker.get("participation") or {}).items()}
            )
            self.skipped = [int(r) for r in marker.get("skipped") or []]
            self.rounds_done = int(marker.get("model_round", marker.get("round", self.offset)))
            self.previous_wall_s = float(marker.get("wall_s") or 0.0)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"{self.run_dir.latest_marker}: damaged commit marker ({exc}); restore it from "
                "a backup, or start the run again in a new directory"
            ) from None
        self.weights_file = marker.get("path")
        self.final_test = marker.get("final_test")
        for row in self.run_dir.read_rounds(up_to=self.offset):
            self.rows[int(row["round"])] = {
                "round": int(row["round"]),
                **{k: v for k, v in row.items() if k != "round"},
            }

    def _row(self, rnd: int) -> dict[str, Any]:
        return self.rows.setdefault(rnd, {"round": rnd})

    def _epsilon_max(self, rnd: int) -> float | None:
        if self.cfg.dp == "central":
            return self._central_epsilon(rnd)
        return max(self.epsilon_by_client.values()) if self.epsilon_by_client else None

    def _central_epsilon(self, rounds: int) -> float | None:
        if rounds <= 0:
            return None
        q = nodes_per_round(self.cfg.fraction_train, self.num_nodes) / self.num_nodes
        return central_epsilon(
            self.cfg.central_noise_multiplier,
            q,
            rounds,
            self.central_delta(),
            accountant=self.cfg.accountant,
        )


def global_rng_state() -> dict[str, Any]:
    """Python's and numpy's global generators, as JSON (Flower draws from both)."""
    version, keys, gauss = random.getstate()
    name, mt, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(keys), gauss],
        "numpy": [name, mt.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def restore_global_rng(state: dict[str, Any]) -> None:
    """The generators as ``global_rng_state`` saw them (a resume continues their streams)."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, mt, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(mt, dtype=np.uint32), pos, has_gauss, cached))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _timings(summary: Any) -> dict[str, float]:
    """The round's time split, from the reply summary and the clients' own metrics."""
    out = {
        k: float(v)
        for k, v in (("train_wait_s", summary.wait_s), ("aggregate_s", summary.aggregate_s))
        if v is not None
    }
    train = [float(c["train-wall-s"]) for c in summary.per_client if "train-wall-s" in c]
    if train:
        out.update(client_train_s_sum=sum(train), client_train_s_max=max(train))
    gpu = [float(c["gpu-peak-mb"]) for c in summary.per_client if "gpu-peak-mb" in c]
    if gpu:
        out["client_gpu_peak_mb"] = max(gpu)
    return out
