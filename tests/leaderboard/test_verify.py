"""Re-scoring stored predictions (`glt-bench verify`), the paired comparison (`glt-bench compare`) and
`report --manifests`: levels and significance on a small synthetic benchmark with real files."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from benchmark.atomic import write_json
from benchmark.cli import main
from benchmark.manifest import SPLITS, ClassInfo, Manifest, write_manifest
from benchmark.protocols import PROTOCOLS
from benchmark.provenance import sha256_file
from benchmark.records import RECORD_VERSION, result_entry
from leaderboard.predictions import write_predictions
from leaderboard.report import Stamp, write_report
from leaderboard.scoring import score_predictions
from leaderboard.store import load_records

ROWS, CLASSES = 600, 3


def make_manifest(root: Path) -> Manifest:
    groups = ("many", "medium", "few")
    classes = [ClassInfo(c, f"class{c}", groups[c], 100 // (c + 1), 30) for c in range(CLASSES)]
    frames = {}
    for s, name in enumerate(SPLITS):
        ids = [f"{name}/{i:04d}" for i in range(ROWS)]
        frames[name] = pd.DataFrame({"sample_id": ids, "path": ids, "label": np.arange(ROWS) % CLASSES,
                                     "attribute": (np.arange(ROWS) // CLASSES + s) % 3})  # fmt: skip
    return write_manifest(root, benchmark="tiny", classes=classes, splits=frames, build={"seed": 0})


def store(
    runs: Path, manifest: Manifest, kind: str, method: str, seed: int, accuracy: float, **extra
) -> Path:
    """A record with real predictions files (a share `accuracy` right, with class scores)."""
    folder = runs / "tiny" / (f"{method}-seed{seed}" if kind == "run" else f"submissions/{method}-{seed}")
    rng = np.random.default_rng(zlib.crc32(f"{method}-{seed}".encode()))
    results = []
    for protocol in ("clt", "glt"):
        split = PROTOCOLS[protocol].test_split
        truth = manifest.test_labels(split)
        labels = truth["label"].to_numpy()
        # Right on a low-discrepancy share `accuracy` of the samples, placed by the row's own offset:
        # rows of equal accuracy disagree sample by sample but have (almost) the same mean.
        right = (np.arange(len(labels)) * 0.6180339887 + rng.random()) % 1 < accuracy
        preds = np.where(right, labels, (labels + 1) % CLASSES)
        scores = rng.normal(size=(len(labels), CLASSES))
        scores[np.arange(len(labels)), preds] += 3
        path = folder / f"predictions_{split}.csv"
        binding = {"benchmark": "tiny", "split": split, "manifest_sha256": manifest.content_hash}
        write_predictions(path, truth["sample_id"].to_numpy(), preds, binding, scores=scores)
        metrics = score_predictions(path, manifest, protocol, resamples=50)
        results.append(result_entry(protocol, path.name, sha256_file(path), metrics))
    record = {"format": RECORD_VERSION, "kind": kind, "benchmark": "tiny", "method": method, "seed": seed,
              "hparams": {}, "manifest_sha256": manifest.content_hash, "results": results}  # fmt: skip
    record.update(extra)
    write_json(folder / "record.json", record)
    return folder / "record.json"


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("board")
    manifest = make_manifest(root / "manifests" / "tiny")
    runs = root / "runs"
    for seed in (0, 1):
        store(runs, manifest, "run", "ce", seed, 0.6)
    store(runs, manifest, "run", "balanced-softmax", 0, 0.61)
    store(runs, manifest, "submission", "strong", 0, 0.9, name="strong team", train_split="train_glt")
    return runs, root / "manifests"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_verify_passes_when_every_record_re_scores_equal(board):
    runs, manifests = board
    result = invoke("verify", "--runs", str(runs), "--manifests", str(manifests))
    assert result.exit_code == 0, result.output
    assert "8 of 8 results re-scored equal to their records" in result.output


def copy_board(board, tmp_path: Path) -> tuple[Path, Path]:
    import shutil

    runs, manifests = board
    shutil.copytree(runs, tmp_path / "runs")
    return tmp_path / "runs", manifests


def test_verify_fails_on_a_tampered_record_a_changed_file_and_a_missing_file(board, tmp_path):
    runs, manifests = copy_board(board, tmp_path)
    record_path = runs / "tiny" / "ce-seed0" / "record.json"
    record = json.loads(record_path.read_text())
    record["results"][0]["metrics"]["acc"] += 0.01  # a forged number
    record_path.write_text(json.dumps(record))
    predictions = runs / "tiny" / "balanced-softmax-seed0" / "predictions_test_gbl.csv"
    predictions.write_text(predictions.read_text() + "\n")  # any change of the bytes
    (runs / "tiny" / "submissions" / "strong-0" / "predictions_test_cbl.csv").unlink()
    result = invoke("verify", "--runs", str(runs), "--manifests", str(manifests))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith("drift") and "ce-seed0" in line and "differ in acc" in line for line in lines)
    assert any(line.startswith("drift") and "no longer has the sha256" in line for line in lines)
    assert any(line.startswith("unverifiable") and "is missing" in line for line in lines)
    assert "5 of 8 results re-scored equal" in result.output
    assert lines[-1].startswith("Error: 3 results drifted") and "Traceback" not in result.output


def test_verify_without_the_manifest_says_so(board, tmp_path):
    runs, _ = board
    result = invoke("verify", "--runs", str(runs), "--manifests", str(tmp_path))
    assert result.exit_code == 1 and "no usable manifest of tiny" in result.output


def test_report_with_manifests_shows_levels_and_significance(board, tmp_path):
    runs, manifests = board
    page = write_report(load_records(runs), tmp_path / "site", Stamp("d", "c"), runs_dir=runs,
                        manifest_dir=manifests).read_text()  # fmt: skip
    assert "Significance: each re-scored row against <b>ce</b>" in page
    glt = page.split("tiny · GLT</h3>")[1].split("</section>")[0]
    strong = next(row for row in glt.split("<tr") if "strong team" in row)
    assert 'class="badge level-re-scored">re-scored</span>' in strong
    assert 'class="sig better"' in strong and "significantly better than ce" in strong
    plain = next(row for row in glt.split("<tr") if ">balanced-softmax<" in row)
    assert "re-scored ✓" in plain and "· n.s.</span>" in plain  # 61% vs 60%: not significant
    assert "Calibration of the rows" in glt and "Reliability diagram" in glt
    without = write_report(load_records(runs), tmp_path / "plain", Stamp("d", "c")).read_text()
    assert "badge level-re-scored" not in without and "were not re-scored for this page" in without


def test_report_cli_takes_manifests_and_refuses_a_missing_folder(board, tmp_path):
    runs, manifests = board
    out = tmp_path / "site"
    result = invoke("report", "--runs", str(runs), "--out", str(out), "--manifests", str(manifests))
    assert result.exit_code == 0, result.output
    assert "badge level-re-scored" in (out / "index.html").read_text()
    bad = invoke("report", "--runs", str(runs), "--out", str(out), "--manifests", str(tmp_path / "none"))
    assert bad.exit_code == 1 and "--manifests" in bad.output and len(bad.output.splitlines()) == 1


def test_compare_by_label_and_by_folder(board):
    runs, manifests = board
    result = invoke("compare", "strong team", "ce", "--runs", str(runs), "--manifests", str(manifests))
    assert result.exit_code == 0, result.output
    header, clt, _ = result.output.splitlines()
    assert "A = strong team (1 records), B = ce (2 records)" in header and "Holm over 2 protocols" in header
    assert clt.startswith("CLT: acc A ") and clt.endswith("A better") and "Holm p 0.0002" in clt
    folder = str(runs / "tiny" / "balanced-softmax-seed0")
    result = invoke("compare", folder, "ce", "--runs", str(runs), "--manifests", str(manifests))
    assert result.exit_code == 0 and result.output.count("no significant difference") == 2


def test_compare_errors_are_one_line(board):
    runs, manifests = board
    result = invoke("compare", "nobody", "ce", "--runs", str(runs), "--manifests", str(manifests))
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert "neither a record path nor a row label" in result.output


def test_light_verbs_never_import_torch(board, tmp_path):
    runs, manifests = board
    where = ["--runs", str(runs), "--manifests", str(manifests)]
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom benchmark.cli import main\n"
        f"for args in ({['verify', *where]!r}, {['report', *where, '--out', str(tmp_path)]!r},"
        f" {['compare', 'ce', 'strong team', *where]!r}):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('baselines')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
