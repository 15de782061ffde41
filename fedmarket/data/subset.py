"""A coalition of retailers as a prepared-data view: a directory whose manifest lists only
the coalition's partitions, renumbered 0..k-1, with links to the original partition files.

Valuing a retailer (``fedmarket contribution``) trains the consortium's model on subsets of
its retailers. A view lets every trainer (the simulation, its clients, the preflight checks)
read a subset as if it were prepared data, without copying a customer's row and without a
second code path: the arrays are the original files, reached through symbolic links.

The view keeps the consortium's normalisation statistics, feature window and labels: they
are aggregates every member already received when the consortium prepared its data, and a
coalition model normalised like the grand one can be scored on the full consortium's test
customers with the original arrays. Encrypted data stays encrypted (the links reach the
Fernet tokens; the same key opens them).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fedmarket.data import store
from fedmarket.errors import ConfigError, DataError

# The manifest key saying which partitions of which prepared directory a view holds.
VIEW_KEY = "coalition"


def coalition_view(data_dir: Path, members: Iterable[int], out: Path) -> Path:
    """Write the view of ``members`` (original partition ids) of ``data_dir`` at ``out``.

    Partition ``members[i]`` (in ascending order) becomes partition ``i`` of the view, so a
    simulation of the view gives its k retailers the node ids 0..k-1 it always does. An
    existing view at ``out`` is replaced (a view holds only links and a manifest).
    """
    data_dir = Path(data_dir).resolve()
    manifest = store.read_manifest(data_dir)
    ids = sorted({int(m) for m in members})
    known = store.partition_ids(manifest)
    if not ids:
        raise ConfigError("a coalition view needs at least one partition; got none")
    unknown = [m for m in ids if m not in known]
    if unknown:
        raise DataError(
            f"{data_dir}: no partition {', '.join(map(str, unknown))}; its partitions are "
            f"{', '.join(map(str, known))}"
        )
    out = Path(out)
    if out.resolve() == data_dir or data_dir in out.resolve().parents:
        raise ConfigError(f"{out}: a coalition view must lie outside the data it views")
    if out.exists():
        shutil.rmtree(out)
    (out / "partitions").mkdir(parents=True)
    by_id = {int(p["id"]): p for p in manifest["partitions"]}
    entries = []
    for new, old in enumerate(ids):
        (out / "partitions" / str(new)).symlink_to(data_dir / "partitions" / str(old))
        entries.append({**by_id[old], "id": new})
    view: dict[str, Any] = {k: v for k, v in manifest.items() if k != "schema_version"}
    view["partitions"] = entries
    names = {e.get("retailer") for e in entries}
    if isinstance(view.get("retailers"), dict) and None not in names:
        view["retailers"] = {k: v for k, v in view["retailers"].items() if k in names}
    view[VIEW_KEY] = {
        "of": str(data_dir),
        "partitions": ids,  # view partition i is original partition ids[i]
        "normalisation": "the consortium's (shared aggregates), not recomputed",
    }
    store.write_manifest(out, view)
    store.verify_prepared(out, store.read_manifest(out))
    return out


def original_partitions(view_dir: Path) -> list[int]:
    """The original partition id of each partition of a view, in view order."""
    manifest = store.read_manifest(Path(view_dir))
    info = manifest.get(VIEW_KEY)  # type: ignore[misc]
    if not isinstance(info, dict):
        raise DataError(f"{view_dir}: not a coalition view (its manifest has no {VIEW_KEY!r})")
    return [int(p) for p in info["partitions"]]
