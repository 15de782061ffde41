"""`fedmarket data synth|prepare|inspect`: synthesise, prepare and inspect retailer data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fedmarket.cli.app import data_app, friendly_errors
from fedmarket.data import store
from fedmarket.data.protect import keys
from fedmarket.progress import console, log_to_console, progress_bar


@data_app.command("synth")
@friendly_errors
def data_synth(
    out: Annotated[Path, typer.Option(help="Directory for the raw per-retailer exports.")],
    retailers: Annotated[int, typer.Option(help="Number of retailers.")] = 10,
    customers: Annotated[
        int, typer.Option(help="Customers per retailer (varies by retailer around this).")
    ] = 5000,
    days: Annotated[int, typer.Option(help="Days of activity.")] = 120,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2019-10-01",
    new_products: Annotated[
        float,
        typer.Option(
            help="Share of each retailer's products launched during the period (0-0.9), "
            "at a day drawn uniformly; 0 (default): a static catalogue."
        ),
    ] = 0.0,
    launch_from: Annotated[
        float,
        typer.Option(
            help="With --new-products: launches fall from this fraction of the period on "
            "(0: anywhere; 0.8: the last fifth)."
        ),
    ] = 0.0,
) -> None:
    """Write synthetic retailers' raw exports in the public REES46 event schema."""

    from fedmarket.data.synth.generate import generate_retailers, plan_retailers
    from fedmarket.data.synth.launches import check_launch_options

    check_launch_options(new_products, launch_from)  # before the progress bar: fails cleanly

    # The generator reports progress in customers, and retailers vary in size around --customers.
    total = sum(p.n_customers for p in plan_retailers(retailers, customers, days, seed))
    with progress_bar("synthesising customers", total, unit="customers") as advance:
        summary = generate_retailers(
            out,
            n_retailers=retailers,
            n_customers=customers,
            days=days,
            seed=seed,
            fmt=fmt,
            start=start,
            progress=advance,
            new_products=new_products,
            launch_from=launch_from,
        )
    console.print(
        f"wrote {summary.total_events:,} events for {retailers} "
        f"retailer{'s' if retailers != 1 else ''} to {escape(str(out))}"
    )


@data_app.command("prepare")
@friendly_errors
def data_prepare(
    raw: Annotated[Path, typer.Option(help="A directory of retailer exports, or one export file.")],
    out: Annotated[
        Path, typer.Option(help="Directory for the prepared partitions and manifest.json.")
    ],
    partition: Annotated[
        str, typer.Option(help="natural | iid | dirichlet | quantity.")
    ] = "natural",
    partitions: Annotated[
        int | None, typer.Option(help="Number of partitions (not for natural).")
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="Dirichlet concentration for dirichlet/quantity skew.")
    ] = 0.5,
    window_days: Annotated[int, typer.Option(help="Days of history per example.")] = 56,
    step_days: Annotated[int, typer.Option(help="Days per time step.")] = 2,
    horizon_days: Annotated[int, typer.Option(help="Label horizon after the cut-off.")] = 7,
    history_length: Annotated[
        int,
        typer.Option(
            help="Task next-categories: category events kept per customer (the GRU's input)."
        ),
    ] = 20,
    count_unit: Annotated[
        str,
        typer.Option(
            help="What the purchase-count label counts in the horizon: transactions (purchase "
            "events) | customer-days (distinct days with a purchase) | periods (distinct "
            "--step-days periods with a purchase)."
        ),
    ] = "transactions",
    cutoff: Annotated[
        str | None, typer.Option(help="Cut-off date (default: end of data minus horizon).")
    ] = None,
    test_fraction: Annotated[
        float, typer.Option(help="Share of each retailer's customers held out.")
    ] = 0.2,
    k: Annotated[
        int, typer.Option(help="k of k-anonymity over the customer quasi-identifiers.")
    ] = 5,
    seed: Annotated[int, typer.Option(help="Seed for splits and partitions.")] = 0,
    strict: Annotated[
        bool, typer.Option(help="Reject a file with any bad row instead of dropping rows.")
    ] = False,
    mapping: Annotated[
        str | None, typer.Option(help="Column mapping: a TOML file or 'kind=...,customer=...'.")
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="HMAC key for pseudonyms (else $FEDMARKET_PSEUDONYM_KEY, "
            "else a per-user key that is created once)."
        ),
    ] = None,
    encrypt: Annotated[
        bool, typer.Option(help="Encrypt the prepared files at rest (Fernet).")
    ] = False,
    encryption_key_file: Annotated[
        Path | None, typer.Option(help="Fernet key (else $FEDMARKET_ENCRYPTION_KEY).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing prepared directory.")
    ] = False,
    attributes: Annotated[
        Path | None,
        typer.Option(help="A customer table whose attributes join the event sequences."),
    ] = None,
    attributes_mapping: Annotated[
        str | None,
        typer.Option(help="Its kind=table mapping (TOML file or 'kind=table,customer=...')."),
    ] = None,
    btyd_inputs: Annotated[
        bool,
        typer.Option(
            help="Add BG/NBD's P(alive), P(buy) and expected purchases per customer as model "
            "inputs (fitted per partition on its training customers)."
        ),
    ] = False,
) -> None:
    """Validate, anonymise and featurise raw exports into per-partition train/test tensors."""
    from fedmarket.data.ingest.mapping import mapping_option
    from fedmarket.data.prepare import PrepareOptions
    from fedmarket.data.prepare import prepare as run_prepare
    from fedmarket.data.static_join import static_option

    log_to_console(logging.WARNING)  # e.g. a horizon past the data: said, not an error
    opts = PrepareOptions(
        raw=raw,
        out=out,
        scheme=partition,
        n_partitions=partitions,
        alpha=alpha,
        window_days=window_days,
        step_days=step_days,
        horizon_days=horizon_days,
        history_length=history_length,
        count_unit=count_unit,
        cutoff=cutoff,
        test_fraction=test_fraction,
        k=k,
        seed=seed,
        strict=strict,
        mapping=mapping_option(mapping),
        pseudonym_key=_pseudonym_key(key_file, [raw, out]),
        fernet=keys.encryption_fernet(encrypt, encryption_key_file, [raw, out]),
        overwrite=overwrite,
        static=static_option(attributes, attributes_mapping),
        btyd_inputs=btyd_inputs,
    )
    with progress_bar("preparing events", None, unit="events") as advance:
        result = run_prepare(opts, advance)
    print_manifest(result.manifest)
    console.print(f"prepared data in {escape(str(result.out))}")


@data_app.command("inspect")
@friendly_errors
def data_inspect(data: Annotated[Path, typer.Argument(help="A prepared data directory.")]) -> None:
    """Print a prepared directory's manifest as tables."""

    print_manifest(store.read_manifest(data))


def _pseudonym_key(key_file: Path | None, data_dirs: list[Path]) -> bytes:
    def say(path: Path) -> None:
        console.print(
            f"created a pseudonym key at {escape(str(path))} (keep it; it is never stored "
            "with the data)"
        )

    return keys.resolve_pseudonym_key(key_file, data_dirs, on_create=say)


def print_manifest(m: dict[str, Any]) -> None:
    console.print(
        f"[bold]prepared data[/] schema v{m['schema_version']}, created {m['created_at']}, "
        f"source {escape(str(m['source']))}"
    )
    if "window" in m:
        w = m["window"]
        shape = (
            f"cut-off {w['cutoff']}, {w['n_steps']} steps x {w['step_days']} days of history, "
            f"labels over the next {w['horizon_days']} days"
        )
    else:  # a customer table: one step per customer
        t = m.get("table", {})
        shape = f"customer table, label {t.get('label')!r} ({t.get('label_kind')}), one step"
    console.print(
        escape(f"{shape}; {len(m['feature_names'])} features: {', '.join(m['feature_names'])}")
    )
    if m.get("labels"):
        console.print(f"purchase-count label (y_count): {escape(m['labels']['y_count'])}")
    p = m["partitioning"]
    table = Table(
        title=f"partitions ({p['scheme']}"
        + (f", alpha={p['alpha']}" if p.get("alpha") else "")
        + ")"
    )
    for col in ("id", "retailers", "train", "test", "train buy rate", "test buy rate"):
        table.add_column(col, justify="right" if col != "retailers" else "left")
    for part in m["partitions"]:
        names = escape(part.get("retailer") or _retailer_names(part["retailers"]))
        table.add_row(
            str(part["id"]),
            names,
            f"{part['train']['n']:,}",
            f"{part['test']['n']:,}",
            _pct(part["train"]["purchase_rate"]),
            _pct(part["test"]["purchase_rate"]),
        )
    console.print(table)
    if "window" in m:  # a customer table drops no rows and releases no customer table
        console.print(_drops_table(m["dropped_rows"]))
        kan = _kanon_table(m["retailers"])
        if kan.row_count:  # exports without a customer table release none
            console.print(kan)
    if m.get("encrypted"):
        console.print("files are encrypted at rest (Fernet)")


def _drops_table(dropped: dict[str, Any]) -> Table:
    drops = Table(title="dropped rows by reason")
    drops.add_column("reason")
    drops.add_column("rows", justify="right")
    for reason, count in dropped.get("dropped", {}).items():
        drops.add_row(reason, f"{count:,}")
    if not dropped.get("dropped"):
        drops.add_row("(none)", "0")
    if dropped.get("duplicate_rows") == "kept":
        kept = dropped.get("duplicates_kept", 0)
        drops.add_row("(identical rows kept as repeat purchases: keep_duplicates)", f"{kept:,}")
    return drops


def _kanon_table(retailers: dict[str, Any]) -> Table:
    kan = Table(title="k-anonymity of the released customer tables")
    for col in ("retailer", "k", "records in", "released", "removed", "classes", "smallest class"):
        kan.add_column(col, justify="left" if col == "retailer" else "right")
    for name, r in retailers.items():
        rep = r.get("k_anonymity")
        if rep:
            kan.add_row(
                escape(name),
                str(rep["k"]),
                f"{rep['records_in']:,}",
                f"{rep['records_released']:,}",
                f"{rep['records_removed']:,}",
                f"{rep['equivalence_classes']:,}",
                str(rep["smallest_class"]),
            )
    return kan


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _retailer_names(retailers: list[str]) -> str:
    """A partition's retailers as a reader wants them: the names when there are one or two
    (an iid split of one export is a share of that export), else how many."""
    return ", ".join(retailers) if len(retailers) <= 2 else f"{len(retailers)} retailers"
