"""The price of federation and of privacy: federated-minus-centralised gaps on one dataset.

Runs `fedmarket simulate` for natural and Dirichlet label-skew partitions, with and without
client-level DP, and prints a markdown table of test ROC-AUC (federated, centralised, gap) for
BENCHMARKS.md. Each point is a full run directory under --out.

    python scripts/federation_gap.py --raw data/raw --out runs/gap [--rounds 5] [--alpha 0.3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from fedmarket.data.prepare import PrepareOptions, prepare
from fedmarket.data.protect.keys import resolve_pseudonym_key
from fedmarket.experiments.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--raw", type=Path, required=True, help="raw retailer exports (fedmarket data synth)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--model", default="cnn-lstm")
    parser.add_argument("--epsilon", type=float, default=8.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("FLWR_LOG_LEVEL", "WARNING")
    key = resolve_pseudonym_key(None, [args.raw, args.out])
    rows = []
    for scheme in ("natural", "dirichlet"):
        data = args.out / f"data-{scheme}"
        if not (data / "manifest.json").exists():
            prepare(
                PrepareOptions(
                    raw=args.raw,
                    out=data,
                    scheme=scheme,
                    alpha=args.alpha,
                    n_partitions=None if scheme == "natural" else 10,
                    pseudonym_key=key,
                )
            )
        for dp in ("none", "client"):
            run_dir = args.out / f"{scheme}-{dp}"
            summary_file = run_dir / "summary.json"
            if not summary_file.exists():
                overrides = f"num-server-rounds={args.rounds} model='{args.model}' dp='{dp}'"
                if dp == "client":
                    overrides += f" target-epsilon={args.epsilon}"
                simulate(data=data, run_config=overrides, out=run_dir)
            s = json.loads(summary_file.read_text())
            rows.append((scheme, dp, s))
    print(
        "| partitions | DP | federated ROC-AUC | centralised ROC-AUC | gap | epsilon (fed / cen) "
        "| wall s (fed / cen) |"
    )
    print("|---|---|---|---|---|---|---|")
    for scheme, dp, s in rows:
        fed, cen = s["federated"], s["centralised"]
        label = scheme if scheme == "natural" else f"dirichlet (alpha={args.alpha})"
        eps = "-" if dp == "none" else f"{fed['epsilon']['max']:.2f} / {cen['epsilon']:.2f}"
        print(
            f"| {label} | {dp} | {fed['test']['roc_auc']:.4f} | {cen['test']['roc_auc']:.4f} | "
            f"{s['gap']['roc_auc']:+.4f} | {eps} | {fed['wall_s']:.0f} / {cen['wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
