"""The reported reference rows: values spot-checked by hand against the papers' tables, every row of
docs/reference-results.md equal to the code's, the conflicts and flags, and the canonical identity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leaderboard.reference import NOT_REPRODUCIBLE, identity, reference_records

DOC = Path(__file__).parents[2] / "docs" / "reference-results.md"


def find(benchmark: str, method: str, source: str | None = None) -> dict:
    (record,) = [r for r in reference_records() if r["benchmark"] == benchmark and r["method"] == method
                 and (source is None or r["source_name"] == source)]  # fmt: skip
    return {result["protocol"]: result["metrics"] for result in record["results"]} | {"_record": record}


@pytest.mark.parametrize(
    ("benchmark", "method", "protocol", "key", "value"),
    [
        ("imagenet-glt", "LWS", "glt", "acc_few", 22.56),
        ("imagenet-glt", "LWS", "glt", "prec_few", 32.88),
        ("imagenet-glt", "RIDE + IFL", "clt", "prec", 54.76),
        ("imagenet-glt", "BBN", "alt", "acc", 43.26),
        ("imagenet-glt", "Baseline + IFL", "alt", "prec", 46.42),
        ("mscoco-glt", "Baseline", "alt", "acc", 50.17),
        ("mscoco-glt", "RandAug", "alt", "acc", 53.69),
        ("mscoco-glt", "Logit-Adj", "glt", "prec", 68.35),
        ("mscoco-glt", "Meta-CALA", "glt", "prec", 76.21),
        ("imagenet-glt", "ISDA", "alt", "acc", 47.62),
    ],
)
def test_values_against_the_papers(benchmark, method, protocol, key, value):
    assert 100 * find(benchmark, method)[protocol][key] == pytest.approx(value)


def test_counts_sources_and_flags():
    records = reference_records()
    poster = [r for r in records if r["source_name"] == "poster"]
    assert len(poster) == 21 and sum(len(r["results"]) == 3 for r in poster) == 11
    assert len([r for r in records if r["source_name"] == "CALA+CLP"]) == 11  # MSCOCO-GLT reprint
    later = [r for r in records if r["flags"]]
    assert all(r["flags"] == [NOT_REPRODUCIBLE] and not r["caveats"] for r in later)
    assert len(later) == 10 + 11  # ImageNet-GLT: RISDA twice; MSCOCO-GLT: RISDA and MetaSAug twice
    assert all(r["links"] and all(link["url"].startswith("https://") for link in r["links"]) for r in records)


def test_conflicting_papers_give_two_rows_that_name_each_other():
    cala, clp = (find("imagenet-glt", "RISDA", s)["_record"] for s in ("CALA", "CLP"))
    assert cala["conflicts"] == {
        "clt": "CLP prints Acc 49.31, Prec 50.64",
        "alt": "CLP prints Acc 47.33, Prec 46.33",
    }
    assert set(clp["conflicts"]) == {"clt", "alt"}  # GLT agrees: no conflict there
    merged = find("imagenet-glt", "MetaSAug")["_record"]  # equal on ImageNet-GLT: one row citing both
    assert merged["conflicts"] == {} and "CALA" in merged["source"] and "CLP" in merged["source"]
    assert len(find("mscoco-glt", "MetaSAug", "CLP")["_record"]["conflicts"]) == 3


def test_caveats_are_specific_to_the_row():
    assert any("priors permuted" in c for c in find("imagenet-glt", "BLSoftmax + IFL")["_record"]["caveats"])
    assert not any("permuted" in c for c in find("imagenet-glt", "cRT")["_record"]["caveats"])
    for benchmark in ("imagenet-glt", "mscoco-glt"):  # the paper's BBN ran its own plain ResNet-50
        assert any("plain ResNet-50" in c for c in find(benchmark, "BBN")["_record"]["caveats"])
    assert not any("ResNet-50" in c for c in find("imagenet-glt", "cRT")["_record"]["caveats"])
    assert any("53.69 is RandAug" in c for c in find("mscoco-glt", "RandAug")["_record"]["caveats"])


def test_the_document_lists_exactly_the_code_numbers():
    overall = DOC.read_text(encoding="utf-8").split("by frequency group")[0]
    rows = [line for line in overall.splitlines() if re.match(r"\| \S.* \| \d", line)]
    documented = []
    for line in rows:
        method, clt, glt, alt, _, _ = (cell.strip() for cell in line.strip("|").split("|"))
        documented.append((method, clt, glt, alt))
    expected = []
    for record in sorted(reference_records(), key=lambda r: r["benchmark"]):  # the page: by benchmark
        by = {r["protocol"]: r["metrics"] for r in record["results"]}
        cells = [f"{100 * by[p]['acc']:.2f} / {100 * by[p]['prec']:.2f}" if p in by else "–"
                 for p in ("clt", "glt", "alt")]  # fmt: skip
        expected.append((record["method"], *cells))
    assert documented == expected


@pytest.mark.parametrize(
    ("method", "hparams", "expected"),
    [
        ("ce", {}, "Baseline"),
        ("balanced-softmax", {}, "BLSoftmax"),
        ("la-posthoc", {"tau": 1, "base_loss": "ce"}, "Logit-Adj"),
        ("la-posthoc", {"tau": 2}, None),
        ("la", {"tau": 1}, None),
        ("crt", {"stage1": "ce"}, "cRT"),
        ("lws", {"stage1": "ifl"}, "LWS + IFL"),
        ("ifl", {"loss": "bs", "experts": "none", "mixup": False, "randaug": False}, "BLSoftmax + IFL"),
        ("ifl", {"loss": "ce"}, "Baseline + IFL"),
        ("ifl", {"loss": "ce", "mixup": True}, "Mixup + IFL"),
        ("ifl", {"experts": "tade"}, "TADE + IFL"),
        ("tde", {}, "Deconfound-TDE"),
        ("MixUp", None, "Mixup"),
        ("blsoftmax", None, "BLSoftmax"),
        ("tau-norm", {}, None),
        (42, None, None),
    ],
)
def test_identity(method, hparams, expected):
    assert identity(method, hparams) == expected


def test_a_decoupling_run_from_an_ifl_stage_one_is_the_ifl_variant():
    assert identity("crt", {"stage1": "ce"}, from_method="ifl") == "cRT + IFL"
    assert identity("crt", {"stage1": "ce"}, from_method="balanced-softmax") is None


def test_the_page_cites_nothing_outside_the_repository(site):
    for name in ("index.html", "leaderboard.md", "leaderboard.tex", "leaderboard.csv"):
        text = site.joinpath(name).read_text(encoding="utf-8")
        # no "<NAME>.md §N" section citation of an outside file, no path leaving the repository
        assert not re.search(r"[A-Z][A-Z-]*(\.md)?\s*§|\.\./|shared/docs", text), name


def test_the_document_lists_the_poster_group_numbers():
    text = DOC.read_text(encoding="utf-8").split("by frequency group")[1]
    documented = [tuple(c.strip() for c in line.strip("|").split("|")) for line in text.splitlines()
                  if re.match(r"\| \S.* \| \d", line)]  # fmt: skip
    expected = []
    for record in reference_records():
        if record["source_name"] == "poster":
            by = {r["protocol"]: r["metrics"] for r in record["results"]}
            expected.append(
                (
                    record["method"],
                    *(
                        f"{100 * by[p]['acc_' + g]:.2f} / {100 * by[p]['prec_' + g]:.2f}"
                        for p in ("clt", "glt")
                        for g in ("many", "medium", "few")
                    ),
                )
            )
    assert documented == expected and len(expected) == 21
