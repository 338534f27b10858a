"""Tests for splits/imagenet.py on a fabricated ImageNet-style tree of real JPEG files, plus a
full-scale logic test (1000 classes × 1,300 synthetic feature rows) of the split sizes."""

from __future__ import annotations

import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from splits import features as feats
from splits import imagenet
from splits.carving import FAMILIES
from splits.imagenet import IMAGENET_GLT, ImageNetVariant, build, load_images

CLASSES = 12
MODE_SHARES = (0.24, 0.18, 0.17, 0.16, 0.13, 0.12)  # six appearance modes: attributes 42/33/25%
SMALL = ImageNetVariant(
    "imagenet-glt-test", test_size=4, val_size=4, bl_size=40,
    default_profile="exp", profiles={"exp": {"n_max": 120, "ratio": 10}},
)  # fmt: skip


def class_size(c: int) -> int:
    return 186 - 6 * min(c, 10)  # classes 10 and 11 tie: ranked by WordNet id


def make_tree(root: Path) -> Path:
    """JPEGs `n000000cc/n000000cc_<mode>_<i>.JPEG`: grey level set by the mode, noise on top."""
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True)
        n = class_size(c)
        modes = np.repeat(np.arange(6), np.floor(np.array(MODE_SHARES) * n).astype(int))
        modes = np.concatenate([modes, np.zeros(n - len(modes), dtype=int)])
        for i, mode in enumerate(modes):
            level = 20 + 40 * mode
            pixels = np.clip(level + rng.normal(0, 6, (30, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"n{c:08d}_{mode}_{i:03d}.JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("imagenet") / "train")


@pytest.fixture(scope="module")
def built(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    out = tmp_path_factory.mktemp("manifests") / "small"
    cache = tmp_path_factory.mktemp("cache")
    return build(SMALL, out, data_root=tree, extractor="pixels", cache_dir=cache, workers=1, device="cpu")


def manifest_bytes(manifest: Manifest) -> dict[str, bytes]:
    root = manifest.root
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sizes_balance_and_disjointness(built: Manifest) -> None:
    splits = built.all_splits()
    sizes = {name: len(frame) for name, frame in splits.items()}
    assert sizes["test_gbl"] == CLASSES * 3 * 4
    assert sizes["test_glt"] == sizes["val_glt"] == CLASSES * 3 * 4
    assert sizes["test_cbl"] == sizes["val_cbl"] == CLASSES * 10  # 7/2/1 per class
    assert sizes["train_cbl"] == CLASSES * (28 + 8 + 4 - 10)
    gbl = splits["test_gbl"].groupby(["label", "attribute"]).size()
    assert (gbl == 4).all() and len(gbl) == CLASSES * 3
    for name in ("test_cbl", "val_cbl"):
        per = splits[name].groupby(["label", "attribute"]).size().unstack()
        assert (per.to_numpy() == [7, 2, 1]).all()
    assert (
        splits["train_cbl"].groupby(["label", "attribute"]).size().unstack().to_numpy() == [21, 6, 3]
    ).all()
    for names in FAMILIES.values():
        ids = np.concatenate([splits[n]["sample_id"].to_numpy() for n in names if n in splits])
        assert len(ids) == len(set(ids))
    counts = [info.train_glt for info in built.classes]
    assert counts == sorted(counts, reverse=True) or counts[0] > counts[-1]
    assert [info.group for info in built.classes].count("many") == round(0.4 * CLASSES)


def test_attributes_recover_the_appearance_modes(built: Manifest) -> None:
    """Attribute a = the merged pair of modes ranked 2a, 2a+1 by size, i.e. mode // 2 here."""
    for frame in built.all_splits().values():
        modes = frame["path"].str.split("_").str[1].astype(int).to_numpy()
        np.testing.assert_array_equal(frame["attribute"].to_numpy(), modes // 2)


def test_classes_ranked_by_count_ties_by_seeded_hash(built: Manifest) -> None:
    from splits.carving import seeded_tie_keys

    names = [info.name for info in built.classes]
    tied = sorted(["n00000010", "n00000011"], key=lambda n: seeded_tie_keys([n], 25)[0])
    assert names == [f"n{c:08d}" for c in range(10)] + tied
    assert built.metadata["build"]["profile"]["name"] == "exp"


def test_summary_files_and_leakage_warning(built: Manifest) -> None:
    text = (built.root / "summary.txt").read_text()
    assert "test_gbl" in text and built.content_hash in text and "att2" in text


def test_shuffled_listing_gives_byte_identical_manifest(
    built: Manifest, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir

    class Shuffled:
        def __init__(self, path: str) -> None:
            self.entries = list(real_scandir(path))
            random.Random(str(path)).shuffle(self.entries)
            self.entries.reverse()

        def __enter__(self) -> list[os.DirEntry]:
            return self.entries

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(imagenet.os, "scandir", Shuffled)
    again = build(
        SMALL, tmp_path / "small", data_root=tree, extractor="pixels", cache_dir=tmp_path / "c", workers=2
    )
    assert manifest_bytes(again) == manifest_bytes(built)


def test_train_val_layout_uses_train_only(built: Manifest, tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "folder"
    (root / "val" / "n00000000").mkdir(parents=True)
    (root / "train").symlink_to(tree)
    Image.new("RGB", (8, 8)).save(root / "val" / "n00000000" / "x.JPEG")
    manifest = build(SMALL, tmp_path / "m", data_root=root, extractor="pixels", cache_dir=tmp_path / "c")
    assert "val/ ignored" in manifest.metadata["build"]["source"]["description"]
    for name, frame in manifest.all_splits().items():
        assert frame["path"].str.startswith("train/").all()
        expected = built.all_splits()[name]
        stripped = frame.assign(sample_id=frame["sample_id"].str[6:], path=frame["path"].str[6:])
        assert stripped.equals(expected), name


def test_precomputed_features_give_the_same_splits(built: Manifest, tree: Path, tmp_path: Path) -> None:
    listing = imagenet.list_images(tree)
    per_class = {}
    for name, idx in imagenet.class_members(listing.paths).items():
        members = listing.paths[idx].tolist()
        per_class[name] = feats.extract_files(
            feats.EXTRACTORS.get("pixels"), tree, {name: (members, "k" + name)}, tmp_path / "f", workers=1
        )[name]
    values = np.concatenate([per_class[n] for n in sorted(per_class)])
    order = np.random.default_rng(1).permutation(len(values))  # rows in any order
    path = tmp_path / "features.npz"
    np.savez(path, paths=listing.paths[order], features=values[order])
    manifest = build(SMALL, tmp_path / "m", features=path)
    for name, frame in manifest.all_splits().items():
        assert frame.equals(built.all_splits()[name]), name
    assert "not looked for" in (manifest.root / "summary.txt").read_text()
    with pytest.raises(UserError, match="does not list the images"):
        np.savez(path, paths=listing.paths[1:], features=values[1:])
        build(SMALL, tmp_path / "m2", data_root=tree, features=path)


def test_interrupted_extraction_resumes(
    built: Manifest, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save, saved = feats._save, []

    def interrupted(path: Path, array: np.ndarray) -> None:
        if len(saved) == 3:
            raise KeyboardInterrupt
        saved.append(path)
        real_save(path, array)

    monkeypatch.setattr(feats, "_save", interrupted)
    kwargs = {"data_root": tree, "extractor": "pixels", "cache_dir": tmp_path / "c", "workers": 1}
    with pytest.raises(KeyboardInterrupt):
        build(SMALL, tmp_path / "m", **kwargs)
    assert len(saved) == 3 and not (tmp_path / "m" / "metadata.json").exists()
    decoded = []
    real_decode = feats._decode_chunk
    monkeypatch.setattr(feats, "_save", real_save)
    monkeypatch.setattr(feats, "_decode_chunk", lambda job: decoded.extend(job[1]) or real_decode(job))
    manifest = build(SMALL, tmp_path / "m", **kwargs)
    assert len(decoded) == sum(class_size(c) for c in range(3, CLASSES))
    assert manifest_bytes(manifest) == manifest_bytes(built)


def test_load_images_is_a_writable_uint8_array(
    built: Manifest, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLT_BENCH_CACHE", str(tmp_path))
    paths = built.split("train_cbl")["path"].tolist()[:5]
    images = load_images(built, paths, tree)
    assert images.shape == (5, 3, 128, 128) and images.dtype == np.uint8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.from_numpy(images)
    assert list((tmp_path / "images").glob("*.npy"))


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        (None, {"data_root": "missing"}, "is not a folder"),
        ("empty", {}, "holds no images"),
        ("counts", {"counts_file": "counts.txt"}, "has 3 entries"),
        (None, {"profile": "zipf"}, "unknown profile"),
        (None, {"num_clusters": 4}, "multiple of 3"),
        ("weights", {"extractor": "torchvision:resnet18", "weights": "w.pt"}, "cannot load --weights"),
        (None, {"extractor": "pixels", "weights": "w.pt"}, "applies to torchvision"),
        (None, {"extractor": "torchvision:nosuchnet"}, "not a torchvision classification"),
    ],
)
def test_bad_input_is_a_one_line_user_error(
    tree: Path, tmp_path: Path, setup: str | None, kwargs: dict, message: str
) -> None:
    (tmp_path / "counts.txt").write_text("3\n2\n1\n")
    (tmp_path / "w.pt").write_bytes(b"not a checkpoint")
    options = {"data_root": tree, "extractor": "pixels", "cache_dir": tmp_path / "c", "workers": 1}
    options.update(
        {k: tmp_path / v if k in ("data_root", "counts_file", "weights") else v for k, v in kwargs.items()}
    )
    if setup == "empty":
        copy = tmp_path / "tree"
        copy.mkdir()
        for entry in tree.iterdir():
            (copy / entry.name).symlink_to(entry)
        (copy / "n99999999").mkdir()
        options["data_root"] = copy
    with pytest.raises(UserError, match=message) as error:
        build(SMALL, tmp_path / "m", **options)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "m" / "metadata.json").exists()


def test_torchvision_weights_file_loads_strictly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models import get_model

    path = tmp_path / "resnet18.pt"
    torch.save(get_model("resnet18").state_dict(), path)
    extractor = feats.resolve("torchvision:resnet18", path)
    assert (extractor.resize, extractor.crop) == (260, 256) and len(extractor.weights_sha256) == 64
    out = extractor.build(torch.device("cpu"))(torch.rand(2, 3, 64, 64) * 255)
    assert out.shape == (2, 512)
    torch.save(get_model("resnet34").state_dict(), path)
    with pytest.raises(UserError, match="does not fit"):
        feats.resolve("torchvision:resnet18", path).build(torch.device("cpu"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))  # nothing cached: torchvision must download
    with pytest.raises(UserError, match="--weights FILE"):
        feats.resolve("torchvision:resnet18").build(torch.device("cpu"))


def test_cli_refuses_options_of_other_benchmarks(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["build-splits", "--benchmark", "imagenet-glt", "--coco-root", str(tmp_path)]
    )
    assert result.exit_code == 1 and "--coco-root does not apply to imagenet-glt" in result.output
    result = runner.invoke(main, ["build-splits", "--benchmark", "fashion-glt", "--weights", "w.pt"])
    assert result.exit_code == 1 and "--weights does not apply to fashion-glt" in result.output
    result = runner.invoke(
        main, ["build-splits", "--benchmark", "imagenet-glt", "--profile", "exp", "--counts-file", "c"]
    )
    assert result.exit_code == 1 and "exclude each other" in result.output


def _full_scale_features(tmp_path: Path) -> Path:
    """1000 classes × 1,300 rows whose one feature is the row's cluster, six clusters of ImageNet-like
    unequal sizes (attributes 42/33/25%, docs/benchmarks.md)."""
    per_class, classes = 1300, 1000
    modes = np.repeat(np.arange(6), (np.array(MODE_SHARES) * per_class).astype(int))
    modes = np.concatenate([modes, np.zeros(per_class - len(modes), dtype=int)])
    paths = np.char.add(
        np.repeat(np.char.add(np.char.add("n", np.arange(classes).astype(str)), "/"), per_class),
        np.tile(np.char.add(np.arange(per_class).astype(str), ".JPEG"), classes),
    )
    path = tmp_path / "features.npz"
    np.savez(path, paths=paths, features=np.tile(modes, classes).astype(np.float32)[:, None])
    return path


def _clusters_from_feature(source, count, num_clusters, seed, device, workers):
    """Stands in for K-means (tested on images above): the cluster is the feature itself."""
    return [(source(i)[:, 0].astype(np.int64), str(i)) for i in range(count)]


def expected_train_glt(lt_counts: list[int], attribute_sizes: list[int], test_size: int = 20) -> int:
    """The original's truncation rule, written independently: after Test-GBL (test_size per attribute)
    and Test-CBL (7m/2m/m, m = ⌊3·test_size/10⌋) class c keeps min(⌊share·n_c/10⌋, left) per attribute;
    Test-GLT and Val-GLT then take 1000·3·(test_size + 10)."""
    m = 3 * test_size // 10
    left = [size - test_size - share * m for size, share in zip(attribute_sizes, (7, 2, 1), strict=True)]
    pool = sum(
        min(share * n // 10, rest) for n in lt_counts for share, rest in zip((7, 2, 1), left, strict=True)
    )
    return pool - len(lt_counts) * 3 * (test_size + 10)


def test_full_scale_sizes_follow_the_original_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing, ranking, profile, merge and carving at full scale: exact sizes, 400/450/150 groups,
    and tied classes ranked by a seeded hash, not by WordNet id."""
    path = _full_scale_features(tmp_path)
    monkeypatch.setattr(imagenet, "cluster_classes", _clusters_from_feature)
    manifest = build(IMAGENET_GLT, tmp_path / "m", features=path)
    sizes = {name: part["rows"] for name, part in manifest.metadata["splits"].items()}
    assert sizes["test_gbl"] == sizes["test_cbl"] == 60_000
    assert sizes["val_glt"] == sizes["val_cbl"] == 30_000 and sizes["test_glt"] == 60_000
    assert sizes["train_cbl"] == 114_000
    attribute_sizes = [312 + 234, 221 + 208, 169 + 156]  # 42/33/25%
    lt_counts = manifest.metadata["build"]["profile"]["counts"]
    assert sizes["train_glt"] == expected_train_glt(lt_counts, attribute_sizes) == 113_724
    groups = [info.group for info in manifest.classes]
    assert (groups.count("many"), groups.count("medium"), groups.count("few")) == (400, 450, 150)
    assert manifest.metadata["build"]["profile"]["sha256"].startswith("a2138f9e")
    # Every class ties at 1,300: the rank of a class must not follow its name.
    name_order = np.argsort(np.argsort([info.name for info in manifest.classes]))
    rho = np.corrcoef(name_order, np.arange(1000))[0, 1]
    assert abs(rho) < 0.1
    many = sorted(info.name for info in manifest.classes if info.group == "many")
    assert many != sorted(info.name for info in manifest.classes)[:400]


def test_full_scale_counts_file_gives_the_original_rule_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class-count list given through --counts-file (here a steeper exp list, head 1,700 above what
    attribute 0 holds) gives exactly the pool of the original's truncation rule."""
    from splits.profiles import exp_profile

    counts = exp_profile(1000, 1700, 120)
    (tmp_path / "counts.txt").write_text("".join(f"{n}\n" for n in counts))
    monkeypatch.setattr(imagenet, "cluster_classes", _clusters_from_feature)
    manifest = build(
        IMAGENET_GLT,
        tmp_path / "m",
        features=_full_scale_features(tmp_path),
        counts_file=tmp_path / "counts.txt",
    )
    train_glt = manifest.metadata["splits"]["train_glt"]["rows"]
    assert train_glt == expected_train_glt(counts, [546, 429, 325])
    # The rule of 7:2:1 of min(n_c, available) would give fewer: the head classes lose more.
    capped = sum(
        min(share * min(n, 1300 - 120) // 10, rest)
        for n in counts
        for share, rest in zip((7, 2, 1), (546 - 62, 429 - 32, 325 - 26), strict=True)
    )
    assert train_glt > capped - 90_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "exp:100:0"}, "ratio must be"),
        ({"profile": "pareto:nan:993:18:1500"}, "alpha must be"),
        ({"counts_file": "absent.txt"}, "is not a file"),
        ({"counts_file": "counts.txt"}, "has 3 entries"),
        ({"test_size": 2}, "at least 4"),
        ({"num_clusters": 999}, "fewer than --num-clusters 999"),
        ({"features": "absent.npz"}, "is not a file"),
    ],
)
def test_cheap_options_fail_before_any_hashing(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict, message: str
) -> None:
    def no_hashing(*args, **kwargs):
        raise AssertionError("files were hashed before the options were checked")

    monkeypatch.setattr(imagenet, "file_digests", no_hashing)
    monkeypatch.setattr(imagenet, "file_sha256", no_hashing)
    (tmp_path / "counts.txt").write_text("3\n2\n1\n")
    options = {"data_root": tree, "extractor": "pixels", "cache_dir": tmp_path / "c", "workers": 1}
    options.update({k: tmp_path / v if k in ("counts_file", "features") else v for k, v in kwargs.items()})
    with pytest.raises(UserError, match=message) as error:
        build(SMALL, tmp_path / "m", **options)
    assert "\n" not in str(error.value)


def test_features_with_data_root_decode_check_every_used_image(
    built: Manifest, tree: Path, tmp_path: Path
) -> None:
    listing = imagenet.list_images(tree)
    values = np.stack([np.full(4, int(p.split("_")[1]), dtype=np.float32) for p in listing.paths])
    values += np.random.default_rng(0).normal(0, 0.01, values.shape).astype(np.float32)
    np.savez(tmp_path / "f.npz", paths=listing.paths, features=values)
    manifest = build(SMALL, tmp_path / "m", data_root=tree, features=tmp_path / "f.npz", workers=2)
    used = np.unique(np.concatenate([frame["path"] for frame in manifest.all_splits().values()]))
    decoded = manifest.metadata["build"]["source"]["decoded"]
    assert decoded == f"the {len(used)} images the splits use were decode-checked"
    assert manifest.metadata["build"]["clustering"]["device"] == "cpu"
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    victim = copy / manifest.split("train_cbl")["path"].iloc[0]
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(UserError, match=f"cannot decode image .*{victim.name}"):
        build(SMALL, tmp_path / "m2", data_root=copy, features=tmp_path / "f.npz", workers=2)
    assert not (tmp_path / "m2" / "metadata.json").exists()


def test_cli_bad_profile_is_one_line_and_exit_1(tree: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["build-splits", "--benchmark", "imagenet-glt", "--data-root", str(tree), "--profile", "exp:100:0",
         "--out", str(tmp_path / "m")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "Error: profile 'exp:100:0': ratio must be a number ≥ 1 (head/tail ratio), got 0"
    )
    assert not (tmp_path / "m").exists()
