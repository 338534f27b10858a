"""`glt-bench submit`: validate and score anyone's predictions file, then store it as a record.

The file is read once: copied (regular files only, at most the size limit) into the runs folder
while its sha256 is taken, and that private copy is what gets scored and stored, so swapping the
file mid-submit cannot pair one file's metrics with another's bytes.

Each submission is its own identity: (name, protocol, seed), with the name compared after Unicode
NFKC normalisation and case folding. A second submission of an identity is refused, never merged or
overwritten. Its folder `<runs>/<benchmark>/submissions/<slug>-<protocol>-s<seed>-<id>/`, where `<id>`
hashes the identity, is created with an atomic `mkdir`, so names reducing to one slug never share a
folder and two concurrent submits of one identity cannot both land. `record.json` is written last,
atomically; orphans of a killed submit are removed by the next submit or report after an hour.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from benchmark.atomic import ensure_writable_dir, write_json
from benchmark.catalog import METHOD_SUMMARIES
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from benchmark.protocols import get_protocol
from benchmark.records import RECORD_VERSION, environment, result_entry
from leaderboard.predictions import PARQUET_MAGIC, copy_bounded, open_regular
from leaderboard.scoring import score_predictions
from leaderboard.store import clean_orphans, load_records

NAME_LIMIT, DESCRIPTION_LIMIT, URL_LIMIT = 100, 2000, 500
TRAIN_SPLITS = ("train_glt", "train_cbl")
# Characters that reorder or hide text where it is shown: bidi embeddings, overrides and isolates,
# and the marks; refused in every text field (names also refuse every other format character).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
NEVER = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})  # control, surrogate, private, unassigned, breaks


def check_text(option: str, value: str, limit: int, *, name: bool = False) -> str:
    """`value` of a text option, NFC-normalised; UserError naming the option if it could break a page.

    Refused: bytes that are not UTF-8 (they reach Python as lone surrogates), control characters and
    line breaks, bidi controls, text over `limit` characters; in names also zero-width and other
    invisible format characters, and leading or trailing spaces.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{option} is not valid UTF-8; pass plain UTF-8 text") from None
    value = unicodedata.normalize("NFC", value)
    if len(value) > limit:
        raise UserError(f"{option} is {len(value)} characters long; the limit is {limit}")
    for char in value:
        category = unicodedata.category(char)
        if char in BIDI_CONTROLS:
            kind = "a bidi control"
        elif category in NEVER:
            kind = "a control character or line break"
        elif name and category == "Cf":
            kind = "an invisible format character"
        else:
            continue
        raise UserError(f"{option} holds {kind} (U+{ord(char):04X}); use printable text on one line")
    if name and value != value.strip():
        raise UserError(f"{option} starts or ends with a space; remove it")
    return value


def _folded(name: str) -> str:
    """A name as submissions are compared: NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def identity(name: str, protocol: str, seed: int) -> str:
    """What makes a submission unique: its name (NFKC, case-folded), protocol and seed."""
    return f"{_folded(name)}\n{protocol}\n{seed}"


def submission_folder(runs_dir: Path, benchmark: str, name: str, protocol: str, seed: int) -> Path:
    """The folder of one submission identity (a readable slug plus a hash of the identity)."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", _folded(name)).strip("-.")[:40] or "submission"
    key = hashlib.sha256(identity(name, protocol, seed).encode()).hexdigest()[:12]
    return runs_dir / benchmark / "submissions" / f"{slug}-{protocol}-s{seed}-{key}"


def _identical(records: list[dict[str, Any]], file_sha256: str) -> list[str]:
    """Records (paths under the runs folder) holding a predictions file with this sha256."""
    return sorted(
        record["_path"]
        for record in records
        if any(result.get("predictions_sha256") == file_sha256 for result in record["results"])
    )


def submit(
    predictions: Path,
    manifest: Manifest,
    protocol: str,
    runs_dir: Path,
    *,
    name: str,
    train_split: str,
    method: str | None = None,
    description: str = "",
    url: str = "",
    seed: int = 0,
) -> Path:
    """Store, score and record a predictions file (UserError and nothing stored if invalid).

    Returns the record's path. `method` is what the submitter declares they ran (may be None).
    """
    name = check_text("--name", name, NAME_LIMIT, name=True)
    if not name:
        raise UserError("--name must not be empty: it is the leaderboard row's label")
    if _folded(name) in METHOD_SUMMARIES:
        raise UserError(
            f"--name {name!r} is a registered method's name, which labels the benchmark's own runs; "
            "choose another name (declare what you ran with --method)"
        )
    if method is not None:
        method = check_text("--method", method, NAME_LIMIT, name=True) or None
    description = check_text("--description", description, DESCRIPTION_LIMIT)
    url = check_text("--url", url, URL_LIMIT)
    if url and (not re.match(r"https?://", url) or any(c.isspace() for c in url)):
        raise UserError("--url must be an http:// or https:// link without spaces")
    needed = get_protocol(protocol).train_split
    if train_split != needed:
        raise UserError(
            f"--train-split {train_split} does not fit protocol {protocol}, which trains on {needed}; "
            f"train on {needed} or submit for another protocol"
        )

    inbox = ensure_writable_dir(runs_dir / manifest.benchmark / "submissions", "--runs")
    clean_orphans(runs_dir)
    records = load_records(runs_dir)
    _check_identity(records, runs_dir, manifest.benchmark, name, protocol, seed)  # before any work
    with open_regular(predictions) as source:
        fd, incoming = tempfile.mkstemp(prefix=".incoming.", suffix=".tmp", dir=inbox)
        os.close(fd)
        copy = Path(incoming)
        try:
            file_sha256 = copy_bounded(source, copy, predictions)
            metrics = _score_copy(copy, predictions, manifest, protocol)
            return _store(copy, runs_dir, manifest, protocol, file_sha256, metrics, records, {
                "name": name, "method": method, "train_split": train_split,
                "description": description, "url": url, "seed": seed,
            })  # fmt: skip
        finally:
            with contextlib.suppress(FileNotFoundError):
                copy.unlink()


def _score_copy(copy: Path, original: Path, manifest: Manifest, protocol: str) -> dict[str, Any]:
    """Score the stored copy; errors name the submitter's file, not the copy."""
    try:
        return score_predictions(copy, manifest, protocol)
    except UserError as exc:
        raise UserError(str(exc).replace(str(copy), str(original))) from None


def _store(
    copy: Path,
    runs_dir: Path,
    manifest: Manifest,
    protocol: str,
    file_sha256: str,
    metrics: dict[str, Any],
    records: list[dict[str, Any]],
    fields: dict[str, Any],
) -> Path:
    """Claim the identity's folder (atomically: one of two racing submits wins), move the copy in and
    write the record last. `records` are the runs folder's records, read before scoring."""
    name, seed = fields["name"], fields["seed"]
    folder = submission_folder(runs_dir, manifest.benchmark, name, protocol, seed)
    try:
        folder.mkdir()
    except FileExistsError:
        raise UserError(_taken(name, protocol, seed, folder)) from None
    with copy.open("rb") as handle:
        suffix = ".parquet" if handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC else ".csv"
    stored = folder / f"predictions{suffix}"
    os.replace(copy, stored)
    record: dict[str, Any] = {
        "format": RECORD_VERSION,
        "kind": "submission",
        "benchmark": manifest.benchmark,
        **fields,
        "hparams": {},
        "manifest_sha256": manifest.content_hash,
        "results": [result_entry(protocol, stored.name, file_sha256, metrics)],
        "identical_to": _identical(records, file_sha256),
        "submitted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
    }
    write_json(folder / "record.json", record)
    return folder / "record.json"


def _check_identity(
    records: list[dict[str, Any]], runs_dir: Path, benchmark: str, name: str, protocol: str, seed: int
) -> None:
    """UserError if a stored submission of this benchmark already has this identity."""
    key = identity(name, protocol, seed)
    for record in records:
        if record["kind"] != "submission" or record["benchmark"] != benchmark:
            continue
        label = str(record.get("name") or record["method"])
        if any(identity(label, result["protocol"], record["seed"]) == key for result in record["results"]):
            raise UserError(_taken(name, protocol, seed, runs_dir / record["_path"]))


def _taken(name: str, protocol: str, seed: int, where: Path) -> str:
    if where.is_dir() and not (where / "record.json").exists():
        return (
            f"a submission named {name!r} for {protocol} with seed {seed} is being stored or was killed "
            f"({where}); wait, or delete that folder (unfinished ones are removed after an hour)"
        )
    return (
        f"a submission named {name!r} for {protocol} with seed {seed} exists ({where}); "
        "give another --seed for another run of the same model, or another --name"
    )
