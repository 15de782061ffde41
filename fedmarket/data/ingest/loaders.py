"""Stream validated events out of retailer export files, and find those files on disk.

A REES46 monthly CSV is several GB, so nothing here reads a whole event file: CSV goes through
pyarrow's streaming reader (several times faster than pandas' chunked C parser on this machine,
and it decompresses .gz / .bz2 itself) and is re-cut into chunks of exactly ``chunksize`` rows;
Parquet goes through ``iter_batches`` (which holds one row group at a time, so a file written
as one huge row group is read whole). Memory is bounded by the chunk size, plus the duplicate
filter (8 bytes per kept row, see ``dedup.DuplicateFilter``) and, for derived sessions, one
entry per customer (``sessions.SessionAssigner``).

Retailer ids: a ``retailer_id`` argument wins; otherwise a ``retailer_id`` column; otherwise
``default_retailer_id(path)``: the file name without its export suffix, or the parent
directory's name for files called ``events.*`` (the ``fedmarket data synth`` layout
``raw/retailer_03/events.parquet`` gives "retailer_03", ``raw/2019-Oct.csv.gz`` gives "2019-Oct").
"""

from __future__ import annotations

import bz2
import gzip
import io
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from fedmarket.checks import integer
from fedmarket.data.ingest import whitespace
from fedmarket.data.ingest.mapping import (
    REES46,
    WHITESPACE,
    ExportMapping,
    apply_mapping,
    unlisted_own_names,
)
from fedmarket.data.ingest.schema import (
    CUSTOMERS_STEM,
    EVENTS_STEM,
    RETAILER_COLUMN,
)
from fedmarket.data.ingest.sessions import SessionAssigner
from fedmarket.data.ingest.validate import DropReport, DuplicateFilter, validate_events
from fedmarket.errors import DataError

SUPPORTED_SUFFIXES: Final[tuple[str, ...]] = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".parquet")
_BLOCK_BYTES: Final[int] = 1 << 20
_OPENERS: Final[dict[str, Any]] = {".csv": open, ".csv.gz": gzip.open, ".csv.bz2": bz2.open}
# With an explicit format any file name is an export, except these, found beside exports
# (a mapping, synth.json, notes).
_NOT_EXPORTS: Final[tuple[str, ...]] = (".toml", ".json", ".md", ".yaml", ".yml")


def export_suffix(path: Path) -> str | None:
    """The supported suffix a file name ends with (case-insensitive), or None."""
    name = Path(path).name.lower()
    return next(
        (s for s in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None
    )


def file_suffix(path: Path, mapping: ExportMapping | None = None) -> str | None:
    """The export suffix ``path`` is read as: its own, or under a mapping's explicit
    ``format`` whatever its name (.gz, .bz2 and .zip still decompress); None: not an export."""
    suffix = export_suffix(path)
    fmt = None if mapping is None else mapping.format
    if suffix is not None or fmt is None:
        return suffix
    if fmt == "parquet":
        return ".parquet"
    name = Path(path).name.lower()
    return next((f".csv{c}" for c in (".gz", ".bz2", ".zip") if name.endswith(c)), ".csv")


def file_stem(path: Path) -> str:
    suffix = export_suffix(path) or Path(path).suffix
    return Path(path).name[: len(Path(path).name) - len(suffix)]


def default_retailer_id(path: Path) -> str:
    """Retailer id for a file that names none (see the module docstring)."""
    path = Path(path)
    stem = file_stem(path)
    return path.resolve().parent.name if stem == EVENTS_STEM else stem


def check_file(path: Path, mapping: ExportMapping | None = None) -> str:
    suffix = file_suffix(path, mapping)
    if suffix is None:
        raise DataError(
            f"{path}: unsupported file type; supported: {', '.join(SUPPORTED_SUFFIXES)}. "
            f'To read it as CSV whatever its name, set format = "csv" in the mapping '
            f'(--mapping "kind=...,format=csv")'
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); re-export it")
    return suffix


def iter_events(
    path: Path,
    *,
    mapping: ExportMapping | None = None,
    chunksize: int = 500_000,
    strict: bool = False,
    report: DropReport,
    retailer_id: str | None = None,
    duplicates: DuplicateFilter | None = None,
) -> Iterator[pd.DataFrame]:
    """Validated chunks (``validate_events`` output) of one export file, in file order.

    Bad rows are dropped and counted in ``report`` (or raise with ``strict``). Exact duplicate
    rows are found across the whole file; pass one ``duplicates`` filter to several files to
    find them across files too. Chunks whose rows were all dropped are skipped. The arguments
    are checked now; reading errors surface while iterating.
    """
    path = Path(path)
    integer("chunksize", chunksize, at_least=1)
    suffix = check_file(path, mapping)
    return _events(path, suffix, mapping, chunksize, strict, report, retailer_id, duplicates)


def _events(
    path: Path,
    suffix: str,
    mapping: ExportMapping | None,
    chunksize: int,
    strict: bool,
    report: DropReport,
    retailer_id: str | None,
    duplicates: DuplicateFilter | None,
) -> Iterator[pd.DataFrame]:
    rules = mapping or REES46
    if duplicates is None:
        duplicates = DuplicateFilter(keep_repeats=rules.keep_duplicates)
    sessions: SessionAssigner | None = None
    source, offset = str(path), 0
    with ExitStack() as stack:
        for table in read_tables(path, suffix, rules, chunksize, stack):
            frame = table.to_pandas(types_mapper=pd.ArrowDtype)
            if offset == 0:
                session_column = rules.column("session")
                if session_column is None or session_column not in frame.columns:
                    sessions = SessionAssigner(rules.session_gap_minutes)
                if retailer_id is None and RETAILER_COLUMN not in frame.columns:
                    retailer_id = default_retailer_id(path)
            if mapping is not None:
                report.note_own_names(unlisted_own_names(frame, mapping))
                frame = apply_mapping(frame, mapping, source=source)
            events = validate_events(
                frame,
                source=source,
                row_offset=offset,
                strict=strict,
                report=report,
                retailer_id=retailer_id,
                assume_tz=rules.assume_tz,
                timestamp_format=rules.timestamp_format,
                duplicates=duplicates,
            )
            offset += table.num_rows
            if sessions is not None:
                events = sessions.assign(events)
            if len(events):
                yield events
    if offset == 0:
        raise DataError(f"{path}: no data rows (the file has only a header or an empty table)")


def read_tables(
    path: Path, suffix: str, rules: ExportMapping, chunksize: int, stack: ExitStack
) -> Iterator[pa.Table]:
    if suffix == ".parquet":
        try:
            parquet = stack.enter_context(pq.ParquetFile(path))
            for batch in parquet.iter_batches(batch_size=chunksize):
                yield pa.Table.from_batches([batch]).replace_schema_metadata(None)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
        return
    rows = 0
    try:
        names = list(rules.columns or _open_csv(path, suffix, rules, None, stack).schema.names)
        reader = _open_csv(path, suffix, rules, names, stack)
        for table in _rechunk(reader, chunksize):
            yield table
            rows += table.num_rows
    except (pa.ArrowException, OSError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise _read_error(path, suffix, rules, rows, exc) from exc


def _open_csv(
    path: Path,
    suffix: str,
    rules: ExportMapping,
    names: list[str] | None,
    stack: ExitStack,
    include: list[str] | None = None,
) -> pcsv.CSVStreamingReader:
    source: Any = str(path)  # pyarrow decompresses .gz / .bz2 itself, by extension
    if suffix == ".csv.zip":
        source = stack.enter_context(_zip_member(path))
    elif export_suffix(path) is None:  # named otherwise (format = "csv"): open it ourselves
        source = stack.enter_context(_OPENERS[suffix](path, "rb"))
    encoding = rules.encoding.lower().replace("-", "").replace("_", "")
    read = pcsv.ReadOptions(
        block_size=_BLOCK_BYTES,
        encoding="utf8" if encoding == "utf8" else rules.encoding,
        column_names=list(rules.columns) if rules.columns else None,  # header-less file
    )
    if rules.csv_delimiter == WHITESPACE:
        if isinstance(source, str):
            source = stack.enter_context(_OPENERS[suffix](path, "rb"))
        source = io.BufferedReader(whitespace.TabStream(source), _BLOCK_BYTES)
        # quoting off: a quote in a log is text, and fields cannot hold spaces anyway
        parse = pcsv.ParseOptions(delimiter=whitespace.DELIMITER, quote_char=False)
    else:
        parse = pcsv.ParseOptions(delimiter=rules.csv_delimiter, newlines_in_values=True)
    types = {name: pa.string() for name in names or []}
    convert = pcsv.ConvertOptions(
        column_types=types, strings_can_be_null=True, null_values=[""], include_columns=include
    )
    return pcsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)


def _zip_member(path: Path) -> IO[bytes]:
    archive = zipfile.ZipFile(path)
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) != 1:
        archive.close()
        raise DataError(f"{path}: a zipped export must hold exactly one file, found {len(members)}")
    return archive.open(members[0])


def _rechunk(batches: Iterator[pa.RecordBatch], chunksize: int) -> Iterator[pa.Table]:
    """Cut a stream of record batches into tables of exactly ``chunksize`` rows (last one less)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    schema = None
    for batch in batches:
        schema = batch.schema
        pending.append(batch)
        count += batch.num_rows
        while count >= chunksize:
            table = pa.Table.from_batches(pending, schema=schema)
            yield table.slice(0, chunksize)
            rest = table.slice(chunksize)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending, schema=schema)


def _read_error(
    path: Path, suffix: str, rules: ExportMapping, rows: int, exc: Exception
) -> DataError:
    message, encoding = str(exc), rules.encoding
    if "Empty CSV file" in message:
        return DataError(f"{path}: the file is empty (no header); re-export it")
    if isinstance(exc, UnicodeDecodeError) or "UTF8" in message or "decode" in message:
        where = _find_bad_bytes(path, suffix, encoding)
        at = (
            f"at line {where[0]} (data row {where[0] - 1}; line 1 is the header), byte offset "
            f"{where[1]} of the uncompressed text"
            if where
            else f"after data row {rows}"
        )
        return DataError(
            f"{path}: bytes that are not valid {encoding} {at}. Re-save the export "
            f'as UTF-8, or set encoding (e.g. "latin-1") in the mapping'
        )
    if "CSV parse error" in message:
        return DataError(
            f"{path}: malformed CSV after data row {rows}: {message}. Check the "
            f"delimiter (csv_delimiter in the mapping) and quoting"
            + (
                f", and that the file has the {len(rules.columns)} columns the mapping's "
                f"columns names"
                if rules.columns
                else ""
            )
        )
    return DataError(f"{path}: cannot read the file after data row {rows}: {message}")


def _find_bad_bytes(path: Path, suffix: str, encoding: str) -> tuple[int, int] | None:
    """(line, byte offset) of the first undecodable line; slow, but only run after a failure."""
    with ExitStack() as stack:
        if suffix == ".csv.zip":
            handle = stack.enter_context(_zip_member(path))
        else:
            handle = stack.enter_context(_OPENERS[suffix](path, "rb"))
        offset = 0
        for number, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                return number, offset + exc.start
            offset += len(line)
    return None


def _event_files(directory: Path, mapping: ExportMapping | None) -> list[Path]:
    files = [
        p
        for p in sorted(directory.iterdir())
        if p.is_file()
        and not p.name.startswith(".")
        and (export_suffix(p) or not p.name.lower().endswith(_NOT_EXPORTS))
        and file_suffix(p, mapping)
        and file_stem(p) != CUSTOMERS_STEM
    ]
    stems: dict[str, Path] = {}
    for file in files:
        if file_stem(file) in stems:
            raise DataError(
                f"{directory}: both {stems[file_stem(file)].name} and {file.name}; keep "
                f"one format per export, or they are read twice"
            )
        stems[file_stem(file)] = file
    return files


def find_exports(raw: Path, mapping: ExportMapping | None = None) -> dict[str, list[Path]]:
    """Retailer id -> its event files, for one file, a synth-style tree or a folder of exports.

    A sub-directory is one retailer (all its event files, sorted by name); a file directly in
    ``raw`` is one retailer named by ``default_retailer_id``. Only one level deep is searched;
    ``customers.*`` files and hidden files are skipped. Under a mapping with an explicit
    ``format`` every file name is an export (bar mappings, JSON and notes, ``_NOT_EXPORTS``).
    """
    raw = Path(raw)
    if not raw.exists():
        raise DataError(f"{raw}: no such file or directory")
    if raw.is_file():
        check_file(raw, mapping)
        return {default_retailer_id(raw): [raw]}
    found: dict[str, list[Path]] = {}
    for file in _event_files(raw, mapping):
        found[default_retailer_id(file)] = [file]
    for sub in sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _event_files(sub, mapping)
        if files and sub.name in found:
            raise DataError(
                f"{raw}: retailer {sub.name!r} is both a file and a directory; rename one"
            )
        if files:
            found[sub.name] = files
    if not found:
        raise DataError(
            f"{raw}: no event files found (looked for "
            f"{', '.join('*' + s for s in SUPPORTED_SUFFIXES)} here and one level down)"
        )
    return found
