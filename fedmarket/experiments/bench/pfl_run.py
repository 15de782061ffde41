"""The same work as `fedmarket simulate` in pfl-research (Apple's simulator), for issue #20.

fedmarket's cnn-lstm becomes a pfl ``PyTorchModel`` (its ``loss`` and ``metrics`` are the
BCE on the logits that fedmarket trains the purchase task with); each retailer is one pfl
user whose dataset is read from the prepared partition when pfl asks for it; every user
trains in every round (cohort = retailers) with Adam, ``local-epochs`` epochs of
``batch-size``; pfl's ``FederatedAveraging`` with a central SGD step of 1 and
``WeightByDatapoints`` is FedAvg weighted by customers, as Flower's. A callback evaluates
the global model on the pooled test customers before training and after every round (as
fedmarket's ServerApp) and stamps the time, written to ``--out``/timings.json.

pfl is an optional extra (``fedmarket[compare]``); ``main`` runs in a child process whose
interpreter has it (``compare.py``). pfl simulates in one process, without Ray: its users
train one after the other (its multi-worker mode needs Horovod or ``torch.distributed``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fedmarket.errors import ConfigError
from fedmarket.experiments.bench.quickstart import TIMINGS, make_net, one_run_args, test_auc

EXTRA_HINT = (
    "pfl-research is not installed in this Python: install fedmarket's optional extra "
    "`compare` (pip install -e '.[compare]'), best in its own virtual environment"
)


def require_pfl() -> None:
    """A ConfigError naming the extra when pfl cannot be imported."""
    try:
        import pfl  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{EXTRA_HINT} ({exc})") from None


class PflNet(nn.Module):
    """The cnn-lstm with the ``loss`` and ``metrics`` pfl's PyTorchModel calls."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, x: Any, y: Any, eval: bool = False) -> torch.Tensor:
        self.eval() if eval else self.train()
        return self.criterion(self(torch.as_tensor(x)), torch.as_tensor(y))

    def metrics(self, x: Any, y: Any, eval: bool = True) -> dict[str, Any]:
        from pfl.metrics import Weighted

        with torch.no_grad():
            loss = self.loss(x, y, eval=True)
        return {"loss": Weighted(float(loss) * len(y), len(y))}


def _timings(data: Path, rounds: list[dict[str, float]]) -> Any:
    """A pfl callback: the pooled test ROC-AUC and the time, before training (round 0) and
    after every central iteration, appended to ``rounds``."""
    from pfl.callback.base import TrainingProcessCallback
    from pfl.metrics import Metrics

    class Timings(TrainingProcessCallback):
        def _stamp(self, model: Any, server_round: int) -> None:
            auc = test_auc(model._model.net, data)
            model._model.train()
            rounds.append({"round": server_round, "at": time.time(), "roc_auc": auc})

        def on_train_begin(self, *, model: Any) -> Metrics:
            self._stamp(model, 0)
            return Metrics()

        def after_central_iteration(
            self, aggregate_metrics: Metrics, model: Any, *, central_iteration: int
        ) -> tuple[bool, Metrics]:
            self._stamp(model, central_iteration + 1)
            return False, Metrics()

    return Timings()


def _federated_data(data: Path, ids: list[int]) -> Any:
    """One pfl user per retailer, its training customers read when pfl asks for them."""
    from pfl.data.dataset import Dataset
    from pfl.data.federated_dataset import FederatedDataset
    from pfl.data.sampling import get_user_sampler

    from fedmarket.data import store

    def make_dataset(user_id: Any) -> Dataset:
        split = store.load_split(data, int(user_id), "train")
        X = np.asarray(split.X, dtype=np.float32)
        y = np.asarray(split.y_purchase, dtype=np.float32)
        return Dataset(raw_data=[torch.from_numpy(X), torch.from_numpy(y)], user_id=str(user_id))

    return FederatedDataset(make_dataset, get_user_sampler("minimize_reuse", [str(i) for i in ids]))


def run(data: Path, out: Path, settings: dict[str, Any]) -> None:
    require_pfl()
    from pfl.aggregate.simulate import SimulatedBackend
    from pfl.aggregate.weighting import WeightByDatapoints
    from pfl.algorithm import FederatedAveraging, NNAlgorithmParams
    from pfl.hyperparam import NNEvalHyperParams, NNTrainHyperParams
    from pfl.model.pytorch import PyTorchModel

    from fedmarket.data import store

    torch.manual_seed(settings["seed"])
    np.random.seed(settings["seed"])
    ids = store.partition_ids(store.read_manifest(data))
    rounds: list[dict[str, float]] = []
    net = PflNet(make_net(data, settings["seed"]))
    model = PyTorchModel(
        model=net,
        local_optimizer_create=torch.optim.Adam,
        central_optimizer=torch.optim.SGD(net.parameters(), lr=1.0),
    )
    backend = SimulatedBackend(
        training_data=_federated_data(data, ids),
        val_data=None,
        postprocessors=[WeightByDatapoints()],
    )
    FederatedAveraging().run(
        backend=backend,
        model=model,
        algorithm_params=NNAlgorithmParams(
            central_num_iterations=settings["rounds"],
            evaluation_frequency=1,  # val_cohort_size=None: no federated evaluation
            train_cohort_size=len(ids),
            val_cohort_size=None,
        ),
        model_train_params=NNTrainHyperParams(
            local_num_epochs=settings["epochs"],
            local_learning_rate=settings["lr"],
            local_batch_size=settings["batch_size"],
        ),
        model_eval_params=NNEvalHyperParams(local_batch_size=settings["batch_size"]),
        callbacks=[_timings(data, rounds)],
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / TIMINGS).write_text(json.dumps({"rounds": rounds}, indent=1))


def main(argv: list[str] | None = None) -> None:
    run(*one_run_args("The same work in pfl-research, one run.", argv))


if __name__ == "__main__":
    main()
