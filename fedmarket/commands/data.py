"""Bodies of `fedmarket data synth|prepare|inspect`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from fedmarket import keys
from fedmarket.data import store
from fedmarket.progress import console, progress_bar


def default_key_path() -> Path:
    """A per-user pseudonym key, outside any data directory, so repeated runs agree."""
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "fedmarket" / "pseudonym.key"


def synth(
    out: Path, retailers: int, customers: int, days: int, seed: int, fmt: str, start: str
) -> None:
    from fedmarket.data.synth import generate_retailers, plan_retailers

    # The generator reports progress in customers, and retailers vary in size around --customers.
    total = sum(p.n_customers for p in plan_retailers(retailers, customers, days, seed))
    with progress_bar("synthesising customers", total) as advance:
        summary = generate_retailers(
            out,
            n_retailers=retailers,
            n_customers=customers,
            days=days,
            seed=seed,
            fmt=fmt,
            start=start,
            progress=advance,
        )
    console.print(
        f"wrote {summary.total_events:,} events for {retailers} retailers to {escape(str(out))}"
    )


def resolve_pseudonym_key(key_file: Path | None, data_dirs: list[Path]) -> bytes:
    if key_file is None and not os.environ.get(keys.PSEUDONYM_KEY_ENV):
        key_file = default_key_path()
        if not key_file.exists():
            keys.create_key_file(key_file, "hmac", data_dirs=data_dirs)
            console.print(
                f"created a pseudonym key at {escape(str(key_file))} (keep it; it is "
                "never stored with the data)"
            )
    if key_file is not None:
        keys.check_key_outside(key_file, data_dirs)
    return keys.load_key(key_file, keys.PSEUDONYM_KEY_ENV, purpose="pseudonyms")


def prepare(
    raw: Path,
    out: Path,
    partition: str,
    partitions: int | None,
    alpha: float,
    window_days: int,
    step_days: int,
    horizon_days: int,
    cutoff: str | None,
    test_fraction: float,
    k: int,
    seed: int,
    strict: bool,
    mapping: str | None,
    key_file: Path | None,
    encrypt: bool,
    encryption_key_file: Path | None,
    overwrite: bool,
) -> None:
    from fedmarket.data.mapping import load_mapping, parse_mapping_option
    from fedmarket.data.prepare import PrepareOptions
    from fedmarket.data.prepare import prepare as run_prepare

    export_mapping = None
    if mapping is not None:
        export_mapping = (
            load_mapping(Path(mapping)) if "=" not in mapping else parse_mapping_option(mapping)
        )
    fernet = None
    if encrypt or encryption_key_file is not None:
        if encryption_key_file is not None:
            keys.check_key_outside(encryption_key_file, [raw, out])
        fernet = keys.fernet_from_key(
            keys.load_key(
                encryption_key_file, keys.ENCRYPTION_KEY_ENV, purpose="encryption at rest"
            )
        )
    opts = PrepareOptions(
        raw=raw,
        out=out,
        scheme=partition,
        n_partitions=partitions,
        alpha=alpha,
        window_days=window_days,
        step_days=step_days,
        horizon_days=horizon_days,
        cutoff=cutoff,
        test_fraction=test_fraction,
        k=k,
        seed=seed,
        strict=strict,
        mapping=export_mapping,
        pseudonym_key=resolve_pseudonym_key(key_file, [raw, out]),
        fernet=fernet,
        overwrite=overwrite,
    )
    with progress_bar("preparing events", None) as advance:
        result = run_prepare(opts, advance)
    print_manifest(result.manifest)
    console.print(f"prepared data in {escape(str(result.out))}")


def inspect(data: Path) -> None:
    print_manifest(store.read_manifest(data))


def print_manifest(m: dict[str, Any]) -> None:
    w = m["window"]
    console.print(
        f"[bold]prepared data[/] schema v{m['schema_version']}, created {m['created_at']}, "
        f"source {escape(str(m['source']))}"
    )
    console.print(
        f"cut-off {w['cutoff']}, {w['n_steps']} steps x {w['step_days']} days of history, "
        f"labels over the next {w['horizon_days']} days; {len(m['feature_names'])} features: "
        f"{', '.join(m['feature_names'])}"
    )
    p = m["partitioning"]
    table = Table(
        title=f"partitions ({p['scheme']}"
        + (f", alpha={p['alpha']}" if p.get("alpha") else "")
        + ")"
    )
    for col in ("id", "retailers", "train", "test", "train buy rate", "test buy rate"):
        table.add_column(col, justify="right" if col != "retailers" else "left")
    for part in m["partitions"]:
        names = escape(part.get("retailer") or f"{len(part['retailers'])} retailers")
        table.add_row(
            str(part["id"]),
            names,
            f"{part['train']['n']:,}",
            f"{part['test']['n']:,}",
            _pct(part["train"]["purchase_rate"]),
            _pct(part["test"]["purchase_rate"]),
        )
    console.print(table)
    drops = Table(title="dropped rows by reason")
    drops.add_column("reason")
    drops.add_column("rows", justify="right")
    for reason, count in m["dropped_rows"].get("dropped", {}).items():
        drops.add_row(reason, f"{count:,}")
    if not m["dropped_rows"].get("dropped"):
        drops.add_row("(none)", "0")
    console.print(drops)
    kan = Table(title="k-anonymity of the released customer tables")
    for col in ("retailer", "k", "records in", "released", "removed", "classes", "smallest class"):
        kan.add_column(col, justify="left" if col == "retailer" else "right")
    for name, r in m["retailers"].items():
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
    console.print(kan)
    if m.get("encrypted"):
        console.print("files are encrypted at rest (Fernet)")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"
