"""Predictions-file validation: every error of the contract, and a valid round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.errors import UserError
from benchmark.manifest import Manifest
from leaderboard.predictions import read_predictions, write_predictions
from leaderboard.scoring import score_predictions


def binding(manifest: Manifest, split: str = "test_gbl") -> dict[str, str]:
    return {
        "benchmark": manifest.benchmark,
        "split": split,
        "manifest_sha256": manifest.content_hash,
    }


def listing(manifest: Manifest, split: str = "test_gbl") -> np.ndarray:
    return manifest.public_listing(split)["sample_id"].to_numpy()


def csv_text(manifest: Manifest, rows: list[str], header: str = "sample_id,prediction") -> str:
    lines = [f"# {k}: {v}" for k, v in binding(manifest).items()]
    return "\n".join([*lines, header, *rows]) + "\n"


def perfect_rows(manifest: Manifest) -> list[str]:
    labels = manifest.test_labels("test_gbl").set_index("sample_id")["label"]
    return [f"{sid},{labels[sid]}" for sid in listing(manifest)]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_scores_perfect_predictions(tiny_manifest: Manifest, tmp_path: Path, suffix: str):
    truth = tiny_manifest.test_labels("test_gbl")
    path = tmp_path / f"p{suffix}"
    # Rows in reverse order: scoring aligns by sample id, not by position.
    write_predictions(
        path,
        truth["sample_id"].to_numpy()[::-1],
        truth["label"].to_numpy()[::-1],
        binding(tiny_manifest),
    )
    metrics = score_predictions(path, tiny_manifest, "glt")
    assert metrics["acc"] == 1.0 and metrics["prec"] == 1.0 and metrics["n"] == len(truth)


def test_scores_columns_are_accepted_when_complete(tiny_manifest: Manifest, tmp_path: Path):
    truth = tiny_manifest.test_labels("test_gbl")
    scores = np.eye(3)[truth["label"].to_numpy()]
    path = tmp_path / "p.csv"
    write_predictions(path, truth["sample_id"], truth["label"], binding(tiny_manifest), scores=scores)
    assert read_predictions(path, 3).scores.shape == (len(truth), 3)


def write(tmp_path: Path, text: str | bytes, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def replace_predictions(rows: list[str], value: str) -> list[str]:
    return [row.split(",")[0] + "," + value for row in rows]


ERROR_CASES = {
    "missing ids": (lambda m: csv_text(m, perfect_rows(m)[1:]), "have no prediction"),
    "duplicate ids": (lambda m: csv_text(m, [*perfect_rows(m), perfect_rows(m)[0]]), "duplicate sample ids"),
    "unknown ids": (lambda m: csv_text(m, [*perfect_rows(m)[1:], "nope/1,0"]), "not in this split"),
    "non-integer": (lambda m: csv_text(m, replace_predictions(perfect_rows(m), "cat")), "integer"),
    "float predictions": (
        lambda m: csv_text(m, [r + ".5" for r in perfect_rows(m)]),
        "not an integer class id",
    ),
    "out of range": (lambda m: csv_text(m, replace_predictions(perfect_rows(m), "3")), "outside 0…2"),
    "negative": (lambda m: csv_text(m, replace_predictions(perfect_rows(m), "-1")), "outside 0…2"),
    "wrong columns": (lambda m: csv_text(m, perfect_rows(m), "id,prediction"), "no sample_id column"),
    "extra column": (
        lambda m: csv_text(m, [r + ",x" for r in perfect_rows(m)], "sample_id,prediction,note"),
        "unexpected columns 'note'",
    ),
    "header only": (lambda m: csv_text(m, []), "no rows"),
    "empty file": (lambda m: "", "is empty"),
    "binary junk": (lambda m: b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8"),
    "no binding": (
        lambda m: "sample_id,prediction\n" + "\n".join(perfect_rows(m)) + "\n",
        "missing benchmark",
    ),
    "hash mismatch": (
        lambda m: csv_text(m, perfect_rows(m)).replace(m.content_hash, "0" * 64),
        "manifest_sha256",
    ),
    "other split": (
        lambda m: csv_text(m, perfect_rows(m)).replace("split: test_gbl", "split: test_cbl"),
        "split",
    ),
    "missing prediction": (
        lambda m: csv_text(m, [*replace_predictions(perfect_rows(m)[:1], ""), *perfect_rows(m)[1:]]),
        "no prediction",
    ),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_each_invalid_file_is_rejected_with_one_line(tiny_manifest: Manifest, tmp_path: Path, case: str):
    make, fragment = ERROR_CASES[case]
    path = write(tmp_path, make(tiny_manifest))
    with pytest.raises(UserError) as error:
        score_predictions(path, tiny_manifest, "glt")
    message = str(error.value)
    assert fragment in message
    assert "\n" not in message


def test_unreadable_file(tiny_manifest: Manifest, tmp_path: Path):
    with pytest.raises(UserError, match="cannot read predictions file"):
        score_predictions(tmp_path / "absent.csv", tiny_manifest, "glt")


def test_corrupt_parquet(tiny_manifest: Manifest, tmp_path: Path):
    path = write(tmp_path, b"PAR1" + b"\x00" * 64 + b"PAR1", "p.parquet")
    with pytest.raises(UserError, match="not a readable Parquet"):
        score_predictions(path, tiny_manifest, "glt")


def test_protocol_decides_the_split(tiny_manifest: Manifest, tmp_path: Path):
    """A Test-GBL file answers GLT and ALT, never CLT (Test-CBL)."""
    path = write(tmp_path, csv_text(tiny_manifest, perfect_rows(tiny_manifest)))
    assert score_predictions(path, tiny_manifest, "alt")["acc"] == 1.0
    with pytest.raises(UserError, match="split"):
        score_predictions(path, tiny_manifest, "clt")


@pytest.mark.parametrize(
    ("scores_header", "row_suffix", "fragment"),
    [
        ("score_0,score_1", ",0.5,0.5", "score columns must be exactly"),  # wrong width (3 classes)
        ("score_0,score_1,score_2", ",0.1,nan,0.3", "finite"),
        ("score_0,score_1,score_2", ",0.1,inf,0.3", "finite"),
        ("score_0,score_1,score_2", ",0.1,1e300,0.3", "float32"),  # finite, but not in float32
    ],
)
def test_bad_scores_are_rejected(
    tiny_manifest: Manifest, tmp_path: Path, scores_header: str, row_suffix: str, fragment: str
):
    rows = [r + row_suffix for r in perfect_rows(tiny_manifest)]
    path = write(tmp_path, csv_text(tiny_manifest, rows, "sample_id,prediction," + scores_header))
    with pytest.raises(UserError, match=fragment):
        score_predictions(path, tiny_manifest, "glt")


def test_utf8_byte_order_mark_is_accepted(tiny_manifest: Manifest, tmp_path: Path):
    """Excel's "CSV UTF-8" starts with a BOM; it is valid input."""
    path = write(tmp_path, b"\xef\xbb\xbf" + csv_text(tiny_manifest, perfect_rows(tiny_manifest)).encode())
    assert score_predictions(path, tiny_manifest, "glt")["acc"] == 1.0


def test_crlf_line_ends_and_blank_lines_are_accepted(tiny_manifest: Manifest, tmp_path: Path):
    text = csv_text(tiny_manifest, perfect_rows(tiny_manifest)).replace("\n", "\r\n")
    path = write(tmp_path, text.replace("sample_id,prediction", "\r\nsample_id,prediction"))
    assert score_predictions(path, tiny_manifest, "glt")["acc"] == 1.0


HOSTILE_CASES = {
    "duplicate column": (
        lambda m: csv_text(m, [r + ",1" for r in perfect_rows(m)], "sample_id,prediction,prediction"),
        "column 'prediction' appears more than once",
    ),
    "header over 1 MiB": (
        lambda m: csv_text(m, perfect_rows(m), "sample_id,prediction," + "x" * (2**20 + 10)),
        "line 4 (a `# key: value` line or the header row) is longer than 1 MiB",
    ),
    "100,000 extra columns": (
        lambda m: csv_text(
            m, perfect_rows(m), "sample_id,prediction," + ",".join(f"c{i}" for i in range(10**5))
        ),
        "unexpected columns 'c0', 'c1', 'c2' and 99997 more",
    ),
    "plus sign": (
        lambda m: csv_text(
            m, [*perfect_rows(m)[:2], perfect_rows(m)[2].split(",")[0] + ",+3", *perfect_rows(m)[3:]]
        ),
        "prediction '+3' in row 3 (sample_id 'test_gbl/002') is not an integer class id 0…2",
    ),
    "2^63+1": (
        lambda m: csv_text(m, replace_predictions(perfect_rows(m), str(2**63 + 1))),
        f"outside 0…2 (first: {2**63 + 1} in row 1",
    ),
    "row with an extra field": (
        lambda m: csv_text(m, [*perfect_rows(m)[:-1], perfect_rows(m)[-1] + ",9"]),
        "is not a readable CSV (CSV parse error: Expected 2 columns, got 3",
    ),
    "bad byte in a binding line": (lambda m: b"# benchmark: t\xffiny\n", "is not UTF-8 text (line 1)"),
    "binding lines only": (lambda m: "# benchmark: tiny\n# split: test_gbl\n", "has no header row"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CASES))
def test_hostile_files_get_short_precise_messages(tiny_manifest: Manifest, tmp_path: Path, case: str):
    make, fragment = HOSTILE_CASES[case]
    path = write(tmp_path, make(tiny_manifest))
    with pytest.raises(UserError) as error:
        score_predictions(path, tiny_manifest, "glt")
    message = str(error.value)
    assert fragment in message
    assert "\n" not in message and len(message) < 300 + len(str(path))


def parquet(tmp_path: Path, manifest: Manifest, table: pa.Table) -> Path:
    meta = {f"glt_bench.{k}".encode(): v.encode() for k, v in binding(manifest).items()}
    path = tmp_path / "p.parquet"
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def test_dictionary_encoded_sample_ids_are_accepted(tiny_manifest: Manifest, tmp_path: Path):
    truth = tiny_manifest.test_labels("test_gbl")
    ids = pa.array(truth["sample_id"].tolist()).dictionary_encode()
    table = pa.table({"sample_id": ids, "prediction": pa.array(truth["label"].to_numpy(), pa.int64())})
    assert pa.types.is_dictionary(pq.read_table(parquet(tmp_path, tiny_manifest, table)).schema.field(0).type)
    assert score_predictions(tmp_path / "p.parquet", tiny_manifest, "glt")["acc"] == 1.0


def test_unsigned_2_63_plus_1_is_shown_as_written(tiny_manifest: Manifest, tmp_path: Path):
    truth = tiny_manifest.test_labels("test_gbl")
    predictions = np.full(len(truth), 2**63 + 1, dtype=np.uint64)
    table = pa.table({"sample_id": truth["sample_id"].tolist(), "prediction": pa.array(predictions)})
    with pytest.raises(UserError, match=f"first: {2**63 + 1} in row 1"):
        score_predictions(parquet(tmp_path, tiny_manifest, table), tiny_manifest, "glt")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_streamed_scores_equal_the_written_ones(
    tiny_manifest: Manifest, tmp_path: Path, monkeypatch, suffix: str
):
    """Scores are parsed in many small batches (a 128-byte CSV block) into one float32 matrix, each value
    exactly its float32 rounding."""
    from leaderboard import predictions as predictions_module

    monkeypatch.setattr(predictions_module, "CSV_BLOCK", 128)
    truth = tiny_manifest.test_labels("test_gbl")
    scores = np.random.default_rng(0).random((len(truth), 3))
    path = tmp_path / f"p{suffix}"
    write_predictions(path, truth["sample_id"], truth["label"], binding(tiny_manifest), scores=scores)
    read = read_predictions(path, 3)
    assert read.scores.dtype == np.float32 and np.array_equal(read.scores, scores.astype(np.float32))
    assert np.array_equal(read.predictions, truth["label"].to_numpy())
    assert read.sample_ids.to_pylist() == truth["sample_id"].tolist()
