"""The long-tailed methods: one module per method family, each registering itself by name."""

from baselines import (
    balanced_softmax,  # noqa: F401  (registration)
    bbn,  # noqa: F401  (registration)
    bns_ipdpp,  # noqa: F401  (registration)
    ce,  # noqa: F401  (registration)
    decoupling,  # noqa: F401  (registration)
    dro_lt,  # noqa: F401  (registration)
    focal,  # noqa: F401  (registration)
    ifl,  # noqa: F401  (registration)
    ldam,  # noqa: F401  (registration)
    lff,  # noqa: F401  (registration)
    logit_adjustment,  # noqa: F401  (registration)
    mixup,  # noqa: F401  (registration)
    randaug,  # noqa: F401  (registration)
    tde,  # noqa: F401  (registration)
)
