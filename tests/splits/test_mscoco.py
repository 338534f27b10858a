"""mscoco-glt on a small COCO-style dataset made here: real JPEG files in COCO's layout, instances
JSON in COCO's schema, COCO-Attributes as the release's pickle and as the converted Parquet."""

from __future__ import annotations

import collections
import json
import pickle
import shutil
import statistics
import struct
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from benchmark.cli import main
from benchmark.errors import UserError
from splits import mscoco
from splits.carving import FAMILIES, seeded_tie_keys

# name, COCO category id, attributed instances; bear and chair tie: ranked by a seeded hash
CATEGORIES = [("person", 1, 150), ("car", 3, 90), ("dog", 18, 70), ("chair", 62, 60), ("bear", 23, 60)]
NUM_ATTRIBUTES = 10
VARIANT = mscoco.CocoVariant(
    "mscoco-glt-test", test_size=6, val_size=3, bl_val_size=2, lt_ratio=5, groups=(2, 2)
)
PER_IMAGE = 3


def _picture(rng: np.random.Generator, width: int, height: int, boxes: list[list[float]]) -> Image.Image:
    """A smooth background (JPEG keeps it well) with each box filled in a flat colour of its own."""
    rows, cols = np.mgrid[0:height, 0:width]
    phase = rng.random(3) * 6
    pixels = np.stack([120 + 80 * np.sin(rows / 23 + cols / 31 + p) for p in phase], axis=-1).astype(np.uint8)
    for k, (x, y, w, h) in enumerate(boxes):
        pixels[round(y) : round(y + h), round(x) : round(x + w)] = (250, 30 + 70 * k, 20)
    return Image.fromarray(pixels)


def make_coco(root: Path, seed: int = 0) -> dict:
    """Write COCO 2014's layout under `root`; return the instances and attribute data written."""
    rng = np.random.default_rng(seed)
    labels = [cat_id for _, cat_id, n in CATEGORIES for _ in range(n)]
    rng.shuffle(labels)
    datasets = {
        s: {"info": {}, "licenses": [], "images": [], "annotations": [], "categories": []}
        for s in mscoco.SUBSETS
    }
    for subset in mscoco.SUBSETS:
        datasets[subset]["categories"] = [
            {"supercategory": "thing", "id": cat_id, "name": name} for name, cat_id, _ in CATEGORIES
        ] + [{"supercategory": "thing", "id": 90, "name": "toothbrush"}]  # no attributed instance
    ann_ids = rng.choice(np.arange(10_000, 99_999), size=len(labels) + 1, replace=False).tolist()
    objects = []
    for image_id, start in enumerate(range(0, len(labels), PER_IMAGE), start=1):
        subset = mscoco.SUBSETS[image_id % 2]
        width, height = [(320, 240), (240, 320), (200, 150)][image_id % 3]
        boxes = []
        for _ in labels[start : start + PER_IMAGE]:
            w = float(rng.integers(20, width // 2)) + 0.25
            h = float(rng.integers(20, height // 2)) + 0.5
            boxes.append([float(rng.integers(0, width - w)) + 0.5, float(rng.integers(0, height - h)), w, h])
        name = f"COCO_{subset}_{image_id:012d}.jpg"
        (root / subset).mkdir(parents=True, exist_ok=True)
        _picture(rng, width, height, boxes).save(root / subset / name, quality=92)
        datasets[subset]["images"].append(
            {"id": image_id, "file_name": name, "width": width, "height": height}
        )
        for label, box in zip(labels[start : start + PER_IMAGE], boxes, strict=True):
            ann = {"id": ann_ids[len(objects)], "image_id": image_id, "category_id": label, "bbox": box,
                   "area": box[2] * box[3], "iscrowd": 0, "segmentation": [[0, 0, 1, 1, 2, 2]]}  # fmt: skip
            datasets[subset]["annotations"].append(ann)
            objects.append(ann)
    # An instance of a category without attributes, which must not become a class.
    datasets["val2014"]["annotations"].append(
        {
            "id": ann_ids[-1],
            "image_id": 1,
            "category_id": 90,
            "bbox": [1.0, 1.0, 5.0, 5.0],
            "area": 25.0,
            "iscrowd": 0,
        }
    )
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for subset, data in datasets.items():
        (root / "annotations" / f"instances_{subset}.json").write_text(json.dumps(data), encoding="utf-8")
    patch_ids = rng.choice(np.arange(1, 3_000_000), size=len(objects) + 1, replace=False).tolist()
    popular = rng.random(NUM_ATTRIBUTES) ** 2  # a long tail of attributes
    votes = {}
    for patch in patch_ids[: len(objects)]:
        shown = rng.random(NUM_ATTRIBUTES) < popular
        votes[patch] = np.where(
            shown, rng.choice([0.4, 2 / 3, 1.0], NUM_ATTRIBUTES), rng.choice([-1.0, 0.0], NUM_ATTRIBUTES)
        )
    ann_of = {patch: ann["id"] for patch, ann in zip(patch_ids, objects, strict=False)}
    votes[patch_ids[-1]], ann_of[patch_ids[-1]] = np.ones(NUM_ATTRIBUTES), 5  # names no COCO annotation
    attribute_ids = rng.permutation(np.arange(500, 500 + NUM_ATTRIBUTES)).tolist()
    release = {
        "info": {"description": "2016 MS COCO Attributes dataset", "version": "0.5"},
        "type": "attributes",
        "attributes": [
            {"id": i, "name": f"attr-{i}", "supercategory": "object attributes"} for i in attribute_ids
        ],
        "ann_vecs": votes,
        "patch_id_to_ann_id": collections.defaultdict(int, ann_of),
        "split": {patch: "train2014" for patch in votes},
    }
    return {
        "datasets": datasets,
        "release": release,
        "objects": {a["id"]: a for a in objects},
        "ann_of": ann_of,
    }


class Python2Pickler(pickle._Pickler):
    """Writes as Python 2 wrote the release: byte strings (the arrays' data) as STRING opcodes,
    numpy's globals under `numpy.core`, builtins under `__builtin__`."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_bytes(self, data: bytes) -> None:
        short = len(data) < 256
        size = bytes([len(data)]) if short else struct.pack("<i", len(data))
        self.write((pickle.SHORT_BINSTRING if short else pickle.BINSTRING) + size + data)
        self.memoize(data)

    def save_global(self, obj: object, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "") or ""
        if not module.startswith("numpy._core"):
            return super().save_global(obj, name)
        self.write(
            pickle.GLOBAL + f"{module.replace('numpy._core', 'numpy.core')}\n{obj.__name__}\n".encode()
        )
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[type(len)] = save_global


def write_pickle(path: Path, release: dict, *, python2: bool = False) -> Path:
    """The release as Python 2 pickled it, or as Python 3 does at protocol 2 (bytes via _codecs)."""
    with open(path, "wb") as handle:
        (Python2Pickler(handle, protocol=2) if python2 else pickle.Pickler(handle, protocol=2)).dump(release)
    return path


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("coco")
    data = make_coco(root)
    data["root"] = root
    data["pickle"] = write_pickle(root / "cocottributes_eccv_version.pkl", data["release"], python2=True)
    return data


@pytest.fixture(scope="module")
def built(coco: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The build from the pickle, with crops exported; its splits with labels."""
    out = tmp_path_factory.mktemp("manifests") / "mscoco"
    crops = tmp_path_factory.mktemp("crops")
    manifest = mscoco.build(
        VARIANT, out, coco_root=coco["root"], attributes=coco["pickle"], trust_pickle=True,
        export_crops=crops, workers=1,
    )  # fmt: skip
    return {"manifest": manifest, "splits": manifest.all_splits(), "crops": crops}


def test_split_sizes_classes_and_groups(built: dict) -> None:
    manifest, splits = built["manifest"], built["splits"]
    tied = sorted(["bear", "chair"], key=lambda name: seeded_tie_keys([name], 25)[0])
    assert [c.name for c in manifest.classes] == ["person", "car", "dog", *tied]
    assert [c.group for c in manifest.classes] == ["many", "many", "medium", "medium", "few"]
    sizes = {name: len(frame) for name, frame in splits.items()}
    # after the tests 138/78/58/48/48 remain; LT profile ⌊138·5^(−i/4)⌋ = 138, 92, 61, 41, 27 → pool 342
    assert sizes == {"test_gbl": 30, "test_cbl": 30, "test_glt": 30, "val_glt": 15, "train_glt": 297,
                     "val_cbl": 10, "train_cbl": 230}  # fmt: skip
    for name in ("test_gbl", "test_cbl"):
        assert np.bincount(splits[name]["label"]).tolist() == [6] * 5
    lt = pd.concat([splits[n] for n in ("test_glt", "val_glt", "train_glt")])
    assert np.bincount(lt["label"]).tolist() == [138, 78, 58, 41, 27]
    bl = pd.concat([splits[n] for n in ("val_cbl", "train_cbl")])
    assert np.bincount(bl["label"]).tolist() == [48] * 5
    assert manifest.metadata["build"]["profile"]["counts"] == [138, 92, 61, 41, 27]
    assert manifest.metadata["build"]["source"]["unmatched_attribute_rows"] == 1
    assert (manifest.root / "summary.txt").exists()
    manifest.verify(labels=True)  # the boxes are part of every public hash
    assert list(manifest.public_listing("test_gbl").columns) == ["sample_id", "path", "bbox"]


def test_families_are_disjoint_and_leakage_is_reported(built: dict) -> None:
    splits = built["splits"]
    for names in FAMILIES.values():
        ids = np.concatenate([splits[n]["sample_id"].to_numpy() for n in names if n in splits])
        assert len(ids) == len(np.unique(ids))
    warnings = built["manifest"].metadata["build"]["leakage_warnings"]
    assert any("test_gbl samples have the same bytes as a train_glt sample" in w for w in warnings)
    assert "object crops" in warnings[-1]


def test_rows_are_real_crops_of_their_annotations(built: dict, coco: dict) -> None:
    frame = built["splits"]["train_glt"]
    for row in frame.head(20).itertuples():
        ann = coco["objects"][coco["ann_of"][int(row.sample_id)]]
        image = next(i for d in coco["datasets"].values() for i in d["images"] if i["id"] == ann["image_id"])
        assert row.path.endswith(image["file_name"])
        assert list(row.bbox) == list(mscoco.crop_box(ann["bbox"], image["width"], image["height"]))


def test_test_gbl_flattens_the_attribute_histogram(coco: dict, built: dict) -> None:
    attrs = mscoco.read_attributes(coco["pickle"], trust_pickle=True)
    positive = dict(zip((f"{p:08d}" for p in attrs.patch_ids), attrs.votes > 0.5, strict=True))
    rng = np.random.default_rng(0)

    def spread(ids) -> float:
        hist = np.sum([positive[i] for i in ids], axis=0)
        return float(np.std(hist / hist.sum()))

    gbl = built["splits"]["test_gbl"]
    assert all(positive[i].any() for i in gbl["sample_id"])
    train = built["splits"]["train_glt"]
    for label, group in gbl.groupby("label"):
        pool = train.loc[train["label"] == label, "sample_id"].tolist()
        random_spread = np.mean([spread(rng.choice(pool, len(group), replace=False)) for _ in range(20)])
        assert spread(group["sample_id"]) < random_spread


def test_attribute_levels_split_scores_in_thirds(built: dict) -> None:
    for name, frame in built["splits"].items():
        counts = np.bincount(frame["attribute"], minlength=3)
        assert counts[0] <= len(frame) // 3 and counts[0] + counts[1] <= 2 * (len(frame) // 3), name


def test_attribute_levels_by_hand() -> None:
    positives = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=bool)
    hist = np.array([[6, 3, 1]])  # h = 0.6, 0.3, 0.1 → scores 0.6, 0.3, 0.1, 0.45, 0, 0.35
    levels = mscoco.attribute_levels(positives, np.zeros(6, dtype=np.int64), hist)
    assert levels.tolist() == [0, 1, 2, 0, 2, 1]  # thresholds: 0.35 (position 2) and 0.1 (position 4)


def _slow_balanced_picks(rows: np.ndarray, count: int) -> list[int]:
    """The original's greedy loop, with the std compared exactly (as a variance of fractions)."""
    hist, picks = [0] * rows.shape[1], []
    for _ in range(count):
        best = None
        for i, row in enumerate(rows.tolist()):
            if i in picks or not any(row):
                continue
            summed = [h + v for h, v in zip(hist, row, strict=True)]
            variance = statistics.pvariance([Fraction(s, sum(summed)) for s in summed])
            if best is None or variance < best[0]:
                best = (variance, i)
        picks.append(best[1])
        hist = [h + v for h, v in zip(hist, rows[best[1]].tolist(), strict=True)]
    return picks


@pytest.mark.parametrize("seed", range(6))
def test_balanced_picks_equal_the_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.random((40, 6)) < rng.random(6) * 0.6
    rows = rows[rows.any(axis=1)]
    assert mscoco.balanced_picks(rows, 15).tolist() == _slow_balanced_picks(rows, 15)


def test_balanced_picks_of_the_person_class_take_seconds() -> None:
    rng = np.random.default_rng(1)
    rows = rng.random((65_000, 204)) < rng.random(204) ** 4 * 0.3
    rows[~rows.any(axis=1), 0] = True
    started = time.perf_counter()
    picks = mscoco.balanced_picks(rows, 200)
    elapsed = time.perf_counter() - started
    print(f"65,000 × 204 candidates, 200 picks: {elapsed:.2f} s")
    assert len(set(picks.tolist())) == 200 and elapsed < 20


def test_crop_box_follows_the_original_rule() -> None:
    assert mscoco.crop_box([60, 70, 40, 30], 640, 480) == (10, 20, 140, 130)  # < 100: 50 px per side
    assert mscoco.crop_box([100, 100, 200, 150], 640, 480) == (60, 70, 280, 210)  # 0.2 of the extent
    assert mscoco.crop_box([10, 400, 40, 70], 640, 480) == (0, 350, 100, 130)  # clipped to the image
    assert mscoco.crop_box([52.5, 60.5, 10, 10], 640, 480) == (2, 10, 110, 110)  # Pillow's rounding: 2.5 → 2


def test_same_inputs_give_identical_bytes_whatever_the_order(coco: dict, built: dict, tmp_path: Path) -> None:
    shuffled = tmp_path / "coco"
    for subset in mscoco.SUBSETS:
        shutil.copytree(coco["root"] / subset, shuffled / subset)
    rng = np.random.default_rng(7)
    (shuffled / "annotations").mkdir()
    for subset, data in coco["datasets"].items():
        data = {key: list(value) if isinstance(value, list) else value for key, value in data.items()}
        for key in ("images", "annotations", "categories"):
            rng.shuffle(data[key])
        (shuffled / "annotations" / f"instances_{subset}.json").write_text(json.dumps(data), encoding="utf-8")
    release = dict(coco["release"])
    order = rng.permutation(list(release["ann_vecs"]))
    release["ann_vecs"] = {int(p): release["ann_vecs"][p] for p in order}
    release["attributes"] = list(rng.permutation(release["attributes"]))
    converted = tmp_path / "attributes.parquet"
    mscoco.convert_attributes(write_pickle(tmp_path / "shuffled.pkl", release), converted, trust_pickle=True)
    again = mscoco.build(VARIANT, tmp_path / "out", coco_root=shuffled, attributes=converted, workers=1)
    first = built["manifest"].root
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.root) for p in again.root.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (again.root / name).read_bytes(), name


def test_another_seed_draws_other_splits(coco: dict, built: dict, tmp_path: Path) -> None:
    other = mscoco.build(VARIANT, tmp_path / "out", coco_root=coco["root"], attributes=coco["pickle"],
                         trust_pickle=True, seed=3, workers=1)  # fmt: skip
    splits = other.all_splits()
    assert other.content_hash != built["manifest"].content_hash
    assert splits["test_gbl"]["sample_id"].equals(built["splits"]["test_gbl"]["sample_id"])  # greedy
    assert not splits["test_cbl"]["sample_id"].equals(built["splits"]["test_cbl"]["sample_id"])


def test_exported_crops_are_the_original_crops(built: dict, coco: dict) -> None:
    crops = built["crops"]
    ids = np.unique(np.concatenate([f["sample_id"].to_numpy() for f in built["splits"].values()]))
    assert sorted(p.name for p in crops.iterdir()) == sorted(f"{i}.jpg" for i in ids)
    frame = built["splits"]["train_glt"]
    for row in frame.head(6).itertuples():
        x, y, w, h = (int(v) for v in row.bbox)
        with Image.open(coco["root"] / row.path) as image:
            region = image.crop((x, y, x + w, y + h))
        pad = abs(w - h) / 2
        expected = np.asarray(
            region.crop((0, -pad, w, h + pad) if w > h else (-pad, 0, w + pad, h)), dtype=float
        )
        with Image.open(crops / f"{row.sample_id}.jpg") as saved:
            got = np.asarray(saved, dtype=float)
        assert got.shape == expected.shape and abs(got.shape[0] - got.shape[1]) <= 1
        assert np.abs(got - expected).mean() < 4


def test_load_images_pads_crops_to_squares(
    built: dict, coco: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLT_BENCH_CACHE", str(tmp_path))
    frame = built["splits"]["val_glt"]
    images = mscoco.load_images(
        built["manifest"], frame["path"].tolist(), coco["root"], boxes=frame["bbox"].tolist()
    )
    assert images.shape == (len(frame), 3, 128, 128) and images.dtype == np.uint8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.from_numpy(images)
    for image, (_, _, w, h) in zip(images, frame["bbox"], strict=True):
        band = round(64 * (1 - min(w, h) / max(w, h))) - 1  # black strips where the box was padded
        if band > 1:
            strips = image[:, :band] if w > h else image[:, :, :band]
            assert strips.max() == 0
        assert image[:, 60:68, 60:68].mean() > 20
    with pytest.raises(UserError, match="--data-root"):
        mscoco.load_images(built["manifest"], frame["path"].tolist(), None, boxes=frame["bbox"].tolist())


def test_pickle_is_refused_without_the_flag(coco: dict, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--trust-pickle") as error:
        mscoco.build(VARIANT, tmp_path / "out", coco_root=coco["root"], attributes=coco["pickle"])
    assert "convert-attributes" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


class _Boom:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickle_with_other_globals_is_refused_even_when_trusted(tmp_path: Path, capsys) -> None:
    path = write_pickle(tmp_path / "evil.pkl", {"attributes": [], "ann_vecs": {1: _Boom()}})
    with pytest.raises(UserError, match=r"refers to (__builtin__|builtins)\.print"):
        mscoco.read_attributes(path, trust_pickle=True)
    assert "unpickled!" not in capsys.readouterr().out


def test_convert_attributes_cli(coco: dict, tmp_path: Path) -> None:
    raw = coco["pickle"].read_bytes()  # written as Python 2 did: numpy.core names, data as STRING
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"_codecs" not in raw
    target = tmp_path / "attributes.parquet"
    refused = CliRunner().invoke(main, ["convert-attributes", str(coco["pickle"]), str(target)])
    assert refused.exit_code == 1 and "--trust-pickle" in refused.output and not target.exists()
    result = CliRunner().invoke(
        main, ["convert-attributes", str(coco["pickle"]), str(target), "--trust-pickle"]
    )
    assert result.exit_code == 0, result.output
    from_parquet = mscoco.read_attributes(target)
    from_pickle = mscoco.read_attributes(coco["pickle"], trust_pickle=True)
    assert from_parquet.names == from_pickle.names
    for field in ("patch_ids", "ann_ids", "votes"):
        assert np.array_equal(getattr(from_parquet, field), getattr(from_pickle, field))


def test_build_splits_cli_refuses_the_pickle_and_foreign_options(coco: dict, tmp_path: Path) -> None:
    base = ["build-splits", "--benchmark", "mscoco-glt", "--coco-root", str(coco["root"]),
            "--attributes", str(coco["pickle"]), "--out", str(tmp_path / "out")]  # fmt: skip
    result = CliRunner().invoke(main, base)
    assert result.exit_code == 1 and "--trust-pickle" in result.output
    result = CliRunner().invoke(main, [*base, "--trust-pickle", "--extractor", "pixels"])
    assert result.exit_code == 1 and "--extractor does not apply" in result.output


def _break(root: Path, subset: str, text: str | None) -> None:
    path = root / "annotations" / f"instances_{subset}.json"
    path.unlink() if text is None else path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: _break(root, "val2014", None), "instances_val2014.json not found"),
        (lambda root: _break(root, "train2014", '{"images": [}'), "cannot read .* as JSON"),
        (
            lambda root: _break(root, "train2014", '{"images": [], "annotations": [{"id": 1}]}'),
            "not COCO instances",
        ),
        (lambda root: next((root / "val2014").iterdir()).unlink(), "cannot read"),
    ],
)
def test_bad_coco_input_is_a_one_line_error_and_writes_nothing(
    coco: dict, tmp_path: Path, damage, message
) -> None:
    root = tmp_path / "coco"
    shutil.copytree(coco["root"], root)
    damage(root)
    with pytest.raises(UserError, match=message) as error:
        mscoco.build(
            VARIANT, tmp_path / "out", coco_root=root, attributes=coco["pickle"], trust_pickle=True, workers=1
        )
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_class_with_too_few_instances_is_named(coco: dict, tmp_path: Path) -> None:
    bigger = mscoco.CocoVariant("big", test_size=40, val_size=3, bl_val_size=2, lt_ratio=5, groups=(2, 2))
    with pytest.raises(UserError, match=r"class 'dog' has 70 attributed instances .* needs 81"):
        mscoco.build(
            bigger, tmp_path / "out", coco_root=coco["root"], attributes=coco["pickle"], trust_pickle=True
        )
    assert not (tmp_path / "out").exists()


def test_attribute_file_that_is_neither_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "attributes.parquet"
    pd.DataFrame({"patch_id": [1], "ann_id": [2]}).to_parquet(bad)
    with pytest.raises(UserError, match="convert-attributes"):
        mscoco.read_attributes(bad)
    with pytest.raises(UserError, match="cannot read"):
        mscoco.read_attributes(tmp_path / "missing.pkl", trust_pickle=True)


def test_full_scale_split_sizes_equal_the_spec() -> None:
    """The 29 classes at their real sizes (docs/benchmarks.md §4) with synthetic attributes: §7(f)'s sizes."""
    counts = [65000, 7666, 5654, 5524, 5428, 5323, 5183, 5074, 4973, 4969, 4889, 4851, 4808, 4788, 4773,
              4701, 4649, 4578, 4337, 4164, 3949, 3648, 3636, 3368, 3305, 3043, 2821, 1966, 1358]  # fmt: skip
    rng = np.random.default_rng(0)
    class_of = np.repeat(np.arange(29), counts)
    positives = rng.random((len(class_of), 204)) < rng.random(204) ** 4 * 0.3
    variant = mscoco.MSCOCO_GLT
    names = [f"class{c}" for c in range(29)]
    test_gbl, test_cbl, remaining = mscoco.carve_tests(class_of, positives, variant.test_size, 25, names)
    lt_counts, _ = mscoco._lt_profile(None, None, 29, len(remaining[0]), variant.lt_ratio)
    splits = {
        "test_gbl": test_gbl,
        "test_cbl": test_cbl,
        **mscoco.carve_families(remaining, lt_counts, variant, 25),
    }
    sizes = {name: len(idx) for name, idx in splits.items()}
    assert sizes == {"test_gbl": 5800, "test_cbl": 5800, "test_glt": 5800, "val_glt": 2900,
                     "train_glt": 144573, "val_cbl": 1450, "train_cbl": 26332}  # fmt: skip
    for names_in_family in FAMILIES.values():
        ids = np.concatenate([splits[n] for n in names_in_family if n in splits])
        assert len(ids) == len(np.unique(ids))
    levels = mscoco.split_attribute_levels(splits, class_of, positives, 29)
    assert all(set(np.unique(v)) <= {0, 1, 2} for v in levels.values())


def test_joblib_release_is_refused_without_the_flag_and_read_with_it(coco: dict, tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "cocottributes_py3.jbl"
    release = dict(coco["release"])
    release["ann_vecs"] = {p: np.asarray(v, dtype=np.float64) for p, v in release["ann_vecs"].items()}
    joblib.dump(release, path)
    with pytest.raises(UserError, match=r"joblib file .*convert-attributes") as error:
        mscoco.read_attributes(path)
    assert "\n" not in str(error.value)
    from_joblib = mscoco.read_attributes(path, trust_pickle=True)
    from_pickle = mscoco.read_attributes(coco["pickle"], trust_pickle=True)
    assert from_joblib.names == from_pickle.names
    np.testing.assert_array_equal(from_joblib.patch_ids, from_pickle.patch_ids)
    np.testing.assert_array_equal(from_joblib.votes, from_pickle.votes)
    evil = tmp_path / "evil.jbl"
    joblib.dump({"attributes": [], "ann_vecs": {1: _Boom()}}, evil)
    with pytest.raises(UserError, match=r"builtins\.print"):
        mscoco.read_attributes(evil, trust_pickle=True)


def test_corrupt_image_without_export_is_named_and_nothing_is_written(coco: dict, tmp_path: Path) -> None:
    root = tmp_path / "coco"
    shutil.copytree(coco["root"], root)
    victim = sorted((root / "train2014").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(UserError, match=f"cannot decode image .*{victim.name}") as error:
        mscoco.build(VARIANT, tmp_path / "out", coco_root=root, attributes=coco["pickle"], trust_pickle=True)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_failed_crop_export_leaves_no_partial_folder(coco: dict, tmp_path: Path) -> None:
    root = tmp_path / "coco"
    shutil.copytree(coco["root"], root)
    victim = sorted((root / "val2014").glob("*.jpg"))[-1]
    victim.write_bytes(b"not a jpeg")
    crops = tmp_path / "crops"
    with pytest.raises(UserError, match="cannot crop"):
        mscoco.build(
            VARIANT, tmp_path / "out", coco_root=root, attributes=coco["pickle"], trust_pickle=True,
            export_crops=crops, workers=1,
        )  # fmt: skip
    assert sorted(tmp_path.iterdir()) == [root]  # neither the crops folder nor a hidden partial one
