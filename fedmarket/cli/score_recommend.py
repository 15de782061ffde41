"""`fedmarket score` on a recommendation run (task next-categories): its checks and its output.

Not a command of its own: `fedmarket score` comes here when the run ranks categories, so a
retailer scores every run the same way and gets the list the run's task gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from fedmarket.errors import ConfigError
from fedmarket.progress import console, progress_bar

# the targeting list's options, which a ranking of categories has no use for: given when not
# None (and, for the two numbers that default to 0, not 0)
_PROPENSITY_ONLY = {
    "--top": "top",
    "--top-n": "top_n",
    "--margin": "margin",
    "--contact-cost": "contact_cost",
    "--holdout-fraction": "holdout_fraction",
    "--calibrate": "calibrate",
    "--data": "data",
    "--partition": "partition",
    "--key-file": "key_file",
}
_ZERO_DEFAULT = frozenset({"contact_cost", "holdout_fraction"})


def check_recommend_options(given: dict[str, Any]) -> None:
    """Refuse the targeting list's options on a recommendation run, and a run without --raw."""
    wrong = [
        flag
        for flag, name in _PROPENSITY_ONLY.items()
        if given.get(name) is not None and not (name in _ZERO_DEFAULT and given[name] == 0)
    ]
    if wrong:
        raise ConfigError(
            f"{', '.join(wrong)}: the run ranks categories for each customer (task "
            "next-categories); its list is every customer's top categories: give --raw EXPORT, "
            "--top-k K and, to leave out what a customer already bought, --exclude-bought"
        )
    if given.get("raw") is None:
        raise ConfigError(
            "give the customers to rank: --raw EXPORT (the retailer's events, its own ids)"
        )


def score_recommendations(
    run_dir: Path,
    out: Path,
    raw: Path,
    *,
    mapping: Any,
    as_of: str | None,
    source: str,
    fmt: str | None,
    top_k: int,
    exclude_bought: bool,
) -> None:
    """Rank, write and print the summary (see ``fedmarket.experiments.score_recommend``)."""
    from fedmarket.experiments.score_recommend import (
        RecScoreOptions,
        check_rec_options,
        run_recommend_score,
    )
    from fedmarket.scoring.rec_model import load_rec_model

    opts = RecScoreOptions(
        run_dir=run_dir,
        out=out,
        raw=raw,
        mapping=mapping,
        as_of=as_of,
        source=source,
        fmt=fmt,
        top_k=top_k,
        exclude_bought=exclude_bought,
    )
    check_rec_options(opts)
    model = load_rec_model(run_dir, source)  # errors before the progress bar
    with progress_bar("featurising events", None, unit="events") as advance:
        result = run_recommend_score(opts, advance, model=model)
    print_recommendations(result, exclude_bought)


def print_recommendations(result: Any, exclude_bought: bool) -> None:
    from fedmarket.recommend.data import COLD_EVENTS

    what = "not yet bought in the window" if exclude_bought else "every category"
    grid = Table(title=f"Recommendations: top {result.top_k} categories per customer ({what})")
    for header in ("retailer", "customers", "cold", "catalogue coverage", "unknown categories"):
        left = header == "retailer"
        grid.add_column(header, justify="left" if left else "right", no_wrap=left)
    for name, s in result.summaries.items():
        grid.add_row(
            escape(name),
            f"{s.customers:,}",
            f"{s.cold_share:.1%}",
            f"{s.coverage:.1%} of {s.categories:,}",
            f"{s.unseen_events:,} events",
        )
    console.print(grid)
    console.print(
        f"ranked as of {', '.join(sorted(set(result.as_of.values())))} (events up to that "
        f"midnight); cold: fewer than {COLD_EVENTS} category events in the window (none: "
        "ranked by the retailer's popularity); coverage: the share of the run's categories in "
        "any list; unknown categories: history events whose category the run never saw (read "
        "as no item)",
        highlight=False,
    )
    console.print(
        f"wrote {result.rows:,} rows to {escape(str(result.out))} ({result.fmt}); the file "
        "carries the retailer's own customer ids (customer_id): keep it at the retailer",
        highlight=False,
    )
