"""Raw and prepared data from Python: `fedmarket data synth` and `fedmarket data prepare`
as calls, and what they return.

The results are path-like, so ``prepare(raw=synth(...))`` and ``simulate(data=prepare(...))``
read as a pipeline; ``PreparedData.load`` reads a directory prepared earlier, by either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fedmarket.api.args import PathLike, optional_path
from fedmarket.api.results import number

if TYPE_CHECKING:
    pass

log = logging.getLogger("fedmarket")


@dataclass(frozen=True, repr=False)
class SyntheticData:
    """Raw exports of synthetic retailers; pass it as ``raw=`` to ``prepare``."""

    out: Path
    retailers: int
    customers: int
    events: int

    def __fspath__(self) -> str:
        return str(self.out)

    def __repr__(self) -> str:
        return (
            f"SyntheticData({str(self.out)!r}: {self.retailers} retailers, "
            f"{self.customers:,} customers, {self.events:,} events)"
        )


@dataclass(frozen=True, repr=False)
class PreparedData:
    """A prepared directory and its manifest; pass it as ``data=`` to the training steps."""

    out: Path
    manifest: dict[str, Any]

    @classmethod
    def load(cls, out: PathLike) -> PreparedData:
        """A directory prepared earlier, here or by `fedmarket data prepare`."""
        from fedmarket.data import store

        return cls(Path(out), store.read_manifest(Path(out)))

    def __fspath__(self) -> str:
        return str(self.out)

    @property
    def partitions(self) -> list[dict[str, Any]]:
        return list(self.manifest["partitions"])

    @property
    def n_train(self) -> int:
        return sum(int(p["train"]["n"]) for p in self.partitions)

    @property
    def n_test(self) -> int:
        return sum(int(p["test"]["n"]) for p in self.partitions)

    def __repr__(self) -> str:
        scheme = self.manifest["partitioning"]["scheme"]
        sealed = ", encrypted" if self.manifest.get("encrypted") else ""
        return (
            f"PreparedData({str(self.out)!r}: {len(self.partitions)} partitions ({scheme}), "
            f"{self.n_train:,} train / {self.n_test:,} test customers, "
            f"{len(self.manifest['feature_names'])} features{sealed})"
        )

    def _repr_markdown_(self) -> str:
        lines = [
            f"**prepared data** `{self.out}`",
            "",
            "| partition | retailers | train | test | train buy rate |",
            "|---:|---|---:|---:|---:|",
        ]
        for p in self.partitions:
            who = p.get("retailer") or f"{len(p['retailers'])} retailers"
            n_train, n_test = p["train"]["n"], p["test"]["n"]
            rate = number(p["train"].get("purchase_rate"), 3)
            lines.append(f"| {p['id']} | {who} | {n_train:,} | {n_test:,} | {rate} |")
        return "\n".join(lines)


def synth(
    *,
    out: PathLike,
    retailers: int = 10,
    customers: int = 5000,
    days: int = 120,
    seed: int = 0,
    fmt: Literal["parquet", "csv"] = "parquet",
    start: str = "2019-10-01",
    new_products: float = 0.0,
    launch_from: float = 0.0,
) -> SyntheticData:
    """Synthetic retailers' raw exports (`fedmarket data synth`): data anyone can make, so a
    result can be reproduced without anyone's customers. Same arguments, same bytes.
    ``new_products``: share of each retailer's products launched during the period, from
    ``launch_from`` (a fraction of it) on."""
    from fedmarket.data.synth.generate import generate_retailers

    made = generate_retailers(
        Path(out),
        n_retailers=retailers,
        n_customers=customers,
        days=days,
        seed=seed,
        fmt=fmt,
        start=start,
        new_products=new_products,
        launch_from=launch_from,
    )
    return SyntheticData(made.out_dir, len(made.retailers), made.total_customers, made.total_events)


def prepare(
    *,
    raw: PathLike,
    out: PathLike,
    partition: str = "natural",
    partitions: int | None = None,
    alpha: float = 0.5,
    window_days: int = 56,
    step_days: int = 2,
    horizon_days: int = 7,
    count_unit: str = "transactions",
    cutoff: str | None = None,
    test_fraction: float = 0.2,
    k: int = 5,
    seed: int = 0,
    strict: bool = False,
    mapping: PathLike | None = None,
    key_file: PathLike | None = None,
    encrypt: bool = False,
    encryption_key_file: PathLike | None = None,
    overwrite: bool = False,
    attributes: PathLike | None = None,
    attributes_mapping: PathLike | None = None,
    btyd_inputs: bool = False,
    progress: bool = True,
) -> PreparedData:
    """Validate, anonymise and featurise raw exports (`fedmarket data prepare`).

    The pseudonym key comes from ``key_file``, else $FEDMARKET_PSEUDONYM_KEY, else the
    per-user key (created once, and logged, so later preparations agree on pseudonyms).
    ``mapping`` is a TOML file or the CLI's inline ``"kind=...,customer=..."`` text;
    ``kind=table`` prepares a customer table. ``attributes`` (a customer table) with
    ``attributes_mapping`` (its kind=table mapping) joins static attributes to event data.
    ``count_unit`` is what the purchase-count label counts: ``transactions``,
    ``customer-days`` or ``periods`` (CLI ``--count-unit``). ``btyd_inputs`` adds BG/NBD's
    per-customer predictions as model inputs (CLI ``--btyd-inputs``).
    """
    from fedmarket.data.ingest.mapping import mapping_option
    from fedmarket.data.prepare import PrepareOptions
    from fedmarket.data.prepare import prepare as run_prepare
    from fedmarket.data.protect.keys import encryption_fernet, resolve_pseudonym_key
    from fedmarket.data.static_join import static_option
    from fedmarket.progress import progress_bar

    raw, out = Path(raw), Path(out)
    pseudonym_key = resolve_pseudonym_key(
        optional_path(key_file),
        [raw, out],
        on_create=lambda path: log.warning(
            "created a pseudonym key at %s (keep it; it is never stored with the data)", path
        ),
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
        count_unit=count_unit,
        cutoff=cutoff,
        test_fraction=test_fraction,
        k=k,
        seed=seed,
        strict=strict,
        mapping=mapping_option(mapping),
        pseudonym_key=pseudonym_key,
        fernet=encryption_fernet(encrypt, optional_path(encryption_key_file), [raw, out]),
        overwrite=overwrite,
        static=static_option(optional_path(attributes), attributes_mapping),
        btyd_inputs=btyd_inputs,
    )
    with progress_bar("preparing events", None, unit="events", enabled=progress) as advance:
        result = run_prepare(opts, advance)
    return PreparedData(result.out, result.manifest)
