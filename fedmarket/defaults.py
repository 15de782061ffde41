"""Where fedmarket keeps what a user did not name: the default synthetic data and runs.

The default retailers are synthesised and prepared once per machine into the user's
cache, so `flwr run .` and `fedmarket simulate` work on a fresh clone with no arguments.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedmarket.errors import ConfigError

DEFAULT_SYNTH = {"n_retailers": 10, "n_customers": 5000, "days": 120, "seed": 0}

# A progress display for one stage: (description, total or None, unit) -> a context giving
# ``advance(n)``; ``fedmarket.progress.progress_bar`` is one.
Stage = Callable[[str, int | None, str], AbstractContextManager[Callable[..., None]]]


def cache_dir() -> Path:
    base = (
        os.environ.get("FEDMARKET_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fedmarket"
    )
    return Path(base)


def default_data_dir() -> Path:
    return cache_dir() / "default" / "prepared"


def resolve_data_dir(data_dir: str) -> Path:
    """``data-dir`` from the run config, or the default prepared data (which must exist)."""
    path = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if not (path / "manifest.json").is_file():
        hint = (
            "run `fedmarket simulate` or `fedmarket data synth` + `fedmarket data prepare` first"
            if not data_dir
            else "run `fedmarket data prepare --out` to that directory first"
        )
        raise ConfigError(f"data-dir {path}: no prepared data there; {hint}")
    return path


def default_run_dir(prefix: str = "run") -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(os.environ.get("FEDMARKET_RUNS", "runs")).resolve() / f"{prefix}-{stamp}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _current_schema(manifest: Path) -> bool:
    import json

    from fedmarket.data.store import SCHEMA_VERSION

    try:
        return json.loads(manifest.read_text()).get("schema_version") == SCHEMA_VERSION
    except (OSError, ValueError):
        return False


def ensure_default_data(stage: Stage | None = None, log: Callable[[str], None] = print) -> Path:
    """Synthesise and prepare the default retailers once (safe against concurrent callers).

    ``stage`` shows each step's progress in its own unit (customers synthesised, then
    event rows prepared), so neither reads as a bare count.
    """
    from fedmarket.data.prepare import PrepareOptions, prepare
    from fedmarket.data.protect.keys import resolve_pseudonym_key
    from fedmarket.data.synth.generate import generate_retailers, plan_retailers

    def show(description: str, total: int | None, unit: str) -> Any:
        return stage(description, total, unit) if stage else nullcontext(lambda *a, **k: None)

    prepared = default_data_dir()
    raw = prepared.parent / "raw"
    with _locked(prepared.parent / ".lock"):
        if (prepared / "manifest.json").is_file():
            if _current_schema(prepared / "manifest.json"):
                return prepared
            # prepared by an older fedmarket: the synthetic raw data is still good and only
            # the features are rebuilt (a user's own data is refused with the command instead)
            log(f"{prepared} was prepared by an older fedmarket; preparing it again")
        if raw.exists() and not (raw / "synth.json").exists():
            raise ConfigError(f"{raw} exists but holds no synthetic data; remove it")
        if not (raw / "synth.json").exists():
            log(f"synthesising the default retailers into {raw} (once per machine)")
            customers = sum(p.n_customers for p in plan_retailers(**DEFAULT_SYNTH))
            with show("synthesising customers", customers, "customers") as advance:
                generate_retailers(raw, **DEFAULT_SYNTH, progress=advance)
        log(f"preparing them into {prepared}")
        key = resolve_pseudonym_key(
            None, [raw, prepared], on_create=lambda path: log(f"created a pseudonym key at {path}")
        )
        with show("preparing events", None, "events") as advance:
            prepare(
                PrepareOptions(raw=raw, out=prepared, pseudonym_key=key, overwrite=True), advance
            )
    return prepared
