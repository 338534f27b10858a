"""The three GLT protocols (docs/benchmarks.md §2): which split trains, which selects, which tests."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.errors import UserError


@dataclass(frozen=True)
class Protocol:
    name: str
    train_split: str
    val_split: str
    test_split: str
    summary: str


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol("clt", "train_glt", "val_glt", "test_cbl", "class-wise LT: Train-GLT → Test-CBL"),
        Protocol("glt", "train_glt", "val_glt", "test_gbl", "generalized LT: Train-GLT → Test-GBL"),
        Protocol("alt", "train_cbl", "val_cbl", "test_gbl", "attribute-wise LT: Train-CBL → Test-GBL"),
    )
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UserError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}") from None


def by_training_split(names: list[str]) -> dict[str, list[Protocol]]:
    """Protocols grouped by the split their model trains on: one training answers each group."""
    groups: dict[str, list[Protocol]] = {}
    for name in names:
        protocol = get_protocol(name)
        groups.setdefault(protocol.train_split, []).append(protocol)
    return groups
