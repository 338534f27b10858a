"""End-to-end CLI tests on fashion-glt-mini (real Fashion-MNIST, real extractor, a small subset)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from benchmark.cli import main
from benchmark.manifest import Manifest
from leaderboard.predictions import write_predictions

MINI = "fashion-glt-mini"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_clean_error(result: Result, fragment: str) -> None:
    """Non-zero exit, one `Error:` line naming the problem, no traceback."""
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and fragment in lines[0], result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("verb", ["list", "build-splits", "run", "score", "report"])
def test_every_verb_has_help(verb: str):
    result = invoke(verb, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_list_names_everything_registered():
    output = invoke("list").output
    for name in ("fashion-glt", MINI, "clt", "alt", "glt", "ce", "efficientnet-lite0", "val_acc"):
        assert name in output


def test_build_is_deterministic_and_byte_identical(
    mini_manifest_dir: Path, feature_cache: Path, tmp_path: Path
):
    result = invoke(
        "build-splits", "--benchmark", MINI, "--manifests", tmp_path, "--cache-dir", feature_cache
    )
    assert result.exit_code == 0, result.output
    first, second = Manifest(mini_manifest_dir / MINI), Manifest(tmp_path / MINI)
    assert first.content_hash == second.content_hash
    assert second.content_hash in result.output
    files = sorted(p.relative_to(first.root) for p in first.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second.root) for p in second.root.rglob("*") if p.is_file())
    for relative in files:
        assert (first.root / relative).read_bytes() == (second.root / relative).read_bytes(), relative


def test_another_seed_gives_another_manifest(mini_manifest_dir: Path, feature_cache: Path, tmp_path: Path):
    result = invoke(
        "build-splits",
        "--benchmark",
        MINI,
        "--manifests",
        tmp_path,
        "--cache-dir",
        feature_cache,
        "--seed",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert Manifest(tmp_path / MINI).content_hash != Manifest(mini_manifest_dir / MINI).content_hash


def test_run_score_report(mini_copy: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    result = invoke("run", "--benchmark", MINI, "--epochs", "2", "--manifests", mini_copy, "--out", runs)
    assert result.exit_code == 0, result.output
    records = sorted(runs.rglob("record.json"))
    assert [r.parent.name.split("-")[0] for r in records] == ["train_cbl", "train_glt"]
    glt_record = json.loads(records[1].read_text())
    manifest = Manifest(mini_copy / MINI)
    assert glt_record["manifest_sha256"] == manifest.content_hash
    assert glt_record["compute"]["images_processed"] == 2 * manifest.metadata["splits"]["train_glt"]["rows"]
    assert glt_record["selection_rule"] == "val_acc" and glt_record["selected"][0]["epoch"] in (1, 2)
    assert {r["protocol"] for r in glt_record["results"]} == {"clt", "glt"}
    for key in ("versions", "git_sha"):
        assert glt_record["environment"][key]

    # The scorer, called on the written predictions file, reproduces the record's metrics.
    glt_result = next(r for r in glt_record["results"] if r["protocol"] == "glt")
    predictions = records[1].parent / glt_result["predictions"]
    scored = invoke(
        "score",
        predictions,
        "--benchmark",
        MINI,
        "--protocol",
        "glt",
        "--manifests",
        mini_copy,
        "--json",
    )
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output) == glt_result["metrics"]

    # A second run of the same config is found done; --force runs it again identically (CPU determinism).
    again = invoke("run", "--benchmark", MINI, "--epochs", "2", "--manifests", mini_copy, "--out", runs,
                   "--protocol", "glt", "--protocol", "clt", "--force")  # fmt: skip
    assert again.exit_code == 0, again.output
    rerun = json.loads(records[1].read_text())
    assert rerun["results"] == glt_record["results"]

    report = invoke("report", "--runs", runs, "--out", tmp_path / "report")
    assert report.exit_code == 0, report.output
    html = (tmp_path / "report" / "index.html").read_text()
    for heading in (f"{MINI} · CLT", f"{MINI} · GLT", f"{MINI} · ALT"):
        assert heading in html

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n<!-- results:{MINI} -->\nstale\n<!-- /results -->\nend\n")
    written = invoke("report", "--runs", runs, "--out", tmp_path / "report", "--readme", readme)
    assert written.exit_code == 0, written.output
    text = readme.read_text()
    assert "stale" not in text and "| ce | 0 |" in text and text.endswith("<!-- /results -->\nend\n")
    readme.write_text("no section\n")
    refused = invoke("report", "--runs", runs, "--out", tmp_path / "unwritten", "--readme", readme)
    assert_clean_error(refused, "no `<!-- results:")
    assert not (tmp_path / "unwritten").exists()


def test_run_never_reads_test_labels(mini_copy: Path, tmp_path: Path):
    """With the held-out labels removed, training and prediction still work; only scoring needs them."""
    shutil.rmtree(mini_copy / MINI / "labels")
    result = CliRunner().invoke(
        main, ["run", "--benchmark", MINI, "--epochs", "1", "--protocol", "alt",
               "--manifests", str(mini_copy), "--out", str(tmp_path / "runs")],
    )  # fmt: skip
    assert_clean_error(result, "labels/test_gbl.parquet")
    assert list((tmp_path / "runs").rglob("predictions_test_gbl.csv")), (
        "predictions were written before scoring"
    )


def test_bad_inputs_give_one_line_errors(mini_copy: Path, tmp_path: Path):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x00\xff\xfe garbage")
    assert_clean_error(
        invoke("score", junk, "--benchmark", MINI, "--protocol", "glt", "--manifests", mini_copy),
        "not UTF-8",
    )
    assert_clean_error(
        invoke("run", "--method", "nope", "--manifests", mini_copy, "--benchmark", MINI),
        "unknown method",
    )
    assert_clean_error(
        invoke("run", "--benchmark", MINI, "--manifests", tmp_path / "none", "--out", tmp_path / "r"),
        "build-splits",
    )
    assert_clean_error(
        invoke("run", "--benchmark", MINI, "--manifests", mini_copy, "--set", "lr=1"),
        "no hyperparameter",
    )
    assert_clean_error(invoke("build-splits", "--benchmark", "imagenet-x"), "unknown benchmark")
    assert_clean_error(
        invoke("build-splits", "--benchmark", MINI, "--data-root", tmp_path, "--manifests", tmp_path),
        "IDX files",
    )
    assert_clean_error(
        invoke("build-splits", "--benchmark", MINI, "--num-clusters", "4", "--manifests", tmp_path),
        "multiple of 3",
    )
    assert_clean_error(invoke("report", "--runs", tmp_path / "absent"), "no runs folder")


def test_submit_stores_a_record_the_report_shows(mini_copy: Path, tmp_path: Path):
    manifest = Manifest(mini_copy / MINI)
    truth = manifest.test_labels("test_cbl")
    path = tmp_path / "mine.csv"
    header = f"# benchmark: {MINI}\n# split: test_cbl\n# manifest_sha256: {manifest.content_hash}\n"
    path.write_text(
        header + truth[["sample_id", "label"]].rename(columns={"label": "prediction"}).to_csv(index=False)
    )
    runs = tmp_path / "runs"
    args = ["--benchmark", MINI, "--protocol", "clt", "--train-split", "train_glt", "--manifests", mini_copy]
    args += ["--runs", runs]
    result = invoke("submit", path, "--name", "<script>alert(1)</script>", *args)
    assert result.exit_code == 0, result.output
    assert "acc 100.00" in result.output
    assert_clean_error(invoke("submit", tmp_path / "absent.csv", "--name", "x", *args), "cannot read")
    assert len(list(runs.rglob("record.json"))) == 1
    invoke("report", "--runs", runs, "--out", tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html


HEAVY_MODULES = {"torch", "baselines", "splits"}


def imported_heavy(*args: str | Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `glt-bench ARGS` in a fresh interpreter; the heavy packages it imported (`-X importtime`)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "benchmark.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    names = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done, names & HEAVY_MODULES


def test_light_verbs_never_import_torch_or_the_methods(tiny_manifest: Manifest, tmp_path: Path):
    manifest = tiny_manifest
    listing = manifest.public_listing("test_cbl")["sample_id"].to_numpy()
    binding = {"benchmark": "tiny", "split": "test_cbl", "manifest_sha256": manifest.content_hash}
    predictions = tmp_path / "p.csv"
    write_predictions(predictions, listing, manifest.test_labels("test_cbl")["label"].to_numpy(), binding)
    common = ["--benchmark", "tiny", "--protocol", "clt", "--manifests", tmp_path / "manifests"]
    runs = tmp_path / "runs"
    calls = [
        ["--help"],
        ["list"],
        ["score", predictions, *common],
        ["submit", predictions, *common, "--name", "team", "--train-split", "train_glt", "--runs", runs],
        ["report", "--runs", runs, "--out", tmp_path / "site"],
    ]
    if "verify" in main.commands:
        calls.append(["verify", "--help"])
    for args in calls:
        done, heavy = imported_heavy(*args)
        assert done.returncode == 0, (args, done.stderr[-2000:])
        assert not heavy, f"glt-bench {args[0]} imported {sorted(heavy)}"
    _, heavy = imported_heavy("build-splits", "--help")  # the check sees a verb that does import them
    assert heavy == HEAVY_MODULES


def tiny_predictions(manifest: Manifest, path: Path, split: str = "test_cbl") -> Path:
    """Perfect predictions of the tiny manifest's `split`."""
    binding = {"benchmark": "tiny", "split": split, "manifest_sha256": manifest.content_hash}
    truth = manifest.test_labels(split)
    write_predictions(path, truth["sample_id"].to_numpy(), truth["label"].to_numpy(), binding)
    return path


def test_submit_usage_error_names_the_options_it_needs(tiny_manifest: Manifest, tmp_path: Path):
    path = tiny_predictions(tiny_manifest, tmp_path / "p.csv")
    result = CliRunner().invoke(main, ["submit", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "submit needs --protocol, --name and --train-split; missing --protocol, --name, --train-split" in (
        result.output
    )
    result = CliRunner().invoke(main, ["submit", str(path), "--protocol", "clt", "--name", "x"])
    assert result.exit_code == 2 and "missing --train-split" in result.output


def test_an_undecodable_name_from_the_shell_is_refused_and_the_board_survives(
    tiny_manifest: Manifest, tmp_path: Path
):
    """The bytes reach Python as the shell passed them (argv is bytes on POSIX)."""
    path = tiny_predictions(tiny_manifest, tmp_path / "p.csv")
    runs = tmp_path / "runs"
    common = ["--protocol", "clt", "--train-split", "train_glt", "--benchmark", "tiny", "--runs", str(runs)]
    common += ["--manifests", str(tmp_path / "manifests")]
    for option, value in (("--name", b"bad\xffname"), ("--description", b"caf\xe9")):
        argv = [sys.executable, "-m", "benchmark.cli", "submit", str(path), *common, option, value]
        if option != "--name":
            argv += ["--name", "team"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.strip() == f"Error: {option} is not valid UTF-8; pass plain UTF-8 text"
    assert not list(runs.rglob("record.json"))
    stored = invoke("submit", path, *common, "--name", "team")
    assert stored.exit_code == 0, stored.output
    bad = runs / "tiny" / "submissions" / "forged" / "record.json"
    record = json.loads((next(runs.rglob("record.json"))).read_text())
    bad.parent.mkdir()
    bad.write_text(json.dumps({**record, "name": "x\udcffy"}))  # written by hand, as an attacker would
    (runs / "tiny" / "broken").mkdir()
    (runs / "tiny" / "broken" / "record.json").write_text(json.dumps({**record, "results": [{}]}))
    report = CliRunner().invoke(main, ["report", "--runs", str(runs), "--out", str(tmp_path / "site")])
    assert report.exit_code == 0, report.output
    assert "leaderboard of 1 records" in report.output
    assert "team" in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


def test_error_lines_are_capped_and_odd_inputs_are_one_line(tiny_manifest: Manifest, tmp_path: Path):
    long_path = tmp_path / ("x" * 200) / ("y" * 200 + ".csv")
    result = invoke(
        "score", long_path, "--benchmark", "tiny", "--protocol", "clt", "--manifests", tmp_path / "manifests"
    )
    assert_clean_error(result, "cannot read predictions file")
    error = next(line for line in result.output.splitlines() if line.startswith("Error:"))
    assert len(error) == len("Error: ") + 300 and error.endswith("…")

    path = tiny_predictions(tiny_manifest, tmp_path / "p.csv")
    runs_file = tmp_path / "runs-file"
    runs_file.write_text("not a folder")
    args = ["--benchmark", "tiny", "--protocol", "clt", "--train-split", "train_glt", "--name", "t"]
    submitted = invoke("submit", path, *args, "--manifests", tmp_path / "manifests", "--runs", runs_file)
    assert_clean_error(submitted, "is not a writable folder")
    assert_clean_error(invoke("report", "--runs", runs_file, "--out", tmp_path / "site"), "no runs folder")

    metadata = tiny_manifest.root / "metadata.json"
    good = json.loads(metadata.read_text())
    for wrong in ([], {"format": good["format"]}, {**good, "classes": [{"id": "x"}]}, {**good, "classes": 7}):
        metadata.write_text(json.dumps(wrong))
        for verb in (["score", path], ["submit", path, "--train-split", "train_glt", "--name", "t"]):
            result = invoke(
                *verb, "--benchmark", "tiny", "--protocol", "clt", "--manifests", tmp_path / "manifests"
            )
            assert_clean_error(result, "metadata.json")
