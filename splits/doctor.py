"""Source-data checks that take seconds: what a data folder holds and whether it is the release a
benchmark expects (`glt-bench doctor`, and the first step of `build-splits`), plus the decode check of
the images a manifest uses when no extraction decoded them.

Expected releases: ILSVRC-2012 train = 1000 WordNet-id folders, 1,281,167 images, 732–1,300 per
class; COCO 2014 = train2014/ 82,783 and val2014/ 40,504 images with their instances JSON;
COCO-Attributes = the release pickle, its Parquet conversion, or the GLT repository's joblib file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from benchmark import imagecache
from benchmark.errors import UserError

ILSVRC_CLASSES, ILSVRC_IMAGES, ILSVRC_RANGE = 1000, 1_281_167, (732, 1300)
COCO_IMAGES = {"train2014": 82_783, "val2014": 40_504}
COCO_LAYOUT = "--coco-root must hold annotations/instances_{train,val}2014.json, train2014/ and val2014/"
WNID = re.compile(r"n\d{8}")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
DECODE_SIZE = 8  # decode at the strongest DCT reduction: every byte is still read and checked
DECODE_CHUNK = 256


def imagenet_findings(names: Sequence[str], counts: Sequence[int]) -> list[str]:
    """Warnings where a listed train folder is not ILSVRC-2012's (class folders and their counts)."""
    found = []
    if len(names) != ILSVRC_CLASSES:
        found.append(f"warning: {len(names)} class folders, ILSVRC-2012 train has {ILSVRC_CLASSES}")
    odd = [n for n in names if not WNID.fullmatch(n)]
    if odd:
        found.append(f"warning: {len(odd)} class folder(s) are not WordNet ids (nXXXXXXXX), e.g. {odd[0]!r}")
    if sum(counts) != ILSVRC_IMAGES:
        found.append(
            f"warning: {sum(counts):,} images, ILSVRC-2012 train has {ILSVRC_IMAGES:,}: another release "
            "(ImageNet 2010 has 1,261,406) or a partial copy; the benchmark's numbers will differ"
        )
    low, high = ILSVRC_RANGE
    if counts and (min(counts) < low or max(counts) > high):
        found.append(
            f"warning: classes hold {min(counts)}–{max(counts)} images, ILSVRC-2012 train holds {low}–{high}"
        )
    return found


def _scan_classes(folder: Path) -> tuple[dict[str, int], list[str]]:
    """Images per class folder and problems (empty, unreadable or non-image files)."""
    counts, problems, other = {}, [], 0
    example = ""
    try:
        entries = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        return {}, [f"error: cannot list {folder}: {exc.strerror}"]
    for name in entries:
        try:
            with os.scandir(folder / name) as files:
                listed = [f for f in files if f.is_file() and not f.name.startswith(".")]
        except OSError as exc:
            problems.append(f"error: cannot list {folder / name}: {exc.strerror}")
            continue
        images = [f for f in listed if f.name.lower().endswith(IMAGE_SUFFIXES)]
        if len(images) != len(listed):
            other += len(listed) - len(images)
            example = example or next(f.name for f in listed if f not in images)
        empty = [f.name for f in images if f.stat().st_size == 0]
        if empty:
            problems.append(f"error: {len(empty)} empty image file(s) in {folder / name}, e.g. {empty[0]}")
        unreadable = [f.name for f in images if not os.access(f.path, os.R_OK)]
        if unreadable:
            problems.append(
                f"error: {len(unreadable)} unreadable file(s) in {folder / name}, e.g. {unreadable[0]}"
            )
        if not images:
            problems.append(f"error: class folder {folder / name} holds no images")
        counts[name] = len(images)
    if other:
        problems.append(f"warning: {other} non-image file(s) are ignored, e.g. {example!r}")
    return counts, problems


def doctor_imagenet(data_root: Path) -> list[str]:
    """What an ILSVRC-2012 data folder holds, one line per finding (`error:`/`warning:`/`ok:`)."""
    root = Path(data_root)
    if not root.is_dir():
        return [f"error: {root} is not a folder; give the ILSVRC-2012 train folder"]
    lines = []
    if (root / "ILSVRC" / "Data" / "CLS-LOC").is_dir() or (root / "Data" / "CLS-LOC").is_dir():
        lines.append(
            "warning: this is the ILSVRC/Data/CLS-LOC layout (the 2017 localisation package); "
            "point --data-root at its train/ folder"
        )
    folder = root / "train" if (root / "train").is_dir() else root
    if folder != root:
        lines.append(f"ok: using {folder} (val/ and others are ignored)")
    counts, problems = _scan_classes(folder)
    lines += problems
    if not counts:
        return [*lines, f"error: {folder} has no class folders"]
    total = sum(counts.values())
    lines.append(f"found: {len(counts)} class folders, {total:,} images, {min(counts.values())}–"
                 f"{max(counts.values())} per class")  # fmt: skip
    findings = imagenet_findings(sorted(counts), [counts[n] for n in sorted(counts)])
    return lines + (findings or ["ok: this is the ILSVRC-2012 train release"])


def attributes_kind(path: Path) -> str:
    """'parquet', 'joblib' (the GLT repository's cocottributes_py3.jbl), 'pickle' or 'unknown'."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if head[:4] == b"PAR1":
        return "parquet"
    if b"joblib.numpy_pickle" in head or head[:2] in (b"\x1f\x8b", b"ZF") or Path(path).suffix == ".jbl":
        return "joblib"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}", b"]"):
        return "pickle"
    return "unknown"


def doctor_mscoco(coco_root: Path | None, attributes: Path | None) -> list[str]:
    """What a COCO folder and a COCO-Attributes file are, one line per finding."""
    lines = []
    if coco_root is not None:
        root = Path(coco_root)
        if (root / "train2017").is_dir() or (root / "annotations" / "instances_train2017.json").is_file():
            lines.append("warning: COCO 2017 found; MSCOCO-GLT is built from COCO 2014 (train2014, val2014)")
        for subset, expected in COCO_IMAGES.items():
            annotation = root / "annotations" / f"instances_{subset}.json"
            if not annotation.is_file():
                lines.append(f"error: {annotation} not found; {COCO_LAYOUT}")
            elif annotation.stat().st_size == 0:
                lines.append(f"error: {annotation} is empty")
            folder = root / subset
            if not folder.is_dir():
                lines.append(f"error: {folder} not found; {COCO_LAYOUT}")
                continue
            images = sum(1 for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_SUFFIXES))
            level = "ok" if images == expected else "warning"
            lines.append(f"{level}: {subset}/ holds {images:,} images (COCO 2014 {subset}: {expected:,})")
    if attributes is not None:
        path = Path(attributes)
        if not path.is_file():
            lines.append(f"error: --attributes {path} is not a file")
        else:
            kind = attributes_kind(path)
            advice = {
                "parquet": "ok: converted COCO-Attributes (Parquet), read without unpickling",
                "pickle": "ok: COCO-Attributes release pickle; build-splits needs --trust-pickle, or convert "
                "it once with `glt-bench convert-attributes`",
                "joblib": "warning: the GLT repository's joblib file (cocottributes_py3.jbl); convert it "
                "once with `glt-bench convert-attributes FILE OUT.parquet --trust-pickle`",
                "unknown": "error: neither a pickle, a joblib file nor Parquet",
            }[kind]
            lines.append(f"{advice} ({path.name})")
    return lines or ["error: give --coco-root DIR and/or --attributes FILE"]


def _decode_chunk(job: tuple[Path, tuple[str, ...]]) -> int:
    root, paths = job
    for relative in paths:
        imagecache._decode(root, relative, DECODE_SIZE, None)
    return len(paths)


def decode_check(root: Path, relative_paths: Sequence[str], workers: int) -> None:
    """Decode every listed image (at reduced scale) in `workers` processes, with a progress bar;
    the first corrupt or missing file is a UserError naming it."""
    jobs = [
        (Path(root), tuple(relative_paths[i : i + DECODE_CHUNK]))
        for i in range(0, len(relative_paths), DECODE_CHUNK)
    ]
    with tqdm(total=len(relative_paths), unit="img", desc="decode check", mininterval=2) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                bar.update(_decode_chunk(job))
            return
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            for done in pool.map(_decode_chunk, jobs):
                bar.update(done)


def raise_on_errors(lines: Sequence[str]) -> None:
    """Stop a build on the first `error:` finding."""
    for line in lines:
        if line.startswith("error:"):
            raise UserError(line.removeprefix("error: "))
