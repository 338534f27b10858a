"""The static catalog the light CLI verbs read equals the real registries (which import torch)."""

from __future__ import annotations

import baselines  # noqa: F401  (fills the registries)
import splits  # noqa: F401
from baselines.base import METHODS
from benchmark.benchmarks import BENCHMARKS
from benchmark.catalog import BENCHMARK_SUMMARIES, EXTRACTOR_SUMMARIES, METHOD_DEFAULTS, METHOD_SUMMARIES
from splits.features import EXTRACTORS


def test_catalog_matches_the_registries():
    assert {name: b.summary for name, b in BENCHMARKS} == BENCHMARK_SUMMARIES
    assert {name: m.summary for name, m in METHODS} == METHOD_SUMMARIES
    assert {name: dict(m.defaults) for name, m in METHODS} == METHOD_DEFAULTS
    assert {name: e.summary for name, e in EXTRACTORS} == EXTRACTOR_SUMMARIES
