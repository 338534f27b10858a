"""Tests for splits/profiles.py against docs/benchmarks.md §8 and §9."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from benchmark.errors import UserError
from splits.profiles import exp_profile, pareto_profile, parse_profile, profile_sha256, read_counts_file

IMAGENET_PARETO = (1000, 6, 993.25, 18, 1500)


def test_exp_profile_fashion_glt() -> None:
    # docs/benchmarks.md §9: n_c = ⌊2707·0.01^(c/9)⌋
    assert exp_profile(10, 2707, 100) == [2707, 1622, 972, 583, 349, 209, 125, 75, 45, 27]


def test_exp_profile_fashion_glt_mini() -> None:
    # ⌊280·10^(−c/9)⌋: 280·{1, .77426, .59948, .46416, .35938, .27826, .21544, .16681, .12915, .1}
    # = 280, 216.79, 167.86, 129.96, 100.63, 77.91, 60.32, 46.71, 36.16, 28
    assert exp_profile(10, 280, 10) == [280, 216, 167, 129, 100, 77, 60, 46, 36, 28]


def test_exp_profile_single_class() -> None:
    assert exp_profile(1, 500, 100) == [500]


def test_pareto_profile_imagenet_glt() -> None:
    counts = pareto_profile(*IMAGENET_PARETO)
    assert len(counts) == 1000
    assert sum(counts) == 214_002
    assert counts[:8] == [1500, 1500, 1500, 1500, 1469, 1388, 1323, 1269]
    assert max(counts) == 1500 and counts.count(1500) == 4
    assert min(counts) == 18 and counts.count(18) == 7
    assert counts[-1] == 18
    assert counts[399] == 182
    assert counts[849] == 45
    assert all(a >= b for a, b in itertools.pairwise(counts))
    # §8 table: many / medium / few sums and the count bands.
    assert (sum(counts[:400]), sum(counts[400:850]), sum(counts[850:])) == (163_024, 46_383, 4_595)
    assert sum(n > 100 for n in counts) == 618
    assert sum(20 <= n <= 100 for n in counts) == 370
    assert sum(n < 20 for n in counts) == 12


def test_pareto_profile_sha256() -> None:
    counts = pareto_profile(*IMAGENET_PARETO)
    assert profile_sha256(counts) == "a2138f9eaec6fa7e972b0c65d8c496807caab5af609bf4feb48e7fb9d7a06f30"


def test_profile_sha256_is_one_per_line_with_final_newline() -> None:
    assert profile_sha256([3, 2, 1]) == hashlib.sha256(b"3\n2\n1\n").hexdigest()


def test_read_counts_file(tmp_path: Path) -> None:
    path = tmp_path / "counts.txt"
    path.write_text("5\n5\n3\n1\n", encoding="utf-8")
    assert read_counts_file(path, 4) == [5, 5, 3, 1]


def test_counts_file_round_trips_the_pareto_profile(tmp_path: Path) -> None:
    counts = pareto_profile(*IMAGENET_PARETO)
    path = tmp_path / "counts.txt"
    path.write_text("".join(f"{n}\n" for n in counts), encoding="utf-8")
    assert read_counts_file(path, 1000) == counts
    assert hashlib.sha256(path.read_bytes()).hexdigest() == profile_sha256(counts)


@pytest.mark.parametrize(
    ("text", "num_classes"),
    [
        ("5\n4\n3\n", 4),  # too few entries
        ("5\n4\n3\n2\n1\n", 4),  # too many entries
        ("5\n3\n4\n1\n", 4),  # increasing somewhere
        ("1\n2\n3\n4\n", 4),  # increasing throughout
        ("5\n4.5\n3\n1\n", 4),  # not an integer
        ("5\nfour\n3\n1\n", 4),  # not a number
        ("5\n4\n3\n0\n", 4),  # not positive
        ("5\n4\n3\n-1\n", 4),  # negative
        ("", 4),  # empty
    ],
)
def test_read_counts_file_errors(tmp_path: Path, text: str, num_classes: int) -> None:
    path = tmp_path / "counts.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError):
        read_counts_file(path, num_classes)


def test_read_counts_file_missing(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"missing\.txt"):
        read_counts_file(tmp_path / "missing.txt", 4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("exp:100:0", "ratio must be"),
        ("exp:inf:2", "n_max must be"),
        ("exp:100.5:2", "n_max must be"),
        ("exp:100:nan", "ratio must be"),
        ("pareto:0:993:18:1500", "alpha must be"),
        ("pareto:nan:993:18:1500", "alpha must be"),
        ("pareto:6:-1:18:1500", "sigma must be"),
        ("pareto:6:993:0:1500", "n_min must be"),
        ("pareto:6:993:1600:1500", "n_min must not exceed"),
        ("exp:100", "as numbers"),
    ],
)
def test_bad_profile_values_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as error:
        parse_profile(spec, 10, {})
    assert "\n" not in str(error.value)
