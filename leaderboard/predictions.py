"""The predictions file: CSV or Parquet, one row per test sample, bound to a manifest hash.

Columns: `sample_id` (string), `prediction` (integer class id), optionally `score_0`…`score_{C-1}`.
Binding: `benchmark`, `split` and `manifest_sha256` — as `# key: value` lines before the CSV header,
or as Parquet schema metadata under `glt_bench.<key>`. Reading never executes code (no pickle).

Reading is bounded: only regular files (no pipe, device or `/dev/zero` symlink), at most `MAX_BYTES`,
parsed by Arrow straight from the file (no whole-file bytes or str copy), so peak memory stays near
the parsed table plus one score matrix. A UTF-8 byte-order mark ("Excel CSV UTF-8") is accepted.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from benchmark.atomic import atomic_path
from benchmark.errors import UserError

BINDING_KEYS = ("benchmark", "split", "manifest_sha256")
PARQUET_PREFIX = "glt_bench."
PARQUET_MAGIC = b"PAR1"
SCORE_COLUMN = re.compile(r"score_(\d+)")
MAX_BYTES = 2**30  # 1 GiB: room for a 60,000-row Test-GBL with all 1000 class scores
MAX_LINE_BYTES = 2**20  # a `# key: value` line or the header row: 1 MiB is ~90,000 score columns
UTF8_BOM = b"\xef\xbb\xbf"
COPY_CHUNK = 2**20
CSV_BLOCK = 4 * 2**20  # rows parsed per batch when streaming scores: ~700 rows of 1000 scores; bigger
# blocks cut per-batch overhead little and raise the peak (Arrow reads blocks ahead)
SHOWN = 40  # characters of a file's value quoted in an error message


@dataclass(frozen=True)
class Predictions:
    sample_ids: pa.Array  # strings, kept in Arrow for fast matching
    predictions: np.ndarray  # int64
    scores: np.ndarray | None  # float N×C
    binding: dict[str, str]


def write_predictions(
    path: str | Path,
    sample_ids: np.ndarray,
    predictions: np.ndarray,
    binding: dict[str, str],
    scores: np.ndarray | None = None,
) -> None:
    """Write a predictions file (format from the suffix: .csv or .parquet), atomically."""
    path = Path(path)
    frame = pd.DataFrame({"sample_id": np.asarray(sample_ids, dtype=str), "prediction": predictions})
    if scores is not None:
        for c in range(scores.shape[1]):
            frame[f"score_{c}"] = scores[:, c]
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            header = "".join(f"# {key}: {binding[key]}\n" for key in BINDING_KEYS)
            tmp.write_text(header + frame.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
        elif path.suffix == ".parquet":
            table = pa.Table.from_pandas(frame, preserve_index=False)
            meta = {f"{PARQUET_PREFIX}{key}".encode(): binding[key].encode() for key in BINDING_KEYS}
            pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), tmp)
        else:
            raise UserError(f"{path}: predictions files end in .csv or .parquet")


def shown(value: object) -> str:
    """A value from the file, quoted for an error message and cut to `SHOWN` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


@contextlib.contextmanager
def open_regular(path: str | Path) -> Iterator[BinaryIO]:
    """Open `path` for reading if it is a regular file of at most `MAX_BYTES` (UserError otherwise).

    Opened non-blocking and checked on the open descriptor, so a FIFO never hangs and a symlink to
    a device (`/dev/zero`) is refused before a byte is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UserError(f"cannot read predictions file {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(
                f"{path} is not a regular file (a pipe, device or folder); save the predictions to a file"
            )
        check_size(path, info.st_size)
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def check_size(path: str | Path, size: int) -> None:
    """UserError if `size` bytes (read so far, or the file's size) exceed `MAX_BYTES`."""
    if size > MAX_BYTES:
        raise UserError(
            f"{path} is over the {MAX_BYTES // 2**20} MiB limit ({size / 2**20:.0f} MiB or more); "
            "drop the score columns or use Parquet"
        )


def copy_bounded(source: BinaryIO, target: Path, path: str | Path) -> str:
    """Copy an open file into `target` in chunks, at most `MAX_BYTES`; returns the copy's sha256."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := source.read(COPY_CHUNK):
            size += len(chunk)
            check_size(path, size)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _line(handle: BinaryIO, path: Path, number: int, what: str) -> bytes:
    line = handle.readline(MAX_LINE_BYTES + 1)
    if len(line) > MAX_LINE_BYTES:
        raise UserError(
            f"{path}: line {number} ({what}) is longer than {MAX_LINE_BYTES // 2**20} MiB; "
            "expected `sample_id,prediction[,score_0…]`"
        )
    return line


def _text(line: bytes, path: Path, number: int) -> str:
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text (line {number}); save the CSV as UTF-8") from None


def _csv_header(handle: BinaryIO, path: Path) -> tuple[list[str], dict[str, str], int]:
    """Column names, binding and the byte offset of the first data row, read line by line."""
    if handle.read(len(UTF8_BOM)) != UTF8_BOM:
        handle.seek(0)
    binding: dict[str, str] = {}
    number = 0
    while True:
        number += 1
        line = _line(handle, path, number, "a `# key: value` line or the header row")
        if not line:
            raise UserError(f"{path} has no header row; write `sample_id,prediction` and one row per sample")
        if line.startswith(b"#"):
            key, _, value = _text(line, path, number)[1:].partition(":")
            if key.strip() in BINDING_KEYS:
                binding[key.strip()] = value.strip()
        elif line.strip():
            break
    columns = next(csv.reader([_text(line, path, number)]))
    return [c.strip() for c in columns], binding, handle.tell()


def _check_columns(path: Path, columns: list[str], num_classes: int) -> list[str]:
    """The score columns in class order; UserError on duplicate, missing or unexpected columns."""
    counts = Counter(columns)
    duplicates = [c for c in columns if counts[c] > 1]
    if duplicates:
        raise UserError(f"{path}: column {shown(duplicates[0])} appears more than once; keep one")
    scores = [c for c in columns if SCORE_COLUMN.fullmatch(c)]
    extra = [c for c in columns if c not in ("sample_id", "prediction") and c not in scores]
    missing = [c for c in ("sample_id", "prediction") if c not in columns]
    if missing or extra:
        problem = f"no {' or '.join(missing)} column" if missing else ""
        if extra:
            more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
            unexpected = f"unexpected columns {', '.join(shown(c) for c in extra[:3])}{more}"
            problem = f"{problem}, {unexpected}" if problem else unexpected
        raise UserError(
            f"{path} has {problem}; expected sample_id, prediction and optionally "
            f"score_0…score_{num_classes - 1}"
        )
    expected = [f"score_{c}" for c in range(num_classes)]
    if scores and sorted(scores, key=lambda c: int(c[6:])) != expected:
        raise UserError(f"{path}: score columns must be exactly score_0…score_{num_classes - 1}")
    return expected if scores else []


def _arrow_message(exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return first if len(first) <= 160 else first[:159] + "…"


@dataclass
class _Source:
    """A predictions file opened for parsing: its record batches, a bound on its row count, its binding."""

    batches: Iterator[pa.RecordBatch]
    schema: pa.Schema
    rows: int  # at least the number of rows (the score matrix is allocated once, this size)
    binding: dict[str, str]
    scores: bool
    kind: str  # "CSV" or "Parquet file", for messages


def _line_ends(handle: BinaryIO) -> int:
    """Line ends from the current position to the end: a bound on the number of CSV rows."""
    count = 0
    while chunk := handle.read(16 * COPY_CHUNK):
        count += chunk.count(b"\n") + chunk.count(b"\r")
    return count


def _read_csv(handle: BinaryIO, path: Path, num_classes: int) -> _Source:
    """Header checked line by line; rows parsed by Arrow, streamed in batches when there are scores."""
    columns, binding, body = _csv_header(handle, path)
    scores = _check_columns(path, columns, num_classes)
    rest = handle.read(MAX_LINE_BYTES)
    if not rest.strip() and len(rest) < MAX_LINE_BYTES:
        raise UserError(f"{path} has a header but no rows; write one row per test sample")
    handle.seek(body)
    types = {"sample_id": pa.string(), "prediction": pa.string(), **dict.fromkeys(scores, pa.float64())}
    read = pacsv.ReadOptions(column_names=columns)
    convert = pacsv.ConvertOptions(column_types=types, null_values=[""])
    try:
        if not scores:  # small: parse at once, on every core
            table = pacsv.read_csv(handle, read_options=read, convert_options=convert)
            return _Source(iter(table.to_batches()), table.schema, table.num_rows, binding, False, "CSV")
        rows = _line_ends(handle) + 1
        handle.seek(body)
        read.block_size = CSV_BLOCK
        reader = pacsv.open_csv(handle, read_options=read, convert_options=convert)
    except (pa.ArrowException, ValueError) as exc:
        raise UserError(f"{path} is not a readable CSV ({_arrow_message(exc)})") from None
    return _Source(iter(reader), reader.schema, rows, binding, True, "CSV")


def _read_parquet(handle: BinaryIO, path: Path, num_classes: int) -> _Source:
    try:
        file = pq.ParquetFile(handle)
        schema = file.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({_arrow_message(exc)})") from None
    scores = bool(_check_columns(path, schema.names, num_classes))
    binding = {
        key.decode(errors="replace")[len(PARQUET_PREFIX) :]: value.decode(errors="replace")
        for key, value in (schema.metadata or {}).items()
        if key.startswith(PARQUET_PREFIX.encode())
    }
    if scores:
        batches = file.iter_batches(batch_size=4096)
    else:
        try:
            batches = iter(file.read().to_batches())
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise UserError(f"{path} is not a readable Parquet file ({_arrow_message(exc)})") from None
    return _Source(batches, schema, file.metadata.num_rows, binding, scores, "Parquet file")


def _collect(source: _Source, path: Path, num_classes: int) -> tuple[pa.Table, np.ndarray | None]:
    """The id and prediction columns as a table, and the scores copied batch by batch into one N×C
    float32 matrix (the only full-size copy: no whole-file bytes, text or table is held beside it;
    float32 halves it, and the calibration metrics work in float64 a chunk of rows at a time)."""
    ids, predictions, rows = [], [], 0
    scores = np.empty((source.rows, num_classes), dtype=np.float32) if source.scores else None
    columns = [source.schema.get_field_index(f"score_{c}") for c in range(num_classes)]
    try:
        for batch in source.batches:
            ids.append(batch.column("sample_id"))
            predictions.append(batch.column("prediction"))
            if scores is not None:
                if rows + batch.num_rows > len(scores):
                    raise UserError(f"{path} is not a readable {source.kind} (more rows than line ends)")
                _fill_scores(batch, columns, scores[rows : rows + batch.num_rows], rows, path)
            rows += batch.num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable {source.kind} ({_arrow_message(exc)})") from None
    table = pa.table(
        {
            "sample_id": pa.chunked_array(ids, source.schema.field("sample_id").type),
            "prediction": pa.chunked_array(predictions, source.schema.field("prediction").type),
        }
    )
    return table, None if scores is None else scores[:rows]


def _fill_scores(
    batch: pa.RecordBatch, columns: list[int], block: np.ndarray, start: int, path: Path
) -> None:
    """Copy one batch's score columns into `block` (its rows of the score matrix), checking them."""
    for c, index in enumerate(columns):
        column = batch.column(index)
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            raise UserError(f"{path}: score columns must be numbers, score_{c} holds {column.type}")
        if column.null_count:
            row = start + _first(column.is_null()) + 1
            raise UserError(f"{path}: score_{c} is empty in row {row}; give every score")
        with np.errstate(over="ignore"):
            block[:, c] = column.to_numpy(zero_copy_only=False)
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        raise UserError(
            f"{path}: scores must be finite numbers within ±3.4e38 (float32) "
            f"(found NaN, inf or a larger magnitude in row {start + int(np.argmin(finite)) + 1})"
        )


def _first(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _sample_ids(table: pa.Table, path: Path) -> pa.Array:
    ids = table.column("sample_id")
    if pa.types.is_dictionary(ids.type):
        ids = pc.cast(ids, ids.type.value_type)  # dictionary-encoded Parquet strings
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        raise UserError(f"{path}: sample_id must be text, found {ids.type}")
    if ids.null_count:
        raise UserError(
            f"{path}: {ids.null_count} rows have no sample_id (first: row {_first(ids.is_null()) + 1})"
        )
    return pc.cast(ids, pa.string()).combine_chunks()


def _class_ids(table: pa.Table, path: Path, num_classes: int, ids: pa.Array) -> np.ndarray:
    """The prediction column as int64, every value a class id; errors name the first bad row."""
    column = table.column("prediction")

    def row(i: int) -> str:
        return f"row {i + 1} (sample_id {shown(ids[i].as_py())})"

    empty = column.is_null()
    if pa.types.is_string(column.type):
        empty = pc.or_(empty, pc.equal(column, ""))
    count = pc.sum(empty).as_py() or 0
    if count:
        raise UserError(f"{path}: {count} rows have no prediction (first: {row(_first(empty))})")
    if pa.types.is_string(column.type):  # CSV: text checked here, so "+3" or "2.0" names its row
        whole = pc.match_substring_regex(column, r"^-?[0-9]+$")
        if not pc.all(whole).as_py():
            i = _first(pc.invert(whole))
            raise UserError(
                f"{path}: prediction {shown(column[i].as_py())} in {row(i)} is not an integer class id "
                f"0…{num_classes - 1}"
            )
        long = pc.greater(pc.utf8_length(pc.utf8_ltrim(column, characters="-0")), 18)
        if pc.any(long).as_py():  # beyond int64 too: shown as the file wrote it
            i = _first(long)
            raise UserError(
                f"{path}: predictions lie outside 0…{num_classes - 1} "
                f"(first: {column[i].as_py()[:SHOWN]} in {row(i)})"
            )
        column = pc.cast(column, pa.int64())
    elif not pa.types.is_integer(column.type):
        raise UserError(f"{path}: prediction must hold integer class ids, found {column.type}")
    wide = pa.uint64() if pa.types.is_unsigned_integer(column.type) else pa.int64()  # compared losslessly
    column = pc.cast(column, wide)
    bad = pc.or_(pc.less(column, pa.scalar(0, wide)), pc.greater_equal(column, pa.scalar(num_classes, wide)))
    count = pc.sum(bad).as_py() or 0
    if count:
        i = _first(bad)
        raise UserError(
            f"{path}: {count} predictions lie outside 0…{num_classes - 1} "
            f"(first: {column[i].as_py()} in {row(i)})"
        )
    return pc.cast(column, pa.int64()).to_numpy()


def read_predictions(path: str | Path, num_classes: int) -> Predictions:
    """Read and check the file's own structure (columns, types, ranges, binding)."""
    path = Path(path)
    with open_regular(path) as handle:
        magic = handle.read(len(PARQUET_MAGIC))
        if not magic:
            raise UserError(f"{path} is empty; write one `sample_id,prediction` row per test sample")
        handle.seek(0)
        reader = _read_parquet if magic == PARQUET_MAGIC else _read_csv
        source = reader(handle, path, num_classes)
        missing_keys = [key for key in BINDING_KEYS if not source.binding.get(key)]
        if missing_keys:  # before the rows are parsed
            raise UserError(
                f"{path} does not say which manifest it answers (missing {', '.join(missing_keys)}); "
                "add `# key: value` lines before the CSV header (see README, Predictions file)"
            )
        table, scores = _collect(source, path, num_classes)
    if table.num_rows == 0:
        raise UserError(f"{path} has a header but no rows; write one row per test sample")
    ids = _sample_ids(table, path)
    predictions = _class_ids(table, path, num_classes, ids)
    return Predictions(ids, predictions, scores, source.binding)


def align(
    predictions: Predictions, listing_ids: pa.Array | pa.ChunkedArray, path: str | Path
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and scores (None if the file has none) in the order of the split's public
    listing; every id exactly once."""
    if isinstance(listing_ids, pa.ChunkedArray):
        listing_ids = listing_ids.combine_chunks()
    if predictions.sample_ids.equals(listing_ids):  # the usual file: written in listing order
        return predictions.predictions, predictions.scores
    position = pc.index_in(predictions.sample_ids, value_set=listing_ids).fill_null(-1).to_numpy()
    unknown = position < 0
    if unknown.any():
        raise UserError(
            f"{path}: {int(unknown.sum())} sample ids are not in this split "
            f"(first: {shown(predictions.sample_ids[int(np.argmax(unknown))].as_py())}); "
            "answer only the split's public listing"
        )
    answers = np.bincount(position, minlength=len(listing_ids))
    if (answers > 1).any():
        raise UserError(
            f"{path}: {int((answers > 1).sum())} duplicate sample ids "
            f"(first: {shown(listing_ids[int(np.argmax(answers > 1))].as_py())}); "
            "give each test sample exactly one row"
        )
    if (answers == 0).any():
        raise UserError(
            f"{path}: {int((answers == 0).sum())} test samples have no prediction "
            f"(first: {shown(listing_ids[int(np.argmax(answers == 0))].as_py())}); "
            "answer every sample of the split"
        )
    aligned = np.empty(len(listing_ids), dtype=np.int64)
    aligned[position] = predictions.predictions
    scores = None
    if predictions.scores is not None:
        scores = np.empty_like(predictions.scores)
        scores[position] = predictions.scores
    return aligned, scores
