"""The long-tailed methods: one module per method family, each registering itself by name."""

from baselines import ce  # noqa: F401  (registration)
