"""`fedmarket serve` on a recommendation run: its options checked and its app built.

The propensity service's decision options (``--threshold``, ``--top``) select customers; a
recommendation run ranks categories for each customer, so they are refused there, and
``--retailer`` (whose popularity ranks a customer without history) applies to it alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from fedmarket.errors import ConfigError
from fedmarket.experiments.serve.recommend_app import create_recommend_app
from fedmarket.scoring.rec_model import load_rec_model

if TYPE_CHECKING:
    from fedmarket.experiments.serve.runner import ServeOptions


def recommend_service(options: ServeOptions, token: str | None) -> tuple[FastAPI, str, str]:
    """(the app, what it serves, a line about its cold-start path) for a ranking run."""
    if options.threshold is not None or options.top_percent is not None:
        raise ConfigError(
            "--threshold and --top select customers by their propensity; this run ranks "
            "categories for each customer (task next-categories): ask for k of them per "
            "request (/v1/score?k=10)"
        )
    model = load_rec_model(options.run_dir, options.model_source, options.encryption_key_file)
    retailer = options.retailer or ""
    if retailer and retailer not in model.popularity:
        known = sorted(r for r in model.popularity if r)
        raise ConfigError(
            f"--retailer {retailer!r}: not a retailer of the run's partitions ({', '.join(known)}"
            "); leave it out to rank customers without history by every retailer's popularity"
        )
    app = create_recommend_app(
        model,
        token=token,
        limits=options.limits,
        max_body_bytes=options.max_body_bytes,
        retailer=retailer,
    )
    whose = f"retailer {retailer}'s" if retailer else "every retailer's"
    note = f"recommendations: top k categories per customer; no history: {whose} popularity"
    return app, f"{model.model_name} ({model.source}) recommendations", note
