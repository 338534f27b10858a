"""Model-selection rules on Val, each with the name stored in every run record (docs/benchmarks.md §5)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmark.metrics import accuracy, balanced_accuracy
from benchmark.registry import Registry

# A rule scores one epoch's Val predictions; the engine keeps the epoch with the highest score
# (the earliest on ties). `last` scores an epoch by its index, so the final epoch wins.
SelectionRule = Callable[[np.ndarray, np.ndarray, int, int], float]
SELECTION_RULES: Registry[SelectionRule] = Registry("selection rule")

SELECTION_RULES.register("val_acc")(lambda y, p, num_classes, epoch: accuracy(y, p))
SELECTION_RULES.register("val_bacc")(lambda y, p, num_classes, epoch: balanced_accuracy(y, p, num_classes))
SELECTION_RULES.register("last")(lambda y, p, num_classes, epoch: float(epoch))
