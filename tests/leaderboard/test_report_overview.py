"""The overview per benchmark: one line per configuration with the protocols side by side, ranks,
the best values, the GLT − CLT shift and rank changes, reproductions paired with the paper, and rows
told apart truthfully (submissions by name, `--from` runs by their source, training splits declared)."""

from __future__ import annotations

import pytest

from leaderboard.report import report_tables
from leaderboard.tables import leaderboard_tables, overviews


def board(records, benchmark="fashion-glt"):
    return next(o for o in overviews(report_tables(records)) if o.benchmark == benchmark)


def test_protocols_side_by_side_with_ranks_shift_and_rank_change(make_record, make_metrics):
    records = [
        make_record("ce", 0, {"clt": make_metrics(0.70, 0.6), "glt": make_metrics(0.50, 0.5)}),
        make_record("ce", 0, {"alt": make_metrics(0.80, 0.8)}),
        make_record("focal", 0, {"clt": make_metrics(0.60, 0.6), "glt": make_metrics(0.55, 0.5)}),
        make_record("focal", 0, {"alt": make_metrics(0.85, 0.8)}),
        make_record("mixup", 0, {"clt": make_metrics(0.60, 0.6)}),
    ]
    overview = board(records)
    assert overview.protocols == ["clt", "glt", "alt"] and overview.anchor == "fashion-glt-overview"
    lines = [group[0] for group in overview.groups]
    assert [line.label for line in lines] == ["focal", "ce", "mixup"]  # GLT accuracy, then rows without GLT
    focal, ce, mixup = lines
    assert [focal.rows[p].rank for p in ("clt", "glt", "alt")] == [2, 1, 1]
    assert ce.rows["clt"].rank == 1 and mixup.rows["clt"].rank == 2  # ties share a place
    assert focal.shift("acc") == pytest.approx(-0.05) and ce.shift("acc") == pytest.approx(-0.20)
    assert focal.rank_change("clt", "glt") == 1 and ce.rank_change("clt", "glt") == -1
    assert mixup.shift("acc") is None and mixup.rank_change("clt", "glt") is None
    assert overview.best("clt", "acc") == pytest.approx(0.70) and overview.best(
        "alt", "acc"
    ) == pytest.approx(0.85)


def test_a_reproduction_sits_beside_its_paper_row_with_deltas(make_record, make_metrics):
    records = [
        make_record("ce", 0, {"clt": make_metrics(0.45, 0.50), "glt": make_metrics(0.36, 0.41)},
                    benchmark="imagenet-glt"),
        make_record("balanced-softmax", 0, {"clt": make_metrics(0.40, 0.40)}, benchmark="imagenet-glt"),
    ]  # fmt: skip
    overview = board(records, "imagenet-glt")
    first, second = overview.groups[:2]
    assert [line.label for line in first] == ["ce", "Baseline"] and first[1].kind == "reported"
    assert [line.label for line in second] == ["balanced-softmax", "BLSoftmax"]
    ce = first[0].rows["clt"]
    assert ce.identity == "Baseline" and ce.paper.label == "Baseline"
    assert (ce.paper.acc, ce.paper.prec) == pytest.approx((0.45 - 0.4252, 0.50 - 0.4792))
    assert first[0].rows["glt"].paper.acc == pytest.approx(0.36 - 0.3475)
    # The own rows are ranked among themselves, the paper's rows among themselves.
    assert ce.rank == 1 and first[1].rows["clt"].rank == 30
    unpaired = [g for g in overview.groups if g[0].kind == "reported"]
    assert all(len(g) == 1 for g in unpaired)  # a paper row without a reproduction stands alone
    assert not any(line.label == "Baseline" for g in unpaired for line in g)


def test_submissions_are_labelled_by_name_with_method_and_training_split(make_record, make_metrics):
    submission = make_record("ce", 0, {"alt": make_metrics(0.5, 0.5)}, kind="submission", name="team A",
                             train_split="train_glt")  # fmt: skip
    other = make_record("team B", 0, {"alt": make_metrics(0.4, 0.5)}, kind="submission", name="team B",
                        train_split="train_cbl")  # fmt: skip
    (table,) = leaderboard_tables([submission, other])
    a, b = table.rows
    assert (a.label, a.level, b.label) == ("team A", "submitted", "team B")
    assert a.details == ["method: ce", "declared trained on Train-GLT"] and a.identity == "Baseline"
    assert a.flags == ["declared Train-GLT, but ALT trains on Train-CBL"] and b.flags == []


def test_identical_predictions_are_flagged(make_record, make_metrics):
    first = make_record("alice", 0, {"glt": make_metrics(0.5, 0.5)}, kind="submission", name="alice")
    second = make_record("bob", 0, {"glt": make_metrics(0.5, 0.5)}, kind="submission", name="bob")
    second["results"][0]["predictions_sha256"] = first["results"][0]["predictions_sha256"]
    (table,) = leaderboard_tables([first, second])
    assert [row.flags for row in table.rows] == [
        ["identical predictions to bob"],
        ["identical predictions to alice"],
    ]


def test_a_from_run_is_its_own_row_named_by_its_source(make_record, make_metrics):
    plain = make_record("crt", 0, {"clt": make_metrics(0.5, 0.5)}, hparams={"stage1": "ce"})
    source = {
        "path": "runs/fashion-glt/balanced-softmax/x",
        "method": "balanced-softmax",
        "record_sha256": "f00d" * 16,
    }
    chained = make_record(
        "crt", 0, {"clt": make_metrics(0.6, 0.5)}, hparams={"stage1": "ce"}, from_run=source
    )
    (table,) = leaderboard_tables([plain, chained])
    assert [row.label for row in table.rows] == ["crt ← balanced-softmax run f00df00d", "crt"]
    assert [row.seeds for row in table.rows] == [[0], [0]]  # not one row "Seeds 0, 0"
    facts = {fact.label: fact.text for fact in table.rows[0].provenance[0]}
    assert facts["stage 1 from"].startswith("balanced-softmax run runs/fashion-glt/balanced-softmax/x")
    assert table.rows[0].identity is None and table.rows[1].identity == "cRT"


def test_variants_are_the_hyperparameters_that_differ_from_the_common_value(make_record, make_metrics):
    def ifl(**hparams):
        full = {"loss": "bs", "experts": "none", "mixup": False} | hparams
        return make_record("ifl", 0, {"clt": make_metrics(0.5, 0.5)}, hparams=full)

    table = leaderboard_tables([ifl(), ifl(loss="ce"), ifl(experts="ride"), ifl(loss="ce", mixup=True)])[0]
    assert sorted(row.label for row in table.rows) == ["ifl", "ifl experts=ride", "ifl loss=ce",
                                                        "ifl loss=ce mixup=True"]  # fmt: skip
    assert {row.label: row.identity for row in table.rows}["ifl loss=ce mixup=True"] == "Mixup + IFL"


def test_seeds_in_order_and_levels(make_record, make_metrics):
    records = [make_record("ce", seed, {"clt": make_metrics(0.5, 0.5)}) for seed in (2, 0, 1)]
    (table,) = leaderboard_tables(records)
    row = table.rows[0]
    assert row.seeds == [0, 1, 2] and [facts[0].text for facts in row.provenance] == ["0", "1", "2"]
    assert row.level == "trained here" and row.rescored is None
