"""The predictions file: CSV or Parquet, one row per test sample, bound to a manifest hash.

Columns: `sample_id` (string), `prediction` (integer class id), optionally `score_0`…`score_{C-1}`.
Binding: `benchmark`, `split` and `manifest_sha256` — as `# key: value` lines before the CSV header,
or as Parquet schema metadata under `glt_bench.<key>`. Reading never executes code (no pickle).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

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
SCORE_COLUMN = re.compile(r"score_(\d+)")
MAX_BYTES = 2**30  # 1 GiB: room for a 60,000-row Test-GBL with all 1000 class scores


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
    columns = {"sample_id": np.asarray(sample_ids, dtype=str), "prediction": predictions}
    if scores is not None:  # all columns at once: one insert per class fragments the frame
        columns.update({f"score_{c}": scores[:, c] for c in range(scores.shape[1])})
    frame = pd.DataFrame(columns)
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            header = "".join(f"# {key}: {binding[key]}\n" for key in BINDING_KEYS)
            tmp.write_text(header + frame.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
        elif path.suffix == ".parquet":
            table = pa.Table.from_pandas(frame, preserve_index=False)
            meta = {f"{PARQUET_PREFIX}{key}".encode(): binding[key].encode() for key in BINDING_KEYS}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
            # zstd without dictionaries: 60,000 rows x 1000 float32 scores take ~210 MB, not ~340 MB
            pq.write_table(table, tmp, compression="zstd", use_dictionary=False)
        else:
            raise UserError(f"{path}: predictions files end in .csv or .parquet")


def _read_csv(path: Path, data: bytes) -> tuple[pa.Table, dict[str, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save the CSV as UTF-8") from None
    binding, body_start = {}, 0
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        binding[key.strip()] = value.strip()
        body_start += len(line)
    body = text[body_start:].encode()
    if not body.strip():
        raise UserError(f"{path} has no header row and no predictions; write `sample_id,prediction` rows")
    try:
        table = pacsv.read_csv(
            io.BytesIO(body), convert_options=pacsv.ConvertOptions(column_types={"sample_id": pa.string()})
        )
    except pa.ArrowException as exc:
        raise UserError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    return table, binding


def _read_parquet(path: Path, data: bytes) -> tuple[pa.Table, dict[str, str]]:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    meta = table.schema.metadata or {}
    binding = {
        key.decode()[len(PARQUET_PREFIX) :]: value.decode(errors="replace")
        for key, value in meta.items()
        if key.startswith(PARQUET_PREFIX.encode())
    }
    return table, binding


def read_predictions(path: str | Path, num_classes: int) -> Predictions:
    """Read and check the file's own structure (columns, types, ranges, binding)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(
                f"{path} is {size / 2**20:.0f} MiB, over the {MAX_BYTES // 2**20} MiB limit; "
                "drop the score columns or use Parquet"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read predictions file {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise UserError(f"{path} is empty; write one `sample_id,prediction` row per test sample")
    if data[:4] == b"PAR1":
        table, binding = _read_parquet(path, data)
    else:
        table, binding = _read_csv(path, data)

    missing_keys = [key for key in BINDING_KEYS if not binding.get(key)]
    if missing_keys:
        raise UserError(
            f"{path} does not say which manifest it answers (missing {', '.join(missing_keys)}); "
            "add `# key: value` lines before the CSV header (see README, Predictions file)"
        )
    columns = table.column_names
    score_columns = sorted((c for c in columns if SCORE_COLUMN.fullmatch(c)), key=lambda c: int(c[6:]))
    extra = [c for c in columns if c not in ("sample_id", "prediction") and c not in score_columns]
    if "sample_id" not in columns or "prediction" not in columns or extra:
        raise UserError(
            f"{path} has columns {columns}; expected sample_id, prediction and optionally "
            f"score_0…score_{num_classes - 1}"
        )
    if table.num_rows == 0:
        raise UserError(f"{path} has a header but no rows; write one row per test sample")
    ids = table.column("sample_id")
    if not pa.types.is_string(ids.type) and not pa.types.is_large_string(ids.type):
        raise UserError(f"{path}: sample_id must be text")
    if ids.null_count:
        raise UserError(f"{path}: {ids.null_count} rows have no sample_id")
    prediction = table.column("prediction")
    if prediction.null_count:
        raise UserError(f"{path}: {prediction.null_count} rows have no prediction")
    if not pa.types.is_integer(prediction.type):
        raise UserError(f"{path}: prediction must hold integer class ids, found {prediction.type}")
    preds = prediction.to_numpy().astype(np.int64)
    bad = (preds < 0) | (preds >= num_classes)
    if bad.any():
        raise UserError(
            f"{path}: {int(bad.sum())} predictions lie outside 0…{num_classes - 1} "
            f"(first: {int(preds[bad][0])})"
        )
    scores = None
    if score_columns:
        expected = [f"score_{c}" for c in range(num_classes)]
        if score_columns != expected:
            raise UserError(f"{path}: score columns must be exactly score_0…score_{num_classes - 1}")
        try:
            scores = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in expected])
        except (pa.ArrowException, ValueError, TypeError):
            raise UserError(f"{path}: score columns must be numbers") from None
        if not np.isfinite(scores).all():
            raise UserError(f"{path}: scores must be finite (found NaN or inf)")
    return Predictions(ids.combine_chunks(), preds, scores, binding)


def align(predictions: Predictions, listing_ids: pa.Array, path: str | Path) -> np.ndarray:
    """Predictions in the order of the split's public listing; every id exactly once."""
    position = pc.index_in(predictions.sample_ids, value_set=listing_ids).fill_null(-1).to_numpy()
    unknown = position < 0
    if unknown.any():
        raise UserError(
            f"{path}: {int(unknown.sum())} sample ids are not in this split "
            f"(first: {predictions.sample_ids[int(np.argmax(unknown))].as_py()!r}); "
            "answer only the split's public listing"
        )
    answers = np.bincount(position, minlength=len(listing_ids))
    if (answers > 1).any():
        raise UserError(
            f"{path}: {int((answers > 1).sum())} duplicate sample ids "
            f"(first: {listing_ids[int(np.argmax(answers > 1))].as_py()!r}); "
            "give each test sample exactly one row"
        )
    if (answers == 0).any():
        raise UserError(
            f"{path}: {int((answers == 0).sum())} test samples have no prediction "
            f"(first: {listing_ids[int(np.argmax(answers == 0))].as_py()!r}); "
            "answer every sample of the split"
        )
    aligned = np.empty(len(listing_ids), dtype=np.int64)
    aligned[position] = predictions.predictions
    return aligned
