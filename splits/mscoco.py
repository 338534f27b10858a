"""mscoco-glt: MSCOCO-GLT (docs/benchmarks.md §4 with the differences of §7), object crops of COCO 2014 with
their COCO-Attributes annotations.

Inputs: `--coco-root DIR` in COCO's own layout (`annotations/instances_train2014.json`,
`annotations/instances_val2014.json`, `train2014/COCO_train2014_*.jpg`, `val2014/...`), read with
pycocotools; `--attributes FILE`, the COCO-Attributes release (Patterson & Hays, ECCV 2016): its
Python pickle, read only with `--trust-pickle` and then through an unpickler that admits only
containers and numpy arrays, or the Parquet file `glt-bench convert-attributes` makes from it once
(docs/formats.md). A sample is one attributed COCO object: sample id = the COCO-Attributes patch id
(8 digits), path = its image, `bbox` = the crop box; labels = the categories present, ranked by
instance count (ties by a seeded hash of the category name); attributes = the 3-level label of §4.

Splits: Test-GBL (greedy, vectorised) and Test-CBL are built once with 200 per class and shared by
both families (§7f); the LT family's pool follows the exp profile (ratio 200 from the largest
remainder), the BL family's gives every class the smallest remainder. Crops of one image can fall in
train and test: the build reports how many as a warning. Licences: COCO annotations CC BY 4.0, COCO
images under their Flickr terms; COCO-Attributes per its authors. Citations: T.-Y. Lin et al.,
"Microsoft COCO: Common Objects in Context", ECCV 2014; G. Patterson, J. Hays, "COCO Attributes:
Attributes for People, Animals, and Objects", ECCV 2016.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import hashlib
import io
import json
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from benchmark import imagecache
from benchmark.atomic import _umask, atomic_path
from benchmark.benchmarks import BENCHMARKS, BenchmarkDef
from benchmark.errors import UserError
from benchmark.manifest import Manifest, write_manifest
from benchmark.provenance import package_versions
from benchmark.summary import write_summary
from splits.carving import class_infos, draw, frequency_groups, rank_classes, seeded_tie_keys, split_rng
from splits.doctor import attributes_kind, decode_check, doctor_mscoco, raise_on_errors
from splits.features import default_cache_dir
from splits.leakage import check_leakage, file_digests
from splits.profiles import check_profile_options, parse_profile, profile_sha256, read_counts_file

log = logging.getLogger("glt_bench")

SUBSETS = ("train2014", "val2014")
ATTRIBUTES_FORMAT = "glt-bench-coco-attributes/1"
POSITIVE_VOTE = 0.5  # an attribute is positive if more than half the workers voted for it
IMAGE_SIZE = 128


# ---------------------------------------------------------------- COCO-Attributes: reading, converting


@dataclass(frozen=True)
class Attributes:
    """COCO-Attributes rows sorted by patch id: the COCO annotation each describes and its votes."""

    names: tuple[str, ...]  # attribute names, in the order of the vote columns (by attribute id)
    patch_ids: np.ndarray  # int64, ascending
    ann_ids: np.ndarray  # int64
    votes: np.ndarray  # float64 rows × attributes: mean worker vote, −1 where nobody was asked


try:
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct, scalar

# Everything the release needs (dicts, lists, strings, a defaultdict, numpy arrays), under its
# Python 2 and Python 3 names, and `_codecs.encode`, which Python 3 writes for bytes (the arrays'
# data) at protocol 2; any other global in the stream is refused.
_ALLOWED = {
    **{(module, name): value for module in ("__builtin__", "builtins")
       for name, value in {"dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
                           "int": int, "float": float, "str": str, "bytes": bytes, "bool": bool}.items()},
    ("__builtin__", "long"): int,
    ("__builtin__", "unicode"): str,
    ("collections", "defaultdict"): collections.defaultdict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): scalar for core in ("core", "_core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}  # fmt: skip


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which a COCO-Attributes file never does"
            )
        return _ALLOWED[(module, name)]


UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError)


def _attributes_from_pickle(path: Path) -> Attributes:
    try:
        with open(path, "rb") as handle:
            # latin1: the release was pickled by Python 2, whose numpy arrays hold their bytes as str.
            data = _RestrictedUnpickler(handle, encoding="latin1").load()
    except UNPICKLE_ERRORS as exc:
        raise UserError(f"cannot unpickle {path}: {exc}; give the COCO-Attributes release file") from None
    return _attributes_from_data(path, data)


def _attributes_from_data(path: Path, data: object) -> Attributes:
    try:
        names = tuple(str(a["name"]) for a in sorted(data["attributes"], key=lambda a: a["id"]))
        vectors, ann_of = data["ann_vecs"], data["patch_id_to_ann_id"]
        patch_ids = np.array(sorted(int(p) for p in vectors), dtype=np.int64)
        ann_ids = np.array([int(ann_of[p]) for p in patch_ids], dtype=np.int64)
        votes = np.array([np.asarray(vectors[p], dtype=np.float64) for p in patch_ids])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(
            f"{path} is not the COCO-Attributes release (needs attributes, ann_vecs and "
            f"patch_id_to_ann_id; {type(exc).__name__}: {exc})"
        ) from None
    return _checked(path, Attributes(names, patch_ids, ann_ids, votes))


def _attributes_from_joblib(path: Path) -> Attributes:
    """The GLT repository's `cocottributes_py3.jbl` (joblib.dump of the release's dict): joblib's own
    reader, with the same allow-list as the pickle plus joblib's array wrapper."""
    from joblib import numpy_pickle

    class Restricted(numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
                return numpy_pickle.NumpyArrayWrapper
            return _RestrictedUnpickler.find_class(self, module, name)  # type: ignore[arg-type]

    try:
        with (
            open(path, "rb") as raw,
            numpy_pickle._validate_fileobject_and_memmap(raw, str(path), None) as opened,
        ):
            handle = opened[0]
            if isinstance(handle, str):
                raise ValueError("a joblib file older than joblib 0.10")
            data = Restricted(str(path), handle, ensure_native_byte_order=True).load()
    except (*UNPICKLE_ERRORS, OSError) as exc:
        raise UserError(
            f"cannot read the joblib file {path}: {exc}; give the GLT repository's file"
        ) from None
    return _attributes_from_data(path, data)


def _attributes_from_parquet(path: Path) -> Attributes:
    try:
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        if meta.get(b"glt_bench.format") != ATTRIBUTES_FORMAT.encode():
            raise ValueError(f"no schema metadata glt_bench.format = {ATTRIBUTES_FORMAT}")
        names = tuple(json.loads(meta[b"glt_bench.attributes"]))
        table = table.sort_by("patch_id")
        votes = table["votes"].combine_chunks()
        if len(votes) and set(pc.list_value_length(votes).to_numpy(zero_copy_only=False)) != {len(names)}:
            raise ValueError(f"every votes list must hold {len(names)} values")
        attributes = Attributes(
            names,
            table["patch_id"].to_numpy().astype(np.int64),
            table["ann_id"].to_numpy().astype(np.int64),
            votes.flatten().to_numpy().astype(np.float64).reshape(len(votes), len(names)),
        )
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        raise UserError(
            f"cannot read {path} as converted COCO-Attributes ({exc}); make it with "
            "`glt-bench convert-attributes RELEASE.pkl OUT.parquet --trust-pickle`"
        ) from None
    return _checked(path, attributes)


def _checked(path: Path, attributes: Attributes) -> Attributes:
    votes = attributes.votes
    if votes.ndim != 2 or votes.shape != (len(attributes.patch_ids), len(attributes.names)):
        raise UserError(
            f"{path}: every vote vector must hold one value per attribute ({len(attributes.names)})"
        )
    if len(attributes.patch_ids) == 0:
        raise UserError(f"{path} holds no attributed instances")
    if np.any(attributes.patch_ids[1:] == attributes.patch_ids[:-1]):
        raise UserError(f"{path} lists a patch id twice")
    if not np.all(np.isfinite(votes)):
        raise UserError(f"{path} has votes that are not finite numbers")
    return attributes


def read_attributes(path: Path, *, trust_pickle: bool = False) -> Attributes:
    """COCO-Attributes from the release pickle (only with `trust_pickle`) or its Parquet conversion."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise UserError(f"cannot read the attributes file {path}: {exc.strerror}") from None
    if magic == b"PAR1":
        return _attributes_from_parquet(path)
    joblib_file = attributes_kind(path) == "joblib"
    if joblib_file and not trust_pickle:
        raise UserError(
            f"--attributes {path} is a joblib file (the GLT repository's cocottributes_py3.jbl), a pickle "
            "that can run code when loaded: pass --trust-pickle if you trust it (read via an allow-list), "
            f"or convert it once with `glt-bench convert-attributes {path} OUT.parquet --trust-pickle`"
        )
    if joblib_file:
        return _attributes_from_joblib(path)
    if not trust_pickle:
        raise UserError(
            f"--attributes {path} is a Python pickle, which can run code when loaded: pass --trust-pickle "
            f"if you trust it, or convert it once with `glt-bench convert-attributes {path} OUT.parquet "
            "--trust-pickle` and pass the Parquet file"
        )
    return _attributes_from_pickle(path)


def convert_attributes(source: Path, target: Path, *, trust_pickle: bool = False) -> int:
    """Write the COCO-Attributes release as Parquet (docs/formats.md); returns the number of rows."""
    attributes = read_attributes(source, trust_pickle=trust_pickle)
    width = len(attributes.names)
    votes = pa.FixedSizeListArray.from_arrays(pa.array(attributes.votes.reshape(-1), pa.float64()), width)
    table = pa.table(
        {"patch_id": attributes.patch_ids, "ann_id": attributes.ann_ids, "votes": votes}
    ).replace_schema_metadata(
        {"glt_bench.format": ATTRIBUTES_FORMAT, "glt_bench.attributes": json.dumps(list(attributes.names))}
    )
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return len(attributes.patch_ids)


# ---------------------------------------------------------------- COCO instances


@dataclass(frozen=True)
class Objects:
    """COCO annotations by id: image path (relative to the COCO root), image size, box, category."""

    index: dict[int, int]  # annotation id → row
    paths: list[str]
    sizes: np.ndarray  # int64 rows × (width, height)
    boxes: np.ndarray  # float64 rows × (x, y, w, h)
    categories: np.ndarray  # int64 COCO category id
    category_names: dict[int, str]


def load_objects(coco_root: Path) -> Objects:
    """Every instance annotation of COCO 2014 train + val, indexed with pycocotools."""
    from pycocotools.coco import COCO

    index: dict[int, int] = {}
    paths, sizes, boxes, categories, names = [], [], [], [], {}
    for subset in SUBSETS:
        path = Path(coco_root) / "annotations" / f"instances_{subset}.json"
        try:
            dataset = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise UserError(
                f"{path} not found; --coco-root must hold annotations/instances_train2014.json, "
                "annotations/instances_val2014.json, train2014/ and val2014/"
            ) from None
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path} as JSON ({exc}); download it again from COCO") from None
        coco = COCO()
        try:
            if not isinstance(dataset, dict):
                raise TypeError("not a JSON object")
            coco.dataset = dataset
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
                coco.createIndex()
            for category in coco.cats.values():
                names.setdefault(int(category["id"]), str(category["name"]))
            for ann_id in sorted(coco.anns):
                ann = coco.anns[ann_id]
                image = coco.imgs[ann["image_id"]]
                if int(ann_id) in index:
                    raise ValueError(f"annotation id {ann_id} appears twice")
                index[int(ann_id)] = len(paths)
                paths.append(f"{subset}/{image['file_name']}")
                sizes.append((int(image["width"]), int(image["height"])))
                boxes.append([float(v) for v in ann["bbox"]])
                categories.append(int(ann["category_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"{path} is not COCO instances JSON ({type(exc).__name__}: {exc}); "
                "use the official instances_<subset>2014.json"
            ) from None
    return Objects(
        index,
        paths,
        np.array(sizes, dtype=np.int64).reshape(-1, 2),
        np.array(boxes, dtype=np.float64).reshape(-1, 4),
        np.array(categories, dtype=np.int64),
        names,
    )


def crop_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The object crop of docs/benchmarks.md §4 as integer (x, y, w, h): each side extended by 50 px (extent
    < 100) or by 0.2 of the extent, clipped to the image, rounded as Pillow rounds crop coordinates.
    Load time pads it to a centred square with black (benchmark/imagecache.py)."""
    x, y, w, h = (float(v) for v in box)

    def extend(start: float, extent: float, limit: int) -> tuple[int, int]:
        # The original's float expressions, term for term, so that rounding ties fall alike.
        if extent < 100:
            return round(max(start - 50, 0)), round(min(start + 50 + extent, limit))
        return round(max(start - extent * 0.2, 0)), round(min(start + 1.2 * extent, limit))

    (left, right), (top, bottom) = extend(x, w, width), extend(y, h, height)
    return left, top, right - left, bottom - top


# ---------------------------------------------------------------- split carving


@dataclass(frozen=True)
class CocoVariant:
    """The constants of one MSCOCO-GLT build."""

    name: str
    test_size: int  # per class in the shared Test-GBL and Test-CBL; Test-GLT = C · test_size
    val_size: int  # Val-GLT = C · val_size
    bl_val_size: int  # Val-CBL = C · bl_val_size
    lt_ratio: float  # head/tail ratio of the LT family's exp profile
    groups: tuple[int, int]  # how many classes (by rank) are many-shot, medium-shot


def balanced_picks(positives: np.ndarray, count: int) -> np.ndarray:
    """Rows of a class's binary attribute matrix chosen greedily to keep the summed histogram flat.

    Each pick adds the row v minimising std((D + v) / Σ(D + v)), D = the attribute histogram of the
    rows picked so far (docs/benchmarks.md §4). The normalised vector always has mean 1/A, so that is
    minimising (ΣD² + 2·D·v + Σv) / (ΣD + Σv)². D·v is kept for every row and updated by the picked
    row's columns only; scores are compared exactly (rows of equal Σv share a denominator, so only
    the best of each group competes, as a fraction where floats cannot tell); ties go to the first
    row. Every row needs a positive attribute.
    """
    rows = np.asarray(positives, dtype=bool)
    sizes = rows.sum(axis=1, dtype=np.int64)
    if count > len(rows) or (sizes == 0).any():
        raise ValueError("need at least `count` rows, each with a positive attribute")
    columns = np.ascontiguousarray(rows.T)
    by_size = np.argsort(sizes, kind="stable")  # rows grouped by Σv, ascending inside each group
    group_sizes, starts = np.unique(sizes[by_size], return_index=True)
    ends = np.append(starts[1:], len(rows))
    hist = np.zeros(rows.shape[1], dtype=np.int64)
    dots = np.zeros(len(rows), dtype=np.int64)  # D·v of every row
    unavailable = np.iinfo(np.int64).max
    taken = np.zeros(len(rows), dtype=bool)
    picks = []
    for _ in range(count):
        numerators = int(hist @ hist) + 2 * dots + sizes
        numerators[taken] = unavailable
        ordered = numerators[by_size]
        lowest = np.minimum.reduceat(ordered, starts)
        live = np.flatnonzero(lowest != unavailable)
        denominators = (int(hist.sum()) + group_sizes[live]) ** 2
        # Floats of exact integer ratios round monotonically: only groups at the smallest float can
        # hold the smallest fraction, and only those are compared exactly.
        approx = lowest[live] / denominators
        near = approx == approx.min()
        scores = {
            int(g): Fraction(int(lowest[g]), int(d))
            for g, d in zip(live[near], denominators[near], strict=True)
        }
        best = min(scores.values())
        pick = min(
            int(by_size[starts[g] + np.flatnonzero(ordered[starts[g] : ends[g]] == lowest[g])[0]])
            for g, score in scores.items()
            if score == best
        )
        taken[pick] = True
        attributes = np.flatnonzero(rows[pick])
        hist[attributes] += 1
        dots += columns[attributes].sum(axis=0, dtype=np.int64)
        picks.append(pick)
    return np.array(picks, dtype=np.int64)


def attribute_levels(positives: np.ndarray, labels: np.ndarray, train_hist: np.ndarray) -> np.ndarray:
    """The 3-level attribute label of one split's rows (docs/benchmarks.md §4).

    score = h·b, h = the class's positive-attribute histogram over the family's train split and b =
    the row's binary vector, both L1-normalised (+1e-9); level 0 above the score at position ⌊n/3⌋
    of the descending order, 1 above the one at 2⌊n/3⌋, else 2. As b is binary, h·b = S/((H+ε)(k+ε))
    with S = the histogram summed over the row's positives (an exact integer), H the histogram's
    total and k the row's positives: one rounding per score, whatever the summation order.
    """
    if len(labels) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.asarray(positives, dtype=np.float64)
    hist = np.asarray(train_hist, dtype=np.float64)  # counts: every product and sum is an exact integer
    matched = (rows @ hist.T)[np.arange(len(labels)), labels]
    scores = matched / ((hist.sum(axis=1)[labels] + 1e-9) * (rows.sum(axis=1) + 1e-9))
    ranked = np.sort(scores)[::-1]
    third = len(scores) // 3
    return np.where(scores > ranked[third], 0, np.where(scores > ranked[2 * third], 1, 2))


def carve_tests(
    class_of: np.ndarray, positives: np.ndarray, test_size: int, seed: int, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The shared Test-GBL (greedy per class) and Test-CBL (uniform per class), and what each class
    has left; rows are in sample-id order, so candidates are too."""
    test_gbl, test_cbl, remaining = [], [], []
    for c, name in enumerate(class_names):
        members = np.flatnonzero(class_of == c)
        candidates = members[positives[members].any(axis=1)]
        needed = 2 * test_size + 1  # both tests, and at least one instance for each family's pool
        if len(candidates) < test_size or len(members) < needed:
            raise UserError(
                f"cannot carve the tests: class {name!r} has {len(members)} attributed instances "
                f"({len(candidates)} with a positive attribute) but needs {needed} "
                f"({test_size} with a positive attribute); use a smaller test size or more data"
            )
        picked = candidates[balanced_picks(positives[candidates], test_size)]
        rest = np.setdiff1d(members, picked)
        chosen = np.zeros(len(rest), dtype=bool)
        chosen[split_rng(seed, "test_cbl", c).choice(len(rest), test_size, replace=False)] = True
        test_gbl.append(picked)
        test_cbl.append(rest[chosen])
        remaining.append(rest[~chosen])
    return np.sort(np.concatenate(test_gbl)), np.sort(np.concatenate(test_cbl)), remaining


def carve_families(
    remaining: Sequence[np.ndarray], lt_counts: Sequence[int], variant: CocoVariant, seed: int
) -> dict[str, np.ndarray]:
    """Train/Val of both families and Test-GLT from what the tests left (docs/benchmarks.md §4 3–6, §7f).

    LT: class c keeps min(lt_counts[c], available) drawn uniformly (every class lost the same number
    to the tests, so the order by what remains is the class order); Test-GLT, then Val-GLT, uniform
    from the pooled rest. BL: every class keeps the smallest remainder; Val-CBL uniform from that.
    """
    num_classes = len(remaining)
    smallest = min(len(rest) for rest in remaining)
    lt_pool, bl_pool = [], []
    for c, rest in enumerate(remaining):
        for pool, size, name in (
            (lt_pool, min(lt_counts[c], len(rest)), "lt_pool"),
            (bl_pool, smallest, "bl_pool"),
        ):
            pool.append(split_rng(seed, name, c).choice(rest, size, replace=False))
    splits = {}
    splits["test_glt"], rest = draw(
        np.sort(np.concatenate(lt_pool)), num_classes * variant.test_size, seed, "test_glt"
    )
    splits["val_glt"], splits["train_glt"] = draw(rest, num_classes * variant.val_size, seed, "val_glt")
    splits["val_cbl"], splits["train_cbl"] = draw(
        np.sort(np.concatenate(bl_pool)), num_classes * variant.bl_val_size, seed, "val_cbl"
    )
    return {name: np.sort(idx) for name, idx in splits.items()}


def class_histograms(positives: np.ndarray, class_of: np.ndarray, num_classes: int) -> np.ndarray:
    """Positive-attribute counts per class (num_classes × attributes) of the given rows."""
    return np.stack([positives[class_of == c].sum(axis=0, dtype=np.int64) for c in range(num_classes)])


def split_attribute_levels(
    splits: Mapping[str, np.ndarray], class_of: np.ndarray, positives: np.ndarray, num_classes: int
) -> dict[str, np.ndarray]:
    """Each split's attribute levels. A family's splits score against its train split; the shared
    tests against Train-GLT's, as they are the LT family's tests (docs/benchmarks.md §7f)."""
    hists = {
        train: class_histograms(positives[splits[train]], class_of[splits[train]], num_classes)
        for train in ("train_glt", "train_cbl")
    }
    return {
        name: attribute_levels(
            positives[idx],
            class_of[idx],
            hists["train_cbl" if name in ("train_cbl", "val_cbl") else "train_glt"],
        )
        for name, idx in splits.items()
    }


# ---------------------------------------------------------------- crops on disk


def _write_crop(job: tuple[Path, Path, str, str, tuple[int, int, int, int]]) -> None:
    """One crop as the original saved it: the box, then padded to a centred square with black."""
    root, folder, sample_id, relative, (x, y, w, h) = job
    try:
        with Image.open(root / relative) as image:
            crop = image.crop((x, y, x + w, y + h))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot crop {root / relative} ({exc}); replace it with an intact copy") from None
    pad = abs(w - h) / 2
    crop = crop.crop((0, -pad, w, h + pad) if w > h else (-pad, 0, w + pad, h))
    if crop.mode not in ("RGB", "L"):
        crop = crop.convert("RGB")
    crop.save(folder / f"{sample_id}.jpg", format="JPEG")  # into write_crops' staging folder


def write_crops(coco_root: Path, folder: Path, samples: pd.DataFrame, workers: int | None = None) -> None:
    """Write each sample's crop to `folder/<sample_id>.jpg` (JPEG, Pillow's default quality, as the
    original); `samples` has `sample_id, path, bbox`. The crops go to a hidden folder beside `folder`
    that replaces it only once all are written, so a failure leaves no partial folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    jobs = [
        (Path(coco_root), staging, row.sample_id, row.path, tuple(int(v) for v in row.bbox))
        for row in samples.sort_values("sample_id").itertuples()
    ]
    workers = min(workers or os.cpu_count() or 1, max(1, len(jobs)))
    try:
        with tqdm(total=len(jobs), unit="crop", desc="export crops", mininterval=2) as progress:
            if workers == 1:
                for job in jobs:
                    _write_crop(job)
                    progress.update()
            else:
                with get_context("fork").Pool(workers) as pool:
                    for _ in pool.imap_unordered(_write_crop, jobs, chunksize=64):
                        progress.update()
        os.chmod(staging, 0o777 & ~_umask())
        previous = folder.with_name(f".{folder.name}.previous") if folder.exists() else None
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
            folder.rename(previous)
        staging.rename(folder)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------- the build


def _lt_profile(
    profile: str | None, counts_file: Path | None, num_classes: int, n_max: int, ratio: float
) -> tuple[list[int], dict[str, object]]:
    """The LT family's class counts: the default exp(largest remainder, ratio) or the user's choice."""
    if counts_file is not None:
        return read_counts_file(counts_file, num_classes), {"name": "counts", "file": Path(counts_file).name}
    return parse_profile(profile or "exp", num_classes, {"exp": {"n_max": n_max, "ratio": ratio}})


def _inputs_sha256(parts: Sequence[np.ndarray | str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


def build(
    variant: CocoVariant,
    out: Path,
    *,
    coco_root: Path | None = None,
    attributes: Path | None = None,
    trust_pickle: bool = False,
    export_crops: Path | None = None,
    seed: int = 25,
    profile: str | None = None,
    counts_file: Path | None = None,
    workers: int | None = None,
) -> Manifest:
    """Join COCO instances with their attributes, carve, check for leakage, write the manifest."""
    if coco_root is None or attributes is None:
        raise UserError(
            f"{variant.name} needs --coco-root DIR (COCO 2014) and --attributes FILE (COCO-Attributes)"
        )
    coco_root = Path(coco_root)
    workers = workers or os.cpu_count() or 1
    # placeholder exp default: the real one needs the data
    check_profile_options(profile, counts_file, {"exp": {"n_max": 2, "ratio": 1}})
    findings = doctor_mscoco(coco_root, Path(attributes))
    raise_on_errors(findings)
    findings = [line for line in findings if line.startswith("warning:")]
    for line in findings:
        log.warning("%s", line)
    attrs = read_attributes(Path(attributes), trust_pickle=trust_pickle)
    objects = load_objects(coco_root)
    rows = np.array([objects.index.get(int(a), -1) for a in attrs.ann_ids], dtype=np.int64)
    matched = rows >= 0
    if not matched.any():
        raise UserError(
            f"no COCO-Attributes row of {attributes} names an annotation of {coco_root}/annotations; "
            "are these the 2014 instance files?"
        )
    unmatched = int((~matched).sum())
    if unmatched:
        log.warning("%d COCO-Attributes rows name no COCO 2014 annotation; they are left out", unmatched)
    rows, patch_ids, ann_ids = rows[matched], attrs.patch_ids[matched], attrs.ann_ids[matched]
    positives = attrs.votes[matched] > POSITIVE_VOTE
    sample_ids = np.array([f"{p:08d}" for p in patch_ids])
    paths = np.array([objects.paths[r] for r in rows])
    boxes = np.array([crop_box(objects.boxes[r], *objects.sizes[r]) for r in rows], dtype=np.int64)
    empty = np.flatnonzero((boxes[:, 2] < 1) | (boxes[:, 3] < 1))
    if len(empty):
        raise UserError(
            f"COCO annotation {ann_ids[empty[0]]} has a box outside its image "
            f"{paths[empty[0]]}; fix the instances JSON"
        )
    categories = objects.categories[rows]

    category_ids, category_counts = np.unique(categories, return_counts=True)
    category_names = [objects.category_names[int(i)] for i in category_ids]
    order = rank_classes(category_counts.tolist(), seeded_tie_keys(category_names, seed))
    class_of = np.argsort(order)[np.searchsorted(category_ids, categories)]  # category → its rank
    names = [objects.category_names[int(category_ids[i])] for i in order]
    num_classes = len(names)
    test_gbl, test_cbl, remaining = carve_tests(class_of, positives, variant.test_size, seed, names)
    lt_counts, profile_info = _lt_profile(
        profile, counts_file, num_classes, max(len(rest) for rest in remaining), variant.lt_ratio
    )
    splits = {
        "test_gbl": test_gbl,
        "test_cbl": test_cbl,
        **carve_families(remaining, lt_counts, variant, seed),
    }
    levels = split_attribute_levels(splits, class_of, positives, num_classes)

    images = sorted(set(paths.tolist()))
    digests = file_digests(coco_root, images, workers)
    warnings = check_leakage(
        {name: sample_ids[idx] for name, idx in splits.items()},
        dict(zip(sample_ids.tolist(), (digests[p] for p in paths.tolist()), strict=True)),
    )
    if warnings:
        warnings.append(
            "note: mscoco-glt samples are object crops, so the counts above include crops of one image file "
            "on both sides (other objects of the same photo); the crops themselves are different samples"
        )
    for line in warnings:
        log.warning("%s", line)
    frames = {
        name: pd.DataFrame(
            {
                "sample_id": sample_ids[idx],
                "path": paths[idx],
                "bbox": list(boxes[idx]),
                "label": class_of[idx],
                "attribute": levels[name],
            }
        )
        for name, idx in splits.items()
    }
    used = np.unique(np.concatenate(list(splits.values())))
    used_images = sorted(set(paths[used].tolist()))
    if export_crops is not None:  # cropping decodes every image
        listing = pd.DataFrame(
            {"sample_id": sample_ids[used], "path": paths[used], "bbox": list(boxes[used])}
        )
        write_crops(coco_root, Path(export_crops), listing, workers)
    else:
        decode_check(coco_root, used_images, workers)
    decoded = f"the {len(used_images)} images the splits use were decoded"
    groups = frequency_groups(num_classes, *variant.groups)
    classes = class_infos(names, groups, class_of, splits)
    info = {
        "seed": seed,
        "source": {
            "description": "COCO 2014 train + val instances (pycocotools) joined with COCO-Attributes; "
            "object crops per docs/benchmarks.md §4",
            "attributed_instances": len(attrs.patch_ids),
            "unmatched_attribute_rows": unmatched,
            "category_ids": [int(category_ids[i]) for i in order],
            "attribute_names": list(attrs.names),
            "inputs_sha256": _inputs_sha256(
                [
                    patch_ids,
                    ann_ids,
                    categories,
                    boxes,
                    positives,
                    "\n".join(paths.tolist()),
                    "\n".join(attrs.names),
                ]
            ),
            "images_sha256": _inputs_sha256(["".join(f"{p}\t{digests[p]}\n" for p in images)]),
            "decoded": decoded,
            "findings": findings,
        },
        "profile": {**profile_info, "counts": list(lt_counts), "sha256": profile_sha256(list(lt_counts))},
        "carving": {
            "test_size": variant.test_size,
            "val_size": variant.val_size,
            "bl_val_size": variant.bl_val_size,
            "bl_size": min(len(rest) for rest in remaining),
        },
        "leakage_warnings": warnings,
        "versions": package_versions(),
    }
    manifest = write_manifest(out, benchmark=variant.name, classes=classes, splits=frames, build=info)
    write_summary(manifest, warnings)
    return manifest


def load_images(
    manifest: Manifest,
    paths: Sequence[str],
    data_root: Path | None,
    boxes: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """uint8 N×3×128×128 crops (box padded to a square), decoded once into the image cache."""
    if data_root is None:
        raise UserError(f"{manifest.benchmark} needs --data-root DIR: the COCO 2014 folder it was built from")
    if boxes is None:
        raise ValueError(f"{manifest.benchmark} samples are object crops: pass their boxes")
    return imagecache.cached_split(
        manifest.benchmark, paths, data_root, default_cache_dir(), size=IMAGE_SIZE, boxes=boxes
    )


MSCOCO_GLT = CocoVariant(
    "mscoco-glt", test_size=200, val_size=100, bl_val_size=50, lt_ratio=200, groups=(11, 12)
)
BENCHMARKS.register(MSCOCO_GLT.name)(
    BenchmarkDef(
        name=MSCOCO_GLT.name,
        summary="COCO 2014 object crops, 29 classes, COCO-Attributes attribute levels (needs the data)",
        build=partial(build, MSCOCO_GLT),
        load_images=load_images,
        mean=(0.473, 0.429, 0.370),
        std=(0.277, 0.268, 0.274),
        recipe="default",
    )
)
