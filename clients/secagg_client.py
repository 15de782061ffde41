"""The SecAgg+ ClientApp (``server/secagg_workflow.py``): legacy message shapes, masked replies.

Flower's ``secaggplus_mod`` runs the four SecAgg+ stages around the train handler: it
calls the handler once (stage "collect masked vectors") with a legacy ``FitIns`` and
expects a legacy ``FitRes``, then quantises, weights and masks the returned model before
it leaves this machine. Training itself is the same ``RetailerClient.train_round`` as in
``clients/app.py``: with ``dp = "client"`` every customer's gradient is clipped and noised
(Opacus) before the mod ever sees the model. Only SuperNodes with a raw export
(``data-path``) take part; the preprocessing agreement is the same query round.
"""

from __future__ import annotations

import torch
from flwr.app import ConfigRecord, Context, Message
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import (
    Code,
    EvaluateRes,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat

from clients.deployment import answer_query, local_partition
from fedmarket.config import RunConfig
from fedmarket.federated.client import RetailerClient
from fedmarket.federated.client_state import load_journal, save_journal

_STATE_KEY = "fedmarket"
SECAGG_KEYS = (
    "secagg-num-shares",
    "secagg-reconstruction-threshold",
    "secagg-clipping-range",
    "secagg-max-weight",
)


def _retailer(config: ConfigRecord, context: Context) -> RetailerClient:
    cfg = RunConfig.from_mapping(
        {k: v for k, v in context.run_config.items() if k not in SECAGG_KEYS}
    )
    cfg, data_dir = local_partition(config, context, cfg)
    return RetailerClient(cfg, data_dir, int(context.node_config.get("partition-id", 0)))


def _ordered(client: RetailerClient, arrays: list) -> dict:
    """Legacy Parameters are a bare list: name them in the fast model's canonical order."""
    keys = list(client.new_model(dp=False).state_dict())
    return {k: torch.from_numpy(a.copy()) for k, a in zip(keys, arrays, strict=True)}


app = ClientApp(mods=[secaggplus_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    config = ConfigRecord(dict(fitins.config))
    client = _retailer(config, context)
    weights = _ordered(client, parameters_to_ndarrays(fitins.parameters))
    journal = load_journal(context.state.get(_STATE_KEY), client.cfg.state_dir, client.partition_id)
    outcome = client.train_round(weights, int(config["server-round"]), journal)  # may decline
    if outcome.privacy_state is not None:
        record = save_journal(journal, client.cfg.state_dir, client.partition_id)
        context.state[_STATE_KEY] = ConfigRecord({"accountant": record})
    ordered = [outcome.state_dict[k].detach().cpu().numpy() for k in weights]
    fitres = FitRes(
        Status(Code.OK, "ok"),
        ndarrays_to_parameters(ordered),
        int(outcome.metrics["num-examples"]),
        dict(outcome.metrics),
    )
    return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    ins = compat.recorddict_to_evaluateins(msg.content, keep_input=True)
    client = _retailer(ConfigRecord(dict(ins.config)), context)
    metrics = client.evaluate(_ordered(client, parameters_to_ndarrays(ins.parameters)))
    res = EvaluateRes(
        Status(Code.OK, "ok"),
        float(metrics.get("log_loss", 0.0)),
        int(metrics["num-examples"]),
        metrics,
    )
    return Message(compat.evaluateres_to_recorddict(res), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    return answer_query(msg, context)
