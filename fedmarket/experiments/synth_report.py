"""``synth_report.md``: the synth-private report in words and tables, from its JSON."""

from __future__ import annotations

from typing import Any

from fedmarket.intervals import with_interval


def _n(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value == float("inf"):
        return "∞"
    return format(value, spec)


def _utility(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Utility",
        "",
        f"Each model trained on the {report['n_real_train']:,} real training customers, and "
        f"again on the {report['n_synthetic']:,} synthetic ones; both tested on the same "
        f"{report['n_real_test']:,} real held-out customers (ROC-AUC, 95 % DeLong interval; "
        "the difference is DeLong's paired test, synthetic minus real).",
        "",
        "| model | trained on real | trained on synthetic | difference (95 % CI) | p |",
        "|---|---|---|---|---|",
    ]
    for name, entry in report["utility"].items():
        if "skipped" in entry:
            lines.append(f"| {name} | | | skipped: {entry['skipped']} | |")
            continue
        real, syn, diff = entry["real"], entry["synthetic"], entry["difference"]
        cells = [
            with_interval(m["roc_auc"], m.get("roc_auc_low"), m.get("roc_auc_high"))
            for m in (real, syn)
        ]
        d = with_interval(diff["difference"], diff["low"], diff["high"])
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {d} | {_n(diff['p_value'], '.2g')} |")
    return lines


def _fidelity(report: dict[str, Any]) -> list[str]:
    fid = report["fidelity"]
    syn, ref, rate = (
        fid["synthetic_vs_real_train"],
        fid["real_test_vs_real_train"],
        fid["label_rate"],
    )
    rows = [
        ("KS statistic, mean over features", "ks_mean"),
        ("KS statistic, largest", "ks_max"),
        ("Wasserstein distance, mean (std units)", "wasserstein_mean"),
        ("correlation difference, mean |Δr|", "corr_mean_abs_diff"),
        ("correlation difference, largest |Δr|", "corr_max_abs_diff"),
    ]
    worst = sorted(syn["per_feature"].items(), key=lambda kv: -kv[1]["ks"])[:5]
    return [
        "## Fidelity",
        "",
        f"Over the {report['columns'] - 1} flattened features (time step x feature, the "
        "prepared data's normalised scale). The reference column compares two real samples "
        "(held-out against training customers): the distance no generator needs to beat.",
        "",
        "| statistic | synthetic vs real training | real held-out vs real training |",
        "|---|---|---|",
        *(f"| {label} | {_n(syn[k])} | {_n(ref[k])} |" for label, k in rows),
        f"| label rate | {_n(rate['synthetic'])} | real training {_n(rate['real_train'])}, "
        f"held-out {_n(rate['real_test'])} |",
        "",
        "Largest KS statistics: "
        + ", ".join(f"{c} {_n(v['ks'])}" for c, v in worst)
        + f". Marginals and correlation matrices: `{report['figure']}`.",
    ]


def _privacy(report: dict[str, Any]) -> list[str]:
    priv, audit = report["privacy"], report["privacy"]["audit"]
    lines = [
        "## Privacy",
        "",
        f"Unit of privacy: the customer. Each retailer ran DP-SGD with its own RDP accountant "
        f"(target ε = {_n(priv['target_epsilon'], 'g')}), at δ = {_n(priv['delta'], '.3g')} "
        "(1/(10 N) over all training customers). The table is sampled from the averaged "
        "generator, so it inherits each retailer's guarantee (post-processing).",
        "",
        "| retailer | training customers | ε | noise multiplier | sample rate | steps |",
        "|---|---|---|---|---|---|",
    ]
    for r in priv["retailers"]:
        lines.append(
            f"| {r['name']} | {r['n']:,} | {_n(r['epsilon'])} | {_n(r['noise_multiplier'])} "
            f"| {_n(r['sample_rate'], '.4f')} | {r['steps']:,} |"
        )
    auc = with_interval(audit["roc_auc"], audit["roc_auc_ci_low"], audit["roc_auc_ci_high"])
    lines += [
        "",
        f"Membership inference on the table ({audit['attack']}): {audit['n_members']:,} "
        f"training customers of the generator against {audit['n_nonmembers']:,} held-out "
        "customers, equal per retailer; score = minus the distance to the closest synthetic "
        "row. Attack ROC-AUC "
        f"{auc} (0.5 = guessing); TPR at 1 % FPR {_n(audit.get('tpr_at_fpr_1%'))}; empirical "
        f"ε lower bound {_n(audit['epsilon_lower_bound'])} (95 %); median distance to the "
        f"closest synthetic row {_n(audit['median_dcr_members'])} (members), "
        f"{_n(audit['median_dcr_nonmembers'])} (held-out).",
        "",
        "Outside this guarantee: the manifest's normalisation statistics (training customers' "
        "mean and std per feature, computed by `data prepare` without DP) and the retailers' "
        "customer counts, both shared with the consortium already.",
    ]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report; every figure names its test set."""
    gen = report["generator"]
    head = [
        "# Private synthetic customers",
        "",
        f"`{report['table']}`: {report['n_synthetic']:,} synthetic customers, "
        f"{report['columns']} columns (flattened event-feature sequences and the "
        f"{report['task']} label), no ids. Data: `{report['data_dir']}`, seed {report['seed']}."
        + (
            " Sampled rows are clipped to each feature's possible range (from the manifest: no "
            "count below 0, no 'days since' past the window)."
            if report.get("clipped_to_feature_ranges")
            else ""
        ),
        "",
        f"Generator: {gen['model']} (latent {gen['latent_dim']}, "
        f"{'linear' if gen['hidden'] == 0 else 'MLP width ' + str(gen['hidden'])}), "
        f"FedAvg over the retailers for {gen['rounds']} rounds of {gen['local_epochs']} local "
        f"epoch(s), batch {gen['batch_size']}, clip {gen['max_grad_norm']:g}.",
        "",
    ]
    body = [*_utility(report), "", *_fidelity(report), "", *_privacy(report)]
    return "\n".join(head + body) + "\n"
