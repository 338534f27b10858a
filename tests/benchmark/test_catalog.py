"""The static catalog the light CLI verbs read equals the real registries (which import torch)."""

from __future__ import annotations

import baselines  # noqa: F401  (fills the registries)
import splits  # noqa: F401
from baselines.base import METHODS
from benchmark import catalog
from benchmark.benchmarks import BENCHMARKS
from benchmark.selection import SELECTION_RULES
from splits.features import EXTRACTORS

STALE = "benchmark/catalog.py is stale: run `python -m benchmark.catalog` and `ruff format` it"


def test_catalog_matches_the_registries():
    assert {name: b.summary for name, b in BENCHMARKS} == catalog.BENCHMARK_SUMMARIES, STALE
    assert {name: m.summary for name, m in METHODS} == catalog.METHOD_SUMMARIES, STALE
    assert {name: dict(m.defaults) for name, m in METHODS} == catalog.METHOD_DEFAULTS, STALE
    assert {name: e.summary for name, e in EXTRACTORS} == catalog.EXTRACTOR_SUMMARIES, STALE
    assert tuple(SELECTION_RULES.names()) == catalog.SELECTION_RULE_NAMES, STALE


def test_the_refresh_writes_what_the_registries_hold():
    namespace: dict = {}
    exec("from typing import Any\n" + catalog.generated_tables(), namespace)
    assert namespace["METHOD_DEFAULTS"] == catalog.METHOD_DEFAULTS
    assert namespace["SELECTION_RULE_NAMES"] == catalog.SELECTION_RULE_NAMES
