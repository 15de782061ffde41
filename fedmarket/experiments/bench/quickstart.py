"""A minimal Flower app in the style of Flower's quickstart-pytorch, on fedmarket's data.

Issue #20 compares `fedmarket simulate` with what a user would write from Flower's
quickstart (fedmarket <= 0.8x its wall time on the same work). Like the quickstart, this app
builds the model afresh for every message, loads its partition for every message (a
``DataLoader`` over the prepared arrays), trains with Adam and a plain loop, and leaves the
aggregation to Flower's ``FedAvg``; the ServerApp evaluates the global model on the pooled
test customers every round (``evaluate_fn``), as fedmarket's ServerApp does. Only the model
(fedmarket's ``cnn-lstm``, the same seeded initial weights) and the data are fedmarket's.

``main`` runs it in a child process (``compare.py`` times it there, as a user's fresh
``flwr`` run) and writes, per round, the epoch time after the global evaluation and the
pooled test ROC-AUC to ``--out``/timings.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedmarket.data import store
from fedmarket.models import build_model

TIMINGS = "timings.json"


def make_net(data: Path, seed: int) -> nn.Module:
    """fedmarket's cnn-lstm for the purchase task, with the run's seeded initial weights."""
    n_features = store.n_features(store.read_manifest(data))
    return build_model("cnn-lstm", n_features, task="purchase", seed=seed)


def load_data(data: Path, partition_id: int, batch_size: int, seed: int) -> DataLoader:
    """The partition's training customers as the quickstart's shuffled DataLoader."""
    split = store.load_split(data, partition_id, "train")
    X = torch.tensor(np.asarray(split.X, dtype=np.float32))
    y = torch.tensor(np.asarray(split.y_purchase, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True, generator=generator)


def train(net: nn.Module, loader: DataLoader, epochs: int, lr: float) -> float:
    """The quickstart's loop: Adam, BCE on the logits; the mean loss of the last epoch."""
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    total, seen = 0.0, 0
    for _ in range(epochs):
        total, seen = 0.0, 0
        for X, y in loader:
            optimizer.zero_grad()
            loss = criterion(net(X), y)
            loss.backward()
            optimizer.step()
            total, seen = total + float(loss) * len(y), seen + len(y)
    return total / max(seen, 1)


def test_auc(net: nn.Module, data: Path) -> float:
    """ROC-AUC of ``net`` on every partition's test customers pooled."""
    ids = store.partition_ids(store.read_manifest(data))
    split = store.SplitArrays.concat(store.load_split(data, pid, "test") for pid in ids)
    net.eval()
    with torch.no_grad():
        score = net(torch.tensor(np.asarray(split.X, dtype=np.float32))).numpy()
    return float(roc_auc_score(np.asarray(split.y_purchase), score))


def apps(data: Path, settings: dict[str, Any], out: Path) -> tuple[Any, Any]:
    """The (ServerApp, ClientApp) pair; ``settings``: rounds, epochs, batch_size, lr, seed."""
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    client_app = ClientApp()

    @client_app.train()
    def client_train(msg: Message, context: Context) -> Message:
        torch.set_num_threads(1)
        pid = int(context.node_config["partition-id"])
        server_round = int(msg.content["config"]["server-round"])
        net = make_net(data, settings["seed"])
        net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        loader = load_data(data, pid, settings["batch_size"], settings["seed"] + server_round)
        loss = train(net, loader, settings["epochs"], float(msg.content["config"]["lr"]))
        metrics = {"train_loss": loss, "num-examples": len(loader.dataset)}
        content = RecordDict(
            {"arrays": ArrayRecord(net.state_dict()), "metrics": MetricRecord(metrics)}
        )
        return Message(content=content, reply_to=msg)

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        rounds: list[dict[str, float]] = []

        def global_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            net = make_net(data, settings["seed"])
            net.load_state_dict(arrays.to_torch_state_dict())
            auc = test_auc(net, data)
            rounds.append({"round": server_round, "at": time.time(), "roc_auc": auc})
            return MetricRecord({"roc_auc": auc})

        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0)
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(make_net(data, settings["seed"]).state_dict()),
            train_config=ConfigRecord({"lr": settings["lr"]}),
            num_rounds=settings["rounds"],
            evaluate_fn=global_evaluate,
        )
        (out / TIMINGS).write_text(json.dumps({"rounds": rounds}, indent=1))

    return server_app, client_app


def run(data: Path, out: Path, settings: dict[str, Any]) -> None:
    """The quickstart app under Flower's ``run_simulation``: one supernode per partition,
    one CPU per client actor, Ray started as fedmarket starts it."""
    from flwr.simulation import run_simulation

    out.mkdir(parents=True, exist_ok=True)
    server_app, client_app = apps(data, settings, out)
    n_nodes = len(store.partition_ids(store.read_manifest(data)))
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=n_nodes,
        backend_config={
            "client_resources": {"num_cpus": 1.0, "num_gpus": 0.0},
            "init_args": {
                "include_dashboard": False,
                "logging_level": "ERROR",
                "log_to_driver": False,
            },
        },
    )


def one_run_args(description: str, argv: list[str] | None) -> tuple[Path, Path, dict[str, Any]]:
    """(data, out, settings) from the command line of one compared run (this module's and
    ``pfl_run``'s, started by ``compare.run_module``); the defaults are the comparison's."""
    from fedmarket.experiments.bench.compare import DEFAULTS

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = parser.parse_args(argv)
    return args.data, args.out, {name: getattr(args, name) for name in DEFAULTS}


def main(argv: list[str] | None = None) -> None:
    run(*one_run_args("The quickstart-style Flower app, one run.", argv))


if __name__ == "__main__":
    main()
