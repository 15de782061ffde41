"""The run's figures, read back from their axes: what each line is, where the axes start,
whole-number rounds and epochs."""

from __future__ import annotations

import pytest

from fedmarket.config import RunConfig
from fedmarket.reporting.figures import (
    CENTRALISED_LINE,
    CLIENTS_LINE,
    SERVER_LINE,
    epsilon_per_round,
    gains_and_lift,
    learning_curves,
    metric_per_round,
)
from tests.reporting.fake_run import centralised, rounds_rows, scores


def labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def whole_ticks(ax) -> list[float]:
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks and all(t == int(t) for t in ticks), ticks
    return ticks


def test_gains_and_lift_draw_both_models_against_random():
    figure = gains_and_lift(scores(0, 1.5), scores(0, 3.0))
    gains, lift = figure.axes
    assert labels(gains) == ["random targeting", "federated model", "centralised reference"]
    assert "random targeting (1x)" in labels(lift)
    for line in gains.get_lines()[1:3]:  # each curve runs from nobody to everybody
        x, y = line.get_data()
        assert (x[0], y[0], x[-1], y[-1]) == (0, 0, 1, 1)
    assert gains.get_ylim()[0] == 0 and lift.get_ylim()[0] == 0
    # the better ranking (signal 3.0) lifts more at the top-10 % cut
    fed, cen = (line.get_data() for line in lift.get_lines()[1:3])
    at = [min(range(len(x)), key=lambda i, x=x: abs(x[i] - 0.1)) for x in (fed[0], cen[0])]
    assert cen[1][at[1]] > fed[1][at[0]] > 1


def test_the_bg_nbd_anchor_adds_its_curve_where_the_run_has_it():
    figure = gains_and_lift(scores(0, 1.5), None, scores(0, 0.5))
    gains, lift = figure.axes
    assert labels(gains) == ["random targeting", "federated model", "BG/NBD anchor"]
    assert labels(lift)[-1] == "BG/NBD anchor"
    x, y = gains.get_lines()[2].get_data()
    assert (x[0], y[0], x[-1], y[-1]) == (0, 0, 1, 1)


def test_gains_and_lift_leave_out_a_model_without_scores_or_buyers():
    y, s = scores(0, 1.5)
    only_cen = gains_and_lift(None, (y, s))
    assert labels(only_cen.axes[0]) == ["random targeting", "centralised reference"]
    assert gains_and_lift((0 * y, s), None) is None  # no buyers: nothing to reach
    assert gains_and_lift(None, None) is None


@pytest.mark.parametrize(("dp", "unit"), [("client", "customer"), ("central", "retailer")])
def test_epsilon_starts_at_zero_with_its_unit_and_delta(dp, unit):
    cfg = RunConfig.from_mapping({"dp": dp, "target-epsilon": 8.0})
    ax = epsilon_per_round(cfg, rounds_rows(), 1e-4).axes[0]
    assert ax.get_ylim()[0] == 0
    assert ax.get_title() == f"Privacy spent: epsilon per {unit}, delta = 0.0001"
    x, y = ax.get_lines()[0].get_data()
    assert (x[0], y[0]) == (0, 0) and list(y[1:]) == [2.5, 5.0, 7.5]
    assert whole_ticks(ax) == [0, 1, 2, 3]
    target = [line for line in ax.get_lines() if "target" in line.get_label()]
    if dp == "client":  # the line a retailer stops before, inside the view
        assert list(target[0].get_ydata()) == [8.0, 8.0] and ax.get_ylim()[1] > 8
    else:
        assert target == []


def test_no_epsilon_figure_without_dp():
    cfg = RunConfig.from_mapping({"dp": "none"})
    assert epsilon_per_round(cfg, [r | {"epsilon_max": None} for r in rounds_rows()], None) is None


def test_both_federated_lines_are_named_and_visible_where_they_overlap():
    cfg = RunConfig.from_mapping({})
    ax = metric_per_round(cfg, rounds_rows(), 0.78).axes[0]
    assert labels(ax) == [SERVER_LINE, CLIENTS_LINE, CENTRALISED_LINE, "random ranking (0.5)"]
    server, clients = ax.get_lines()[:2]
    assert list(server.get_ydata()) == list(clients.get_ydata())  # the fixture's overlap
    assert clients.get_linestyle() == "--" and clients.get_fillstyle() == "none"
    assert clients.get_markersize() > server.get_markersize()
    low, high = ax.get_ylim()
    assert low < 0.5 and high == 1.0  # random ranking and a perfect one both in view
    assert whole_ticks(ax) == [1, 2, 3]
    assert ax.get_ylabel() == "ROC-AUC on test customers"


def test_learning_curves_train_against_held_out_loss_by_epoch_and_round():
    y, s = scores(0, 1.5)
    cfg = RunConfig.from_mapping({})
    figure = learning_curves(cfg, rounds_rows(), centralised({}, y, s).history)
    cen, fed = figure.axes
    assert cen.get_title() == "centralised reference, by epoch" and cen.get_xlabel() == "epoch"
    assert labels(cen) == [
        "training loss (averaged over the epoch)",
        "test loss (held-out test customers)",
    ]
    assert labels(fed) == [
        "retailers' training loss during the round, averaged",
        "global model's loss on the pooled test customers",
    ]
    for ax in (cen, fed):
        assert ax.get_ylabel() == "loss (binary cross-entropy)"
        assert whole_ticks(ax) == [1, 2, 3]
    assert learning_curves(cfg, [], None) is None


def test_a_run_without_federated_scores_draws_the_centralised_curve_and_says_why(make_run):
    run, paths = make_run(federated_scores=False)
    assert paths["gains_lift"] == run.figure("gains_lift") and paths["gains_lift"].is_file()
    assert "only the centralised curve is drawn" in paths["report"].read_text()


def test_a_run_with_no_scores_at_all_has_no_gains_figure(make_run):
    run, paths = make_run(federated_scores=False, centralised_error="boom")
    assert "gains_lift" not in paths and not run.figure("gains_lift").exists()
    assert "gains_lift.png" not in paths["report"].read_text()
    assert run.figure("roc_auc_per_round").is_file()
