"""The source doctor on real on-disk layouts made here (ILSVRC-style folders, COCO folders)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from benchmark.cli import main
from benchmark.errors import UserError
from splits import doctor


def tree(root: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"{name}_{i}.JPEG")
    return root


def test_a_release_with_the_expected_counts_is_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "ILSVRC_CLASSES", 2)
    monkeypatch.setattr(doctor, "ILSVRC_IMAGES", 7)
    monkeypatch.setattr(doctor, "ILSVRC_RANGE", (3, 4))
    root = tree(tmp_path / "train", {"n01440764": 4, "n01443537": 3})
    lines = doctor.doctor_imagenet(root)
    assert lines == [
        "found: 2 class folders, 7 images, 3–4 per class",
        "ok: this is the ILSVRC-2012 train release",
    ]


def test_another_release_and_bad_files_are_named(tmp_path: Path) -> None:
    root = tree(tmp_path / "data" / "train", {"n01440764": 3, "cats": 2, "n02000000": 0})
    (root / "n01440764" / "notes.txt").write_text("x")
    (root / "n01440764" / "empty.JPEG").write_bytes(b"")
    (tmp_path / "data" / "val").mkdir()
    lines = doctor.doctor_imagenet(tmp_path / "data")
    text = "\n".join(lines)
    assert "ok: using" in text and "val/ and others are ignored" in text
    assert "error: class folder" in text and "n02000000 holds no images" in text
    assert "error: 1 empty image file(s)" in text
    assert "warning: 1 non-image file(s) are ignored, e.g. 'notes.txt'" in text
    assert "warning: 3 class folders, ILSVRC-2012 train has 1000" in text
    assert "are not WordNet ids" in text and "'cats'" in text
    assert "ILSVRC-2012 train has 1,281,167" in text


def test_the_2017_localisation_layout_is_pointed_out(tmp_path: Path) -> None:
    tree(tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "train", {"n01440764": 2})
    lines = doctor.doctor_imagenet(tmp_path)
    assert any("CLS-LOC layout" in line for line in lines)


def test_coco_2017_and_attribute_kinds(tmp_path: Path) -> None:
    import joblib

    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text("{}")
    (tmp_path / "train2017").mkdir()
    (tmp_path / "annotations" / "instances_train2014.json").write_text("{}")
    tree(tmp_path, {"train2014": 2})
    (tmp_path / "train2014" / "x.jpg").write_bytes(b"")
    pkl, jbl, par = tmp_path / "a.pkl", tmp_path / "cocottributes_py3.jbl", tmp_path / "a.parquet"
    pkl.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    joblib.dump({"ann_vecs": {1: np.zeros(3)}}, jbl)
    pq.write_table(pa.table({"x": [1]}), par)
    assert [doctor.attributes_kind(p) for p in (pkl, jbl, par)] == ["pickle", "joblib", "parquet"]
    lines = doctor.doctor_mscoco(tmp_path, jbl)
    text = "\n".join(lines)
    assert "warning: COCO 2017 found" in text
    assert "warning: train2014/ holds 3 images (COCO 2014 train2014: 82,783)" in text
    assert "instances_val2014.json not found" in text and "val2014 not found" in text
    assert "joblib file (cocottributes_py3.jbl)" in text
    with pytest.raises(UserError, match=r"instances_val2014\.json not found"):
        doctor.raise_on_errors(lines)


def test_decode_check_names_the_broken_image(tmp_path: Path) -> None:
    root = tree(tmp_path, {"a": 3})
    good = sorted(str(p.relative_to(root)) for p in root.rglob("*.JPEG"))
    doctor.decode_check(root, good, workers=2)
    broken = root / good[1]
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(UserError, match=f"cannot decode image .*{broken.name}"):
        doctor.decode_check(root, good, workers=1)


def test_doctor_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tree(tmp_path / "ok", {"n01440764": 2})
    result = runner.invoke(main, ["doctor", "--benchmark", "imagenet-glt", "--data-root", str(root)])
    assert result.exit_code == 0 and "warning: 1 class folders" in result.output
    result = runner.invoke(
        main, ["doctor", "--benchmark", "imagenet-glt", "--data-root", str(tmp_path / "no")]
    )
    assert result.exit_code == 1 and "is not a folder" in result.output
    result = runner.invoke(main, ["doctor", "--benchmark", "fashion-glt"])
    assert result.exit_code == 1 and "not fashion-glt" in result.output
    result = runner.invoke(main, ["doctor", "--benchmark", "imagefolder-glt", "--data-root", str(root)])
    assert (
        result.exit_code == 0 and "ILSVRC" not in result.output and "found: 1 class folders" in result.output
    )
