"""Cross-entropy baseline (`ce`): empirical risk minimisation with a shuffle sampler (docs/methods.md §1)."""

from __future__ import annotations

from baselines.base import METHODS, Method


@METHODS.register("ce")
class CrossEntropy(Method):
    name = "ce"
    summary = "cross-entropy, instance-balanced shuffle sampler (the GLT Baseline)"
