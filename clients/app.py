"""fedmarket's ClientApp: decode a Flower message, call fedmarket, build the reply.

Replies carry model weights and aggregate metrics only. A client whose privacy budget
would be exceeded by the next round declines with an ``Error`` reply (code
``DECLINED_CODE``) instead of raising, so its accountant state is kept and the server can
tell a refusal from a crash.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.deployment import answer_query, has_raw_export, local_partition
from fedmarket.config import RunConfig
from fedmarket.data.protect.keys import prepared_data_fernet
from fedmarket.defaults import resolve_data_dir
from fedmarket.errors import BudgetExhaustedError
from fedmarket.federated.client import RetailerClient
from fedmarket.federated.client_state import load_journal, save_journal
from fedmarket.threads import apply_threads
from strategies import DECLINED_CODE

_STATE_KEY = "fedmarket"


def make_client_app(fixed: RunConfig | None = None, *, fernet: Fernet | None = None) -> ClientApp:
    """A ClientApp; ``fixed`` carries the settings when the caller is not `flwr run`.

    ``fernet`` opens encrypted prepared data. `fedmarket simulate` passes it in this
    closure, which Ray pickles to every actor, so the key needs no environment variable and
    reaches actors on a cluster joined with --ray-address too. Without it (`flwr run`) the
    key comes from the SuperNode's $FEDMARKET_ENCRYPTION_KEY: run config values travel to
    every node and are stored with the run, so they must never hold a secret.
    """
    app = ClientApp()

    def settings(context: Context) -> RunConfig:
        return fixed if fixed is not None else RunConfig.from_mapping(dict(context.run_config))

    def retailer(msg: Message, context: Context) -> RetailerClient:
        # the actor's CPUs ($FEDMARKET_THREADS from simulate's --client-cpus, else Ray's
        # OMP_NUM_THREADS); torch's default would spin on cores the other actors use
        apply_threads()
        cfg = settings(context)
        node = context.node_config
        if has_raw_export(context):  # deployment: prepare this retailer's own export locally
            cfg, data_dir = local_partition(msg.content["config"], context, cfg)
        elif "data-dir" in node:
            data_dir = Path(str(node["data-dir"]))
        else:
            data_dir = resolve_data_dir(cfg.data_dir)
        key = fernet if fernet is not None else prepared_data_fernet(data_dir)
        return RetailerClient(cfg, data_dir, int(node.get("partition-id", 0)), fernet=key)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        client = retailer(msg, context)
        config = msg.content["config"]
        server_round = int(config["server-round"]) + int(config.get("round-offset", 0))
        state_dir, pid = client.cfg.state_dir, client.partition_id
        journal = load_journal(context.state.get(_STATE_KEY), state_dir, pid)
        weights = msg.content["arrays"].to_torch_state_dict()
        try:
            outcome = client.train_round(
                weights,
                server_round,
                journal,
                proximal_mu=float(config.get("proximal-mu", 0.0)),
            )
        except BudgetExhaustedError as exc:
            return Message(Error(code=DECLINED_CODE, reason=f"declined: {exc}"), reply_to=msg)
        if outcome.privacy_state is not None:  # persisted before the update leaves
            record = save_journal(journal, state_dir, pid)
            context.state[_STATE_KEY] = ConfigRecord({"accountant": record})
        content = RecordDict(
            {"arrays": ArrayRecord(outcome.state_dict), "metrics": MetricRecord(outcome.metrics)}
        )
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        client = retailer(msg, context)
        metrics = client.evaluate(msg.content["arrays"].to_torch_state_dict())
        return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        """Deployment only: the preprocessing agreement (aggregates of the local export)."""
        return answer_query(msg, context)

    return app


app = make_client_app()

__all__ = ["app", "make_client_app"]
