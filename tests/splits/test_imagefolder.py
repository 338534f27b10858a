"""imagefolder-glt on a fabricated 37-class tree of JPEGs and on Fashion-MNIST written as PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from benchmark.benchmarks import BENCHMARKS, resolve
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from splits import imagefolder
from splits.carving import FAMILIES

CLASSES = 37
MODE_SHARES = (0.24, 0.18, 0.17, 0.16, 0.13, 0.12)


def class_size(c: int) -> int:
    return 300 - 4 * c  # 300 … 156 images


def make_tree(root: Path) -> Path:
    """`<class>/<i>.jpg`: six grey levels (appearance modes) with noise, classes named out of order."""
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        folder = root / f"class-{(c * 17) % CLASSES:02d}"
        folder.mkdir(parents=True)
        n = class_size(c)
        modes = np.repeat(np.arange(6), np.floor(np.array(MODE_SHARES) * n).astype(int))
        modes = np.concatenate([modes, np.zeros(n - len(modes), dtype=int)])
        for i, mode in enumerate(modes):
            pixels = np.clip(20 + 40 * mode + rng.normal(0, 5, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{mode}_{i:03d}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("folder") / "data")


@pytest.fixture(scope="module")
def built(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    out = tmp_path_factory.mktemp("manifests") / "my-data"
    cache = tmp_path_factory.mktemp("cache")
    return imagefolder.build(
        out, name="my-data", data_root=tree, extractor="pixels", cache_dir=cache, workers=2, device="cpu"
    )


def test_sizes_are_scaled_and_stated(built: Manifest) -> None:
    scaled = built.metadata["build"]["scaled"]
    median = float(np.median([class_size(c) for c in range(CLASSES)]))
    s = median / 1300
    assert scaled["factor"] == pytest.approx(s, abs=1e-6)
    assert (scaled["test_size"], scaled["val_size"]) == (max(4, round(20 * s)), max(4, round(10 * s)))
    assert scaled["bl_size"] == max(10, round(145 * s))
    assert scaled["pareto"]["n_max"] == round(1500 * s)
    sizes = {name: part["rows"] for name, part in built.metadata["splits"].items()}
    t, v = scaled["test_size"], scaled["val_size"]
    assert sizes["test_gbl"] == CLASSES * 3 * t and sizes["test_glt"] == CLASSES * 3 * t
    assert sizes["val_glt"] == CLASSES * 3 * v
    assert sizes["test_cbl"] == CLASSES * 10 * (3 * t // 10)
    summary = (built.root / "summary.txt").read_text()
    assert "scaled by s = median class size" in summary and built.benchmark == "my-data"


def test_groups_attributes_and_disjointness(built: Manifest) -> None:
    groups = [info.group for info in built.classes]
    assert (groups.count("many"), groups.count("medium"), groups.count("few")) == (15, 16, 6)  # 40/45/15%
    splits = built.all_splits()
    for frame in splits.values():  # attribute a = the modes ranked 2a, 2a+1 by size
        modes = frame["path"].str.split("/").str[-1].str[0].astype(int).to_numpy()
        np.testing.assert_array_equal(frame["attribute"].to_numpy(), modes // 2)
    for names in FAMILIES.values():
        ids = np.concatenate([splits[n]["sample_id"].to_numpy() for n in names])
        assert len(ids) == len(set(ids))
    counts = [info.train_glt for info in built.classes]
    assert counts[0] > 5 * counts[-1]


def test_options_override_the_scaled_sizes(tree: Path, tmp_path: Path) -> None:
    manifest = imagefolder.build(
        tmp_path / "m", name="mine", data_root=tree, extractor="pixels", cache_dir=tmp_path / "c",
        workers=1, test_size=5, val_size=6, profile="exp:150:10",
    )  # fmt: skip
    sizes = {name: part["rows"] for name, part in manifest.metadata["splits"].items()}
    assert sizes["test_gbl"] == CLASSES * 15 and sizes["val_glt"] == CLASSES * 18
    assert manifest.metadata["build"]["profile"]["counts"][0] == 150


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs --name"),
        ({"name": "Bad Name!"}, "lower-case letters"),
        ({"name": "imagenet-glt"}, "built-in benchmark"),
        ({"name": "x", "test_size": 3}, "at least 4"),
        ({"name": "x", "num_clusters": 399}, "fewer than --num-clusters 399"),
        ({"name": "x", "test_size": 40}, "pass --test-size"),
    ],
)
def test_bad_options_are_one_line_errors(tree: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    options = {"data_root": tree, "extractor": "pixels", "cache_dir": tmp_path / "c", "workers": 1, **kwargs}
    with pytest.raises(UserError, match=message) as error:
        imagefolder.build(tmp_path / "m", **options)
    assert "\n" not in str(error.value) and not (tmp_path / "m" / "metadata.json").exists()


def test_cli_stores_under_the_name_and_run_resolves_it(tree: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["build-splits", "--benchmark", "imagefolder-glt", "--name", "birds", "--data-root", str(tree),
         "--extractor", "pixels", "--cache-dir", str(tmp_path / "c"), "--manifests", str(tmp_path / "man"),
         "--workers", "1", "--test-size", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = Manifest(tmp_path / "man" / "birds")
    assert manifest.benchmark == "birds" and manifest.metadata["build"]["based_on"] == "imagefolder-glt"
    definition = resolve("birds", tmp_path / "man")
    assert (
        definition.name == "birds" and definition.load_images is BENCHMARKS.get("imagefolder-glt").load_images
    )
    with pytest.raises(UserError, match="unknown benchmark 'nothing'"):
        resolve("nothing", tmp_path / "man")


def test_fashion_mnist_written_as_png_folders(tmp_path: Path) -> None:
    """Real data through the generic path: 200 images per Fashion-MNIST class as PNG files."""
    from splits.fashion import CLASS_NAMES, DEBIAN_ROOT, load_source

    if not DEBIAN_ROOT.exists():
        pytest.fail("Fashion-MNIST is missing: `apt-get install dataset-fashion-mnist` (make test does it)")
    source = load_source()
    root = tmp_path / "fashion" / "train"
    for label, name in enumerate(CLASS_NAMES):
        folder = root / name.replace("/", "-")
        folder.mkdir(parents=True)
        for i in np.flatnonzero(source.labels == label)[:200]:
            Image.fromarray(source.images[i]).save(folder / f"{source.sample_ids[i].replace('/', '-')}.png")
    manifest = imagefolder.build(
        tmp_path / "m", name="fashion-png", data_root=root.parent, extractor="pixels",
        cache_dir=tmp_path / "c", workers=2,
    )  # fmt: skip
    assert manifest.num_classes == 10
    assert manifest.metadata["build"]["scaled"]["test_size"] == 4
    assert all(p.startswith("train/") for p in manifest.split("train_glt")["path"])
    assert "val/ ignored" not in manifest.metadata["build"]["source"]["description"]
