"""Submissions: scored and stored as records, nothing stored when invalid, safe under concurrency and
hostile input (text that breaks pages, files that are not files, swapped files, clashing identities)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.atomic import atomic_path, write_json
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from leaderboard import predictions as predictions_module
from leaderboard import submit as submit_module
from leaderboard.predictions import write_predictions
from leaderboard.scoring import score_predictions
from leaderboard.store import load_records
from leaderboard.submit import submit


def predictions_file(manifest: Manifest, path: Path, flip: int = 0, split: str = "test_gbl") -> Path:
    """Perfect predictions of a test split, except the first `flip` rows shifted by one class."""
    truth = manifest.test_labels(split)
    preds = truth["label"].to_numpy().copy()
    preds[:flip] = (preds[:flip] + 1) % manifest.num_classes
    binding = {"benchmark": manifest.benchmark, "split": split, "manifest_sha256": manifest.content_hash}
    write_predictions(path, truth["sample_id"].to_numpy(), preds, binding)
    return path


def stored_files(runs: Path) -> list[Path]:
    return sorted(p for p in runs.rglob("*") if p.is_file()) if runs.exists() else []


def test_submission_is_scored_and_stored(tiny_manifest: Manifest, tmp_path: Path):
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv", flip=3)
    record_path = submit(
        path, tiny_manifest, "glt", tmp_path / "runs", name="<b>team</b>", train_split="train_glt",
        description="d", url="https://example.org/x", seed=2,
    )  # fmt: skip
    record = json.loads(record_path.read_text())
    assert record["kind"] == "submission" and record["name"] == "<b>team</b>" and record["seed"] == 2
    assert record["method"] is None and record["train_split"] == "train_glt"
    assert record["identical_to"] == []
    result = record["results"][0]
    assert result["metrics"]["acc"] == pytest.approx(1 - 3 / 12)
    stored = record_path.parent / result["predictions"]
    assert stored.read_bytes() == path.read_bytes()
    assert result["predictions_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "<" not in str(record_path) and not list(record_path.parent.parent.glob(".*.tmp"))
    assert [r["kind"] for r in load_records(tmp_path / "runs")] == ["submission"]


def test_invalid_submission_stores_nothing(tiny_manifest: Manifest, tmp_path: Path):
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv")
    with pytest.raises(UserError, match="split") as error:
        submit(path, tiny_manifest, "clt", tmp_path / "runs", name="x", train_split="train_glt")
    assert str(path) in str(error.value) and ".incoming" not in str(error.value)
    assert stored_files(tmp_path / "runs") == []


def test_oversize_file_is_rejected(tiny_manifest: Manifest, tmp_path: Path, monkeypatch):
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv")
    monkeypatch.setattr(predictions_module, "MAX_BYTES", 64)
    with pytest.raises(UserError, match="over the 0 MiB limit"):
        submit(path, tiny_manifest, "glt", tmp_path / "runs", name="x", train_split="train_glt")
    assert stored_files(tmp_path / "runs") == []


def test_a_file_growing_past_the_limit_while_copied_is_cut_off(tmp_path: Path, monkeypatch):
    """The copy counts bytes as it reads: a size checked once up front is not trusted."""
    source = tmp_path / "big.csv"
    source.write_bytes(b"x" * 5000)
    monkeypatch.setattr(predictions_module, "MAX_BYTES", 4096)
    with source.open("rb") as handle, pytest.raises(UserError, match="over the 0 MiB limit"):
        predictions_module.copy_bounded(handle, tmp_path / "copy", source)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "bad\udcffname"}, "--name is not valid UTF-8"),  # the byte 0xff, as argv decodes it
        ({"description": "caf\udce9"}, "--description is not valid UTF-8"),
        ({"name": "bell\x07"}, "--name holds a control character or line break (U+0007)"),
        ({"name": "two\nlines"}, "line break (U+000A)"),
        ({"description": "one\rline"}, "--description holds a control character or line break (U+000D)"),
        ({"name": "abc\u202edcba"}, "--name holds a bidi control (U+202E)"),  # right-to-left override
        ({"description": "x\u2067y"}, "a bidi control (U+2067)"),  # right-to-left isolate
        ({"name": "zero\u200bwidth"}, "invisible format character (U+200B)"),
        ({"name": "n" * 101}, "--name is 101 characters long; the limit is 100"),
        ({"description": "d" * 2001}, "the limit is 2000"),
        ({"url": "https://e.org/" + "u" * 487}, "the limit is 500"),
        ({"url": "javascript:alert(1)"}, "http:// or https://"),
        ({"method": "m\x00"}, "--method holds"),
        ({"name": " padded"}, "space"),
        ({"name": "   "}, "space"),
    ],
)
def test_hostile_text_is_refused_at_the_boundary(
    tiny_manifest: Manifest, tmp_path: Path, kwargs: dict, fragment: str
):
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv")
    options = {"name": "team", "train_split": "train_glt", **kwargs}
    with pytest.raises(UserError, match=re.escape(fragment)) as error:
        submit(path, tiny_manifest, "glt", tmp_path / "runs", **options)
    assert "\n" not in str(error.value)
    assert stored_files(tmp_path / "runs") == []


def test_text_at_the_limits_and_unicode_is_accepted(tiny_manifest: Manifest, tmp_path: Path):
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv")
    name = "Équipe 東京 " + "n" * 88  # 100 characters
    record = json.loads(
        submit(
            path,
            tiny_manifest,
            "glt",
            tmp_path / "runs",
            name=name,
            train_split="train_glt",
            description="👩‍🔬 " + "d" * 1996,
            url="https://e.org/" + "u" * 486,
        ).read_text()
    )
    assert record["name"] == name and len(record["description"]) == 2000 and len(record["url"]) == 500


def _alarm(*_: object) -> None:
    raise TimeoutError("the reader blocked")


def test_fifo_device_and_folder_are_refused_without_hanging(tiny_manifest: Manifest, tmp_path: Path):
    fifo, zero = tmp_path / "fifo.csv", tmp_path / "zero.csv"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        for path in (fifo, zero, tmp_path):
            with pytest.raises(UserError, match="not a regular file"):
                submit(path, tiny_manifest, "glt", tmp_path / "runs", name="x", train_split="train_glt")
            with pytest.raises(UserError, match="not a regular file"):
                score_predictions(path, tiny_manifest, "glt")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert stored_files(tmp_path / "runs") == []


def test_swapping_the_file_mid_submit_cannot_pair_other_metrics(
    tiny_manifest: Manifest, tmp_path: Path, monkeypatch
):
    """The file is read once: what is scored, hashed and stored is the one copy taken."""
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv", flip=6)
    original = path.read_bytes()
    copy_bounded = submit_module.copy_bounded

    def copy_then_swap(source, target, shown):
        digest = copy_bounded(source, target, shown)
        predictions_file(tiny_manifest, path)  # the attacker swaps in a perfect file
        return digest

    monkeypatch.setattr(submit_module, "copy_bounded", copy_then_swap)
    record_path = submit(path, tiny_manifest, "glt", tmp_path / "runs", name="x", train_split="train_glt")
    record = json.loads(record_path.read_text())
    result = record["results"][0]
    stored = record_path.parent / result["predictions"]
    assert stored.read_bytes() == original != path.read_bytes()
    assert result["predictions_sha256"] == hashlib.sha256(original).hexdigest()
    assert result["metrics"]["acc"] == pytest.approx(0.5)


def test_each_submission_is_its_own_identity(tiny_manifest: Manifest, tmp_path: Path):
    runs = tmp_path / "runs"

    def send(name: str, flip: int, seed: int = 0, protocol: str = "glt") -> Path:
        path = predictions_file(tiny_manifest, tmp_path / f"p{flip}.csv", flip=flip)
        split = "train_cbl" if protocol == "alt" else "train_glt"
        return submit(path, tiny_manifest, protocol, runs, name=name, train_split=split, seed=seed)

    first = send("Team A!", 1)
    second = send("Team A?", 2)  # the same slug, another identity: its own folder
    assert first.parent != second.parent
    assert json.loads(first.read_text())["name"] == "Team A!"
    for seed in (1, 2):
        send("alice", 5 + seed, seed=seed)
    with pytest.raises(UserError, match="named 'alice' for glt with seed 1 exists") as error:
        send("alice", 8, seed=1)
    assert "--seed" in str(error.value)
    with pytest.raises(UserError, match="exists"):
        send("ALICE", 9, seed=2)  # case and compatibility forms name the same identity
    send("alice", 10, seed=1, protocol="alt")  # another protocol: another identity
    records = load_records(runs)
    assert len(records) == 5
    alice = sorted((r["seed"], r["results"][0]["protocol"]) for r in records if r["name"] == "alice")
    assert alice == [(1, "alt"), (1, "glt"), (2, "glt")]
    assert len({r["results"][0]["predictions_sha256"] for r in records}) == 5


def test_a_killed_submit_holds_its_identity_until_cleaned(tiny_manifest: Manifest, tmp_path: Path):
    runs = tmp_path / "runs"
    folder = submit_module.submission_folder(runs, tiny_manifest.benchmark, "bob", "glt", 0)
    folder.mkdir(parents=True)
    (folder / "predictions.csv").write_text("half")
    inbox = folder.parent
    (inbox / ".incoming.abc.tmp").write_text("half")
    (inbox / ".incoming.new.tmp").write_text("live")
    path = predictions_file(tiny_manifest, tmp_path / "p.csv")
    with pytest.raises(UserError, match="being stored or was killed"):
        submit(path, tiny_manifest, "glt", runs, name="bob", train_split="train_glt")
    hour_ago = time.time() - 3700
    for old in (folder, folder / "predictions.csv", inbox / ".incoming.abc.tmp"):
        os.utime(old, (hour_ago, hour_ago))
    record = submit(path, tiny_manifest, "glt", runs, name="bob", train_split="train_glt")
    assert record.parent == folder and record.exists()
    assert not (inbox / ".incoming.abc.tmp").exists() and (inbox / ".incoming.new.tmp").exists()


def test_a_registered_method_name_is_refused(tiny_manifest: Manifest, tmp_path: Path):
    path = predictions_file(tiny_manifest, tmp_path / "p.csv")
    for name in ("ce", "IFL", "la-posthoc"):
        with pytest.raises(UserError, match="registered method's name"):
            submit(path, tiny_manifest, "glt", tmp_path / "runs", name=name, train_split="train_glt")
    record = submit(
        path, tiny_manifest, "glt", tmp_path / "runs", name="mine", method="ifl", train_split="train_glt"
    )
    assert json.loads(record.read_text())["method"] == "ifl"


def test_the_training_split_must_fit_the_protocol(tiny_manifest: Manifest, tmp_path: Path):
    path = predictions_file(tiny_manifest, tmp_path / "p.csv")
    with pytest.raises(UserError, match="--train-split train_cbl does not fit protocol glt"):
        submit(path, tiny_manifest, "glt", tmp_path / "runs", name="x", train_split="train_cbl")
    with pytest.raises(UserError, match="trains on train_cbl"):
        submit(path, tiny_manifest, "alt", tmp_path / "runs", name="x", train_split="train_glt")
    record = submit(path, tiny_manifest, "alt", tmp_path / "runs", name="x", train_split="train_cbl")
    assert json.loads(record.read_text())["train_split"] == "train_cbl"


def test_identical_files_are_flagged(tiny_manifest: Manifest, tmp_path: Path):
    runs = tmp_path / "runs"
    path = predictions_file(tiny_manifest, tmp_path / "p.csv", flip=2)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    run = {
        "format": "glt-bench-record/1", "kind": "run", "benchmark": tiny_manifest.benchmark, "method": "ce",
        "seed": 0, "manifest_sha256": tiny_manifest.content_hash,
        "results": [{"protocol": "glt", "predictions_sha256": sha, "metrics": {"acc": 0.8}}],
    }  # fmt: skip
    write_json(runs / tiny_manifest.benchmark / "ce" / "run0" / "record.json", run)
    first = json.loads(
        submit(path, tiny_manifest, "glt", runs, name="a", train_split="train_glt").read_text()
    )
    assert first["identical_to"] == [f"{tiny_manifest.benchmark}/ce/run0/record.json"]
    second = submit(path, tiny_manifest, "glt", runs, name="b", train_split="train_glt")
    flagged = json.loads(second.read_text())["identical_to"]
    assert len(flagged) == 2 and any("submissions/a-glt-s0-" in p for p in flagged)
    other = predictions_file(tiny_manifest, tmp_path / "q.csv", flip=1)
    third = submit(other, tiny_manifest, "glt", runs, name="c", train_split="train_glt")
    assert json.loads(third.read_text())["identical_to"] == []


def test_runs_naming_a_regular_file_is_one_line(tiny_manifest: Manifest, tmp_path: Path):
    path = predictions_file(tiny_manifest, tmp_path / "p.csv")
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    with pytest.raises(UserError, match=r"--runs .* is not a writable folder"):
        submit(path, tiny_manifest, "glt", runs, name="x", train_split="train_glt")


def _submit_one(args: tuple[str, str, int]) -> str:
    manifest_root, runs, k = args
    manifest = Manifest(manifest_root)
    path = predictions_file(manifest, Path(runs).parent / f"p{k}.csv", flip=k)
    return str(submit(path, manifest, "glt", Path(runs), name=f"team{k}", seed=k, train_split="train_glt"))


def _submit_same(args: tuple[str, str, int]) -> str:
    manifest_root, runs, k = args
    manifest = Manifest(manifest_root)
    path = predictions_file(manifest, Path(runs).parent / f"s{k}.csv", flip=k)
    try:
        return str(submit(path, manifest, "glt", Path(runs), name="same", train_split="train_glt"))
    except UserError as exc:
        return f"refused: {exc}"


def test_eight_concurrent_submissions_all_land(tiny_manifest: Manifest, tmp_path: Path):
    runs = tmp_path / "runs"
    with multiprocessing.get_context("fork").Pool(8) as pool:
        paths = pool.map(_submit_one, [(str(tiny_manifest.root), str(runs), k) for k in range(8)])
    records = load_records(runs)
    assert len(set(paths)) == 8 and len(records) == 8
    accuracies = sorted(r["results"][0]["metrics"]["acc"] for r in records)
    assert accuracies == pytest.approx(sorted(1 - np.arange(8) / 12))
    assert not list(runs.rglob("*.tmp"))


def test_concurrent_submissions_of_one_identity_store_exactly_one(tiny_manifest: Manifest, tmp_path: Path):
    runs = tmp_path / "runs"
    with multiprocessing.get_context("fork").Pool(6) as pool:
        outcomes = pool.map(_submit_same, [(str(tiny_manifest.root), str(runs), k) for k in range(6)])
    stored = [o for o in outcomes if not o.startswith("refused")]
    assert len(stored) == 1 and len(load_records(runs)) == 1
    assert all("exists" in o or "being stored" in o for o in outcomes if o.startswith("refused"))
    record = json.loads(Path(stored[0]).read_text())
    folder = Path(stored[0]).parent
    assert (folder / "predictions.csv").read_bytes() != b"" and len(list(folder.iterdir())) == 2
    assert (
        hashlib.sha256((folder / "predictions.csv").read_bytes()).hexdigest()
        == record["results"][0]["predictions_sha256"]
    )


def test_a_crash_mid_write_leaves_no_file(tmp_path: Path):
    target = tmp_path / "record.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"half": ')
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_an_identity_is_per_benchmark(tmp_path: Path):
    stored = {"kind": "submission", "benchmark": "other", "name": "Alice", "method": None, "seed": 0,
              "results": [{"protocol": "glt"}], "_path": "other/submissions/x/record.json"}  # fmt: skip
    submit_module._check_identity([stored], tmp_path, "tiny", "alice", "glt", 0)  # another benchmark: free
    with pytest.raises(UserError, match="exists"):
        submit_module._check_identity([{**stored, "benchmark": "tiny"}], tmp_path, "tiny", "alice", "glt", 0)
