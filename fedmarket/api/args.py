"""The Python API's arguments, turned into what the commands' code takes.

The CLI turns its options into paths, tuples, an override string and a data key in its
command bodies; the API takes friendlier forms (any path-like, a result object, a list or
the CLI's comma text, a dict of run settings) and converts them here, once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

# Any path, or a result that names a directory (the results are os.PathLike).
PathLike = str | os.PathLike[str]
# A dict of run settings ({"num-server-rounds": 3}) or the CLI's "num-server-rounds=3".
RunSettings = Mapping[str, Any] | str


def optional_path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


def items(value: Sequence[Any] | str) -> tuple[Any, ...]:
    """The CLI's comma-separated text or a sequence: "lstm,gru" and ["lstm", "gru"] agree."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return tuple(value)


def overrides(run_config: RunSettings) -> str:
    """A dict of run settings as the override string the CLI takes (one parser for both)."""
    if isinstance(run_config, str):
        return run_config
    if isinstance(run_config, Mapping):
        from fedmarket.config import format_overrides

        return format_overrides(run_config)
    raise ConfigError(
        f"run_config must be a dict of run settings such as {{'num-server-rounds': 3}} or "
        f'the CLI\'s "num-server-rounds=3" text, got {type(run_config).__name__}'
    )


def data_key(data: Path, key_file: PathLike | None, out: Path | None) -> Fernet | None:
    from fedmarket.data.protect.keys import prepared_data_fernet

    return prepared_data_fernet(data, optional_path(key_file), outside=[out] if out else [])
