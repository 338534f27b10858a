"""The GLT split-carving algorithm (docs/benchmarks.md §3 steps 1–6, with the checks of §7(l)).

Input: per class (by class id) its 3 ordered attribute lists of sample indices. Test-GBL and
Test-CBL are popped from the front of the lists and shared by both families; the rest is truncated
to the LT profile (LT family) or to a balanced size (BL family), and each family's Val and Train are
carved from its own pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.errors import UserError
from benchmark.manifest import ClassInfo

ATTRIBUTE_RATIO = (7, 2, 1)


@dataclass(frozen=True)
class CarvingRule:
    """A benchmark's carving constants."""

    test_size: int  # per class and attribute in Test-GBL (TEST_SIZE)
    val_size: int  # per class and attribute in the Val splits (VAL_SIZE)
    lt_counts: tuple[int, ...]  # class-count profile of the LT family, by class id
    bl_size: int  # per-class size of the BL pool


def ratio_counts(n: int) -> list[int]:
    """⌊7n/10⌋, ⌊2n/10⌋, ⌊n/10⌋ in integer arithmetic."""
    return [share * n // 10 for share in ATTRIBUTE_RATIO]


def split_rng(seed: int, *key: str | int) -> np.random.Generator:
    """A generator of its own for one draw, seeded by (seed, split name[, class id])."""
    words = [
        int.from_bytes(hashlib.sha256(k.encode()).digest()[:4], "big") if isinstance(k, str) else k
        for k in key
    ]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


class _Lists:
    """Per-class attribute lists that are consumed from the front, with checked pops."""

    def __init__(self, lists: Sequence[Sequence[np.ndarray]], class_names: Sequence[str]) -> None:
        self.lists = [[np.asarray(a, dtype=np.int64) for a in atts] for atts in lists]
        self.names = class_names

    def pop(self, c: int, attribute: int, k: int, split: str) -> np.ndarray:
        available = len(self.lists[c][attribute])
        if k > available:
            raise UserError(
                f"cannot carve {split}: class {self.names[c]!r} attribute {attribute} needs {k} images "
                f"but has {available} left; lower --test-size or use a source with more images"
            )
        taken, self.lists[c][attribute] = np.split(self.lists[c][attribute], [k])
        return taken

    def pop_ratio(self, multiplier: int, split: str) -> np.ndarray:
        counts = [share * multiplier for share in ATTRIBUTE_RATIO]
        return np.concatenate(
            [self.pop(c, a, counts[a], split) for c in range(len(self.lists)) for a in range(3)]
        )

    def truncated(self, sizes: Sequence[int], *, cap: bool = False) -> _Lists:
        """Each class's lists cut to the 7:2:1 targets of its size n_c: ⌊7n_c/10⌋, ⌊2n_c/10⌋, ⌊n_c/10⌋
        taken from n_c itself, each list cut to min(target, what it holds) (prefixes). With `cap`, n_c
        is first lowered to what the class holds (the BL family's min(bl_size, available))."""
        cut = []
        for atts, size in zip(self.lists, sizes, strict=True):
            n = min(size, sum(len(a) for a in atts)) if cap else size
            cut.append([a[: min(target, len(a))] for a, target in zip(atts, ratio_counts(n), strict=True)])
        return _Lists(cut, self.names)

    def pooled(self) -> np.ndarray:
        return np.sort(np.concatenate([a for atts in self.lists for a in atts]))


def draw(pool: np.ndarray, k: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """k indices uniformly without replacement from a sorted pool; returns (drawn, rest)."""
    if k > len(pool):
        raise UserError(f"cannot carve {split}: it needs {k} images but the pool has {len(pool)}")
    chosen = np.zeros(len(pool), dtype=bool)
    chosen[split_rng(seed, split).choice(len(pool), size=k, replace=False)] = True
    return pool[chosen], pool[~chosen]


def carve(
    lists: Sequence[Sequence[np.ndarray]],
    rule: CarvingRule,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """All seven splits as sorted arrays of sample indices."""
    num_classes = len(lists)
    if len(rule.lt_counts) != num_classes:
        raise ValueError(f"profile has {len(rule.lt_counts)} counts for {num_classes} classes")
    pools = _Lists(lists, class_names or [str(c) for c in range(num_classes)])
    num_att = len(ATTRIBUTE_RATIO)
    splits: dict[str, np.ndarray] = {}

    # 1. Test-GBL: the same number from every attribute (balanced over classes and attributes).
    short = min(
        ((len(a) // 4, c, k) for c, atts in enumerate(pools.lists) for k, a in enumerate(atts)),
        default=(rule.test_size, 0, 0),
    )
    if short[0] < rule.test_size:
        _, c, k = short
        raise UserError(
            f"cannot carve test_gbl: class {pools.names[c]!r} attribute {k} needs "
            f"{4 * rule.test_size} images but has {len(pools.lists[c][k])}; "
            + (f"pass --test-size {short[0]} or less (" if short[0] else "(")
            + "Test-GBL takes a quarter of the smallest attribute at most) or use a source with more images"
        )
    splits["test_gbl"] = np.concatenate(
        [pools.pop(c, a, rule.test_size, "test_gbl") for c in range(num_classes) for a in range(num_att)]
    )
    # 2. Test-CBL: balanced over classes, 7:2:1 over attributes.
    splits["test_cbl"] = pools.pop_ratio(num_att * rule.test_size // 10, "test_cbl")

    # 3–6, LT family: truncate to the profile, then Test-GLT and Val-GLT drawn uniformly.
    lt_pool = pools.truncated(rule.lt_counts).pooled()
    splits["test_glt"], lt_pool = draw(lt_pool, num_classes * rule.test_size * num_att, seed, "test_glt")
    splits["val_glt"], splits["train_glt"] = draw(
        lt_pool, num_classes * rule.val_size * num_att, seed, "val_glt"
    )

    # 3'–6', BL family: balanced pool, Val-CBL popped 7:2:1, Train-CBL is the rest.
    bl_lists = pools.truncated([rule.bl_size] * num_classes, cap=True)
    splits["val_cbl"] = bl_lists.pop_ratio(num_att * rule.val_size // 10, "val_cbl")
    splits["train_cbl"] = bl_lists.pooled()
    return {name: np.sort(indices) for name, indices in splits.items()}


FAMILIES = {
    "glt": ("train_glt", "val_glt", "test_glt", "test_cbl", "test_gbl"),
    "cbl": ("train_cbl", "val_cbl", "test_cbl", "test_gbl"),
}


def check_disjoint(splits: dict[str, np.ndarray]) -> None:
    """Within each family every pair of splits is disjoint (the families share the two tests)."""
    for family, names in FAMILIES.items():
        present = [name for name in names if name in splits]
        indices = np.concatenate([splits[name] for name in present])
        owners = np.repeat(np.arange(len(present)), [len(splits[name]) for name in present])
        order = np.argsort(indices, kind="stable")
        repeated = np.flatnonzero(indices[order][1:] == indices[order][:-1])
        if len(repeated):
            first, second = owners[order][repeated[0]], owners[order][repeated[0] + 1]
            raise RuntimeError(
                f"leak in the {family} family: sample {indices[order][repeated[0]]} is in "
                f"{present[first]} and {present[second]}"
            )


def rank_classes(counts: Sequence[int], tie_keys: Sequence[str | int]) -> list[int]:
    """Source class indices ordered by image count, descending; ties to the smaller tie key."""
    return sorted(range(len(counts)), key=lambda i: (-counts[i], tie_keys[i]))


def seeded_tie_keys(names: Sequence[str], seed: int) -> list[str]:
    """Per class the sha256 of the seed and its name: a tie order free of any semantic order of the
    names (WordNet ids sort animals first), fixed by the seed."""
    return [hashlib.sha256(f"{seed}\n{name}".encode()).hexdigest() for name in names]


def frequency_groups(num_classes: int, many: int, medium: int) -> list[str]:
    """Group of each class id: the first `many` ranks are many-shot, the next `medium` medium."""
    return ["many" if c < many else "medium" if c < many + medium else "few" for c in range(num_classes)]


def class_infos(
    names: Sequence[str], groups: Sequence[str], class_of: np.ndarray, splits: dict[str, np.ndarray]
) -> list[ClassInfo]:
    """Per class id its name, many/medium/few group and its Train-GLT and Train-CBL counts."""
    train = {
        name: np.bincount(class_of[splits[name]], minlength=len(names)) for name in ("train_glt", "train_cbl")
    }
    return [
        ClassInfo(c, names[c], groups[c], int(train["train_glt"][c]), int(train["train_cbl"][c]))
        for c in range(len(names))
    ]
