"""`fedmarket score` on a recommendation run: each customer's top-k categories, at the retailer.

The retailer's export is featurised with `data prepare`'s code in the run's window moved to
``as_of`` (``fedmarket.scoring.rec_featurise``), ranked with the run's model and its
cold-start path (``fedmarket.scoring.rec_rank``) and written with the retailer's own customer
ids to ``--out``, one row per customer and rank. As for a targeting list
(``fedmarket.experiments.score``), the file carries raw ids and stays at the retailer:
``--out`` inside the run directory is refused, and nothing is written into the run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fedmarket.checks import integer
from fedmarket.data.ingest.mapping import ExportMapping
from fedmarket.experiments.score import RAW_ID, check_out, output_format, write_targets
from fedmarket.scoring.rec_featurise import featurise_rec_export
from fedmarket.scoring.rec_model import RecModel, load_rec_model
from fedmarket.scoring.rec_rank import RankSummary, rank_inputs, ranked_rows, summarise

DEFAULT_TOP_K = 10


@dataclass(frozen=True)
class RecScoreOptions:
    run_dir: Path
    out: Path
    raw: Path
    mapping: ExportMapping | None = None
    as_of: str | None = None
    source: str = "federated"
    fmt: str | None = None
    top_k: int = DEFAULT_TOP_K
    exclude_bought: bool = False


@dataclass(frozen=True)
class RecScoreResult:
    out: Path
    fmt: str
    rows: int
    top_k: int
    summaries: dict[str, RankSummary]
    as_of: dict[str, str]


def check_rec_options(opts: RecScoreOptions) -> str:
    """What can be checked before reading data; the output format."""
    integer("--top-k", opts.top_k, at_least=1)
    fmt = output_format(opts.out, opts.fmt)
    check_out(opts.out, opts.run_dir)
    return fmt


def run_recommend_score(
    opts: RecScoreOptions,
    advance: Callable[[int], None] | None = None,
    *,
    model: RecModel | None = None,
) -> RecScoreResult:
    """Rank and write; see the module docstring. ``model``: when the caller loaded it."""
    fmt = check_rec_options(opts)
    model = model if model is not None else load_rec_model(opts.run_dir, opts.source)
    inputs = featurise_rec_export(
        model,
        opts.raw,
        mapping=opts.mapping,
        as_of=opts.as_of,
        advance=advance,
        bought=opts.exclude_bought,
    )
    frames, summaries = [], {}
    for part in inputs:
        ranked = rank_inputs(model, part, k=opts.top_k, exclude_bought=opts.exclude_bought)
        frames.append(ranked_rows(model, part, ranked, id_column=RAW_ID))
        summaries[part.retailer] = summarise(model, part, ranked)
    table = pd.concat(frames, ignore_index=True)
    write_targets(table, opts.out, fmt)
    return RecScoreResult(
        out=opts.out,
        fmt=fmt,
        rows=len(table),
        top_k=min(opts.top_k, len(model.items)),
        summaries=summaries,
        as_of={i.retailer: f"{i.window.cutoff:%Y-%m-%d}" for i in inputs},
    )
