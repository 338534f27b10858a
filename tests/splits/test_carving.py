"""Tests for splits/carving.py: the fashion-glt rule on synthetic attribute lists (docs/benchmarks.md §9)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmark.errors import UserError
from splits.carving import (
    FAMILIES,
    CarvingRule,
    carve,
    check_disjoint,
    frequency_groups,
    rank_classes,
    ratio_counts,
    seeded_tie_keys,
    split_rng,
)
from splits.profiles import exp_profile

NUM_CLASSES = 10
PER_CLASS = 7000
SHARES = (3150, 2240, 1610)  # 45% / 32% / 23% of 7,000
RULE = CarvingRule(test_size=60, val_size=30, lt_counts=tuple(exp_profile(10, 2707, 100)), bl_size=490)
NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
LT_POOL = [2705, 1621, 971, 582, 347, 207, 124, 74, 44, 25]


def make_lists(shares: dict[tuple[int, int], int] | None = None) -> list[list[np.ndarray]]:
    """Class c owns indices c·7000 … c·7000+6999, shuffled and cut into attribute lists.

    `shares[(c, a)]` overrides the size of one attribute list (the remainder is dropped)."""
    lists = []
    for c in range(NUM_CLASSES):
        order = c * PER_CLASS + np.random.default_rng(1000 + c).permutation(PER_CLASS)
        bounds = np.cumsum(SHARES)[:-1]
        atts = np.split(order, bounds)
        for a in range(3):
            if shares and (c, a) in shares:
                atts[a] = atts[a][: shares[(c, a)]]
        lists.append(atts)
    return lists


def attribute_of(lists: list[list[np.ndarray]]) -> np.ndarray:
    out = np.full(NUM_CLASSES * PER_CLASS, -1)
    for atts in lists:
        for a, indices in enumerate(atts):
            out[indices] = a
    return out


def per_class_attribute(indices: np.ndarray, attribute: np.ndarray) -> np.ndarray:
    """Counts table [class, attribute] of a split."""
    table = np.zeros((NUM_CLASSES, 3), dtype=int)
    np.add.at(table, (indices // PER_CLASS, attribute[indices]), 1)
    return table


@pytest.fixture(scope="module")
def lists() -> list[list[np.ndarray]]:
    return make_lists()


@pytest.fixture(scope="module")
def carved(lists: list[list[np.ndarray]]) -> dict[str, np.ndarray]:
    return carve(lists, RULE, seed=25, class_names=NAMES)


def test_ratio_counts_integer_arithmetic() -> None:
    assert ratio_counts(2707) == [1894, 541, 270]
    assert ratio_counts(490) == [343, 98, 49]
    # 0.7·90 = 62.999… in float64; the rule is integer ⌊7·90/10⌋ = 63.
    assert ratio_counts(90) == [63, 18, 9]
    assert ratio_counts(27) == [18, 5, 2]


def test_split_sizes(carved: dict[str, np.ndarray]) -> None:
    sizes = {name: len(indices) for name, indices in carved.items()}
    assert sizes == {
        "test_gbl": 1800,
        "test_cbl": 1800,
        "test_glt": 1800,
        "val_glt": 900,
        "train_glt": 4000,
        "val_cbl": 900,
        "train_cbl": 4000,
    }


def test_splits_are_sorted_unique(carved: dict[str, np.ndarray]) -> None:
    for indices in carved.values():
        assert np.all(np.diff(indices) > 0)


def test_test_gbl_balanced(carved, lists) -> None:
    table = per_class_attribute(carved["test_gbl"], attribute_of(lists))
    np.testing.assert_array_equal(table, np.full((NUM_CLASSES, 3), 60))


def test_test_cbl_7_2_1(carved, lists) -> None:
    table = per_class_attribute(carved["test_cbl"], attribute_of(lists))
    np.testing.assert_array_equal(table, np.tile([126, 36, 18], (NUM_CLASSES, 1)))


def test_val_cbl_and_train_cbl(carved, lists) -> None:
    attribute = attribute_of(lists)
    np.testing.assert_array_equal(
        per_class_attribute(carved["val_cbl"], attribute), np.tile([63, 18, 9], (NUM_CLASSES, 1))
    )
    np.testing.assert_array_equal(
        per_class_attribute(carved["train_cbl"], attribute),
        np.tile([280, 80, 40], (NUM_CLASSES, 1)),
    )


def test_lt_pool_per_class(carved, lists) -> None:
    pool = np.concatenate([carved["train_glt"], carved["val_glt"], carved["test_glt"]])
    assert len(np.unique(pool)) == 6700
    table = per_class_attribute(pool, attribute_of(lists))
    assert table.sum(axis=1).tolist() == LT_POOL
    # Each class's pool holds ⌊7n/10⌋ / ⌊2n/10⌋ / ⌊n/10⌋ of its profile count n.
    expected = np.array([ratio_counts(n) for n in RULE.lt_counts])
    np.testing.assert_array_equal(table, expected)


def test_val_glt_and_test_glt_are_drawn_from_whole_pool(carved) -> None:
    # Uniform draws of 1,800 and 900 out of 6,700: every class is hit in proportion, roughly.
    for name, size in (("test_glt", 1800), ("val_glt", 900)):
        per_class = np.bincount(carved[name] // PER_CLASS, minlength=NUM_CLASSES)
        expected = size * np.array(LT_POOL) / 6700
        assert per_class[0] == pytest.approx(expected[0], rel=0.1)
        assert per_class.sum() == size


def test_uniform_draws_use_own_generators_over_sorted_candidates(carved) -> None:
    # §7(a): each uniform draw has its own generator seeded by (seed, split name) and draws
    # from candidates sorted by id: Test-GLT from the LT pool, then Val-GLT from the rest.
    pool = np.sort(np.concatenate([carved["train_glt"], carved["val_glt"], carved["test_glt"]]))
    chosen = np.zeros(len(pool), dtype=bool)
    chosen[split_rng(25, "test_glt").choice(len(pool), size=1800, replace=False)] = True
    np.testing.assert_array_equal(carved["test_glt"], pool[chosen])
    rest = pool[~chosen]
    chosen = np.zeros(len(rest), dtype=bool)
    chosen[split_rng(25, "val_glt").choice(len(rest), size=900, replace=False)] = True
    np.testing.assert_array_equal(carved["val_glt"], rest[chosen])
    np.testing.assert_array_equal(carved["train_glt"], rest[~chosen])


def test_pops_are_prefixes_of_the_attribute_lists(carved, lists) -> None:
    # §3: Test-GBL, then Test-CBL, then (BL) Val-CBL are taken from the front of each list;
    # the LT pool and BL pool are prefixes of what remains.
    lt = np.concatenate([carved["train_glt"], carved["val_glt"], carved["test_glt"]])
    for c, atts in enumerate(lists):
        for a, full in enumerate(atts):
            gbl, cbl = 60, [126, 36, 18][a]
            assert np.isin(full[:gbl], carved["test_gbl"]).all()
            assert np.isin(full[gbl : gbl + cbl], carved["test_cbl"]).all()
            rest = full[gbl + cbl :]
            lt_target = ratio_counts(RULE.lt_counts[c])[a]
            assert np.isin(rest[:lt_target], lt).all()
            assert not np.isin(rest[lt_target:], lt).any()
            bl_target, val = [343, 98, 49][a], [63, 18, 9][a]
            assert np.isin(rest[:val], carved["val_cbl"]).all()
            assert np.isin(rest[val:bl_target], carved["train_cbl"]).all()
            assert not np.isin(rest[bl_target:], carved["train_cbl"]).any()


def test_families_are_disjoint(carved) -> None:
    check_disjoint(carved)
    for names in FAMILIES.values():
        for x, y in itertools.combinations(names, 2):
            assert not np.intersect1d(carved[x], carved[y]).size, (x, y)


def test_train_glt_and_train_cbl_may_overlap(carved) -> None:
    # Allowed by §9; with pools that are both prefixes they do overlap here.
    check_disjoint(carved)
    assert np.intersect1d(carved["train_glt"], carved["train_cbl"]).size > 0


@pytest.mark.parametrize(
    ("source", "target", "family"),
    [
        ("train_glt", "val_glt", "glt"),
        ("test_gbl", "train_glt", "glt"),
        ("test_cbl", "train_cbl", "cbl"),
        ("val_cbl", "train_cbl", "cbl"),
    ],
)
def test_check_disjoint_detects_leak(carved, source: str, target: str, family: str) -> None:
    leaked = dict(carved)
    sample = carved[source][5]
    leaked[target] = np.sort(np.append(carved[target], sample))
    with pytest.raises(RuntimeError) as excinfo:
        check_disjoint(leaked)
    message = str(excinfo.value)
    assert family in message and source in message and target in message
    assert str(sample) in message


def test_deterministic(lists, carved) -> None:
    again = carve(lists, RULE, seed=25, class_names=NAMES)
    assert set(again) == set(carved)
    for name in carved:
        np.testing.assert_array_equal(again[name], carved[name])


def test_other_seed_changes_random_draws(lists, carved) -> None:
    other = carve(lists, RULE, seed=26, class_names=NAMES)
    assert not np.array_equal(other["test_glt"], carved["test_glt"])
    assert not np.array_equal(other["val_glt"], carved["val_glt"])
    # The pops depend only on the list order, not on the seed.
    for name in ("test_gbl", "test_cbl", "val_cbl", "train_cbl"):
        np.testing.assert_array_equal(other[name], carved[name])
    # Same LT pool, split differently.
    pool = np.sort(np.concatenate([carved["train_glt"], carved["val_glt"], carved["test_glt"]]))
    other_pool = np.sort(np.concatenate([other["train_glt"], other["val_glt"], other["test_glt"]]))
    np.testing.assert_array_equal(pool, other_pool)


def test_carve_does_not_modify_input_lists(lists) -> None:
    copy = [[a.copy() for a in atts] for atts in lists]
    carve(lists, RULE, seed=3, class_names=NAMES)
    for atts, saved in zip(lists, copy, strict=True):
        for a, b in zip(atts, saved, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("short", "fragments"),
    [
        # Coat (class 4) attribute 2 has 200 < 4·60 = 240 images for Test-GBL.
        ({(4, 2): 200}, ("test_gbl", "Coat", "attribute 2", "240", "200")),
        # Sneaker (class 7) attribute 0 has 240: Test-GBL takes 60 and Test-CBL 126, leaving 54
        # for the BL pool, where Val-CBL needs 63.
        ({(7, 0): 240}, ("val_cbl", "Sneaker", "attribute 0", "63", "54")),
    ],
)
def test_short_attribute_names_split_class_attribute_and_counts(short, fragments) -> None:
    with pytest.raises(UserError) as excinfo:
        carve(make_lists(short), RULE, seed=25, class_names=NAMES)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message


def test_default_class_names_are_ids() -> None:
    lists = make_lists({(3, 1): 100})
    with pytest.raises(UserError, match=r"class '3' attribute 1"):
        carve(lists, RULE, seed=25)


def test_profile_length_must_match() -> None:
    with pytest.raises(ValueError):
        carve(make_lists()[:9], RULE, seed=25)


def test_rank_classes_ties_to_smaller_name() -> None:
    assert rank_classes([5, 7, 7, 3], ["d", "c", "a", "b"]) == [2, 1, 0, 3]
    # Fashion-MNIST: all classes tie at 7,000 → rank = label.
    assert rank_classes([7000] * 10, list(range(10))) == list(range(10))
    assert rank_classes([1, 2, 3], [0, 1, 2]) == [2, 1, 0]


def test_frequency_groups() -> None:
    assert frequency_groups(10, 3, 4) == ["many"] * 3 + ["medium"] * 4 + ["few"] * 3
    groups = frequency_groups(1000, 400, 450)
    assert (groups.count("many"), groups.count("medium"), groups.count("few")) == (400, 450, 150)
    assert groups[399] == "many" and groups[400] == "medium" and groups[850] == "few"


def test_seeded_tie_keys_break_ties_free_of_name_order() -> None:
    names = [f"n{c:08d}" for c in range(1000)]
    order = rank_classes([1300] * 1000, seeded_tie_keys(names, 25))
    rho = np.corrcoef(order, np.arange(1000))[0, 1]
    assert abs(rho) < 0.1
    assert order == rank_classes([1300] * 1000, seeded_tie_keys(names, 25))
    assert order != rank_classes([1300] * 1000, seeded_tie_keys(names, 26))
    # Counts still come first: a larger class ranks ahead whatever its key.
    assert rank_classes([5, 9, 5], seeded_tie_keys(["a", "b", "c"], 0))[0] == 1


def test_lt_targets_come_from_the_profile_count_not_what_is_left() -> None:
    """Class 0's profile count (2,000) exceeds what it holds after the tests: each attribute list is
    cut to min(⌊k·2000/10⌋, left), not to 7:2:1 of what is left (docs/benchmarks.md)."""
    lists = make_lists({(0, 0): 1500, (0, 1): 700, (0, 2): 500})  # 2,700 in all, 7:2:1 would need more
    rule = CarvingRule(test_size=60, val_size=30, lt_counts=(2000, *RULE.lt_counts[1:]), bl_size=490)
    carved_here = carve(lists, rule, seed=25)
    pool = np.concatenate([carved_here["train_glt"], carved_here["val_glt"], carved_here["test_glt"]])
    table = per_class_attribute(pool, attribute_of(lists))
    left = [1500 - 60 - 126, 700 - 60 - 36, 500 - 60 - 18]  # after Test-GBL and Test-CBL
    assert table[0].tolist() == [min(1400, left[0]), min(400, left[1]), min(200, left[2])] == [1314, 400, 200]
    # 7:2:1 of min(2,000, 2,000 left) = 1,400/400/200 would have given 1,314 + 400 + 200 too, but
    # 7:2:1 of min(n, left) for n = 2,000 and 1,914 left gives 1,339/382/191: fewer in attributes 1 and 2.
    assert sum(table[0]) == 1914 and ratio_counts(1914) == [1339, 382, 191]


def test_short_test_gbl_names_the_test_size_option() -> None:
    lists = make_lists({(3, 2): 100})
    with pytest.raises(UserError, match="pass --test-size 25 or less"):
        carve(lists, RULE, seed=25, class_names=NAMES)
