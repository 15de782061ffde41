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
from fedmarket.federated import personal
from fedmarket.federated.client import RetailerClient
from fedmarket.federated.client_state import PrivacyJournal, load_journal, save_journal
from fedmarket.privacy import accounting
from fedmarket.threads import apply_threads
from strategies import DECLINED_CODE

_STATE_KEY = "fedmarket"
# The final message of a personalised run (an evaluate message whose config names the
# method, server.personalise): each client builds its personalised model and scores its own
# test customers.
PERSONALISE_KEY = "personalise"


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
        received = msg.content["arrays"].to_torch_state_dict()
        method = client.cfg.personalisation
        # the retailer's private part (next-products' product table) joins the global model
        weights = personal.with_private(client, received, _kept(context, client, personal.PRIVATE))
        if method == "fedper":  # the global body with this retailer's own head
            weights = personal.with_head(received, _kept(context, client, personal.HEAD))
        try:
            outcome = client.train_round(
                weights,
                server_round,
                journal,
                proximal_mu=float(config.get("proximal-mu", 0.0)),
            )
            if method == "ditto":  # the personal model, pulled toward the global one
                own = _kept(context, client, personal.DITTO) or received
                mine = personal.train_personal(
                    client,
                    own,
                    journal,
                    personal.PERSONAL_KEY + server_round,
                    anchor=received,
                    lam=client.cfg.ditto_lambda,
                )
                _keep(context, client, personal.DITTO, mine.state_dict)
                if "epsilon" in mine.metrics:
                    outcome.metrics["epsilon"] = mine.metrics["epsilon"]
        except BudgetExhaustedError as exc:
            return Message(Error(code=DECLINED_CODE, reason=f"declined: {exc}"), reply_to=msg)
        # the private part stays here: only the shared weights leave (none for most tasks)
        sent, private = personal.shared_and_private(client, outcome.state_dict)
        if private:
            _keep(context, client, personal.PRIVATE, private)
        if method == "fedper":  # the head stays here; only the body leaves
            sent, head = personal.body_and_head(client.cfg.model, sent)
            _keep(context, client, personal.HEAD, head)
        _save(context, journal, outcome.privacy_state is not None, state_dir, pid)
        content = RecordDict(
            {"arrays": ArrayRecord(sent), "metrics": MetricRecord(outcome.metrics)}
        )
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        client = retailer(msg, context)
        weights = msg.content["arrays"].to_torch_state_dict()
        weights = personal.with_private(client, weights, _kept(context, client, personal.PRIVATE))
        method = str(msg.content["config"].get(PERSONALISE_KEY, ""))
        if method:
            return personalise(msg, context, client, weights, method)
        metrics = client.evaluate(weights)
        return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    def personalise(
        msg: Message, context: Context, client: RetailerClient, weights: dict, method: str
    ) -> Message:
        """The run's last message: this retailer's personalised model, scored on its own test
        customers; their scores stay here (state-dir), the aggregate metrics are replied."""
        state_dir, pid = client.cfg.state_dir, client.partition_id
        journal = load_journal(context.state.get(_STATE_KEY), state_dir, pid)
        try:
            if method == "finetune":
                tuned = personal.train_personal(client, weights, journal, personal.PERSONAL_KEY)
                _save(context, journal, tuned.privacy_state is not None, state_dir, pid)
                mine = tuned.state_dict
            elif method == "fedper":
                mine = personal.with_head(weights, _kept(context, client, personal.HEAD))
            else:
                mine = _kept(context, client, personal.DITTO) or weights
        except BudgetExhaustedError as exc:
            return Message(Error(code=DECLINED_CODE, reason=f"declined: {exc}"), reply_to=msg)
        metrics, predictions = personal.score(client, mine)
        if (spent := journal.latest()) is not None and client.privacy is not None:
            metrics["epsilon"] = float(accounting.epsilon(spent, client.privacy.delta))
        if state_dir:
            from fedmarket.predictions import write_predictions  # pandas: this message only

            path = personal.scores_file(state_dir, pid)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_predictions(path, predictions)
        return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        """Deployment only: the preprocessing agreement (aggregates of the local export)."""
        return answer_query(msg, context)

    return app


def _kept(context: Context, client: RetailerClient, kind: str) -> dict | None:
    """What the client kept of ``kind`` (a head, a personal model): its state-dir file if
    there is one, else Flower's context.state, else None."""
    state_dir, pid = client.cfg.state_dir, client.partition_id
    kept = personal.load_weights(state_dir, pid, kind)
    if kept is None and f"{_STATE_KEY}-{kind}" in context.state:
        kept = context.state[f"{_STATE_KEY}-{kind}"].to_torch_state_dict()
    return kept


def _keep(context: Context, client: RetailerClient, kind: str, weights: dict) -> None:
    context.state[f"{_STATE_KEY}-{kind}"] = ArrayRecord(weights)
    personal.save_weights(weights, client.cfg.state_dir, client.partition_id, kind)


def _save(
    context: Context, journal: PrivacyJournal, charged: bool, state_dir: str, pid: int
) -> None:
    """Persist the journal before the reply leaves (nothing to persist without DP)."""
    if charged:
        record = save_journal(journal, state_dir, pid)
        context.state[_STATE_KEY] = ConfigRecord({"accountant": record})


app = make_client_app()

__all__ = ["app", "make_client_app"]
