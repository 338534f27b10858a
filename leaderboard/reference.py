"""Reported reference numbers, as leaderboard records, and the canonical method identity that pairs
them with reproductions.

Every number, its source and its caveats are described in docs/reference-results.md:
- ImageNet-GLT CLT and GLT: the IFL paper's poster table (Tang et al., ECCV 2022), accuracy and
  precision for many / medium / few and overall;
- ImageNet-GLT ALT and MSCOCO-GLT CLT / ALT / GLT of the same methods (overall only), as two later
  papers (CALA, AAAI 2025, and CLP) reprint the IFL paper's table; their ImageNet-GLT CLT and GLT
  cells equal the poster's wherever both exist;
- later methods reported by CALA and CLP (not reproducible from their released code, which trains on
  CIFAR only); where the two papers print different values, both are kept, each row marked as a
  conflict naming the cells that disagree.

`identity(method, hparams)` maps a registered method (with the hyperparameters that select the
paper's variant) or a paper's method name to one canonical name, so a reproduced row sits beside the
reported row of the same method.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

IMAGENET, MSCOCO = "imagenet-glt", "mscoco-glt"
POSTER_URL = "https://github.com/KaihuaTang/Generalized-Long-Tailed-Benchmarks.pytorch/tree/project_page"
CODE_URL = "https://github.com/KaihuaTang/Generalized-Long-Tailed-Benchmarks.pytorch"
CALA_URL = "https://github.com/xiaolingzhou98/CALA"
CLP_URL = "https://github.com/xiaolingzhou98/CLP"
DOC = "docs/reference-results.md"


@dataclass(frozen=True)
class Source:
    name: str
    text: str
    url: str


POSTER = Source("poster", "Tang et al., ECCV 2022 (IFL paper), poster table", POSTER_URL)
CALA = Source("CALA", "CALA (AAAI 2025), results table GLT-RES.jpg", CALA_URL)
CLP = Source("CLP", "CLP, results table img/GLT2.jpg", CLP_URL)
REPRINT = Source("CALA+CLP", "IFL paper's table as reprinted by CALA (AAAI 2025) and CLP", CALA_URL)

MOMENTUM = "SGD momentum 0, as the original code ran"
PRIOR_ORDER = "class priors permuted by the original code (class ids sorted as strings)"
PRIOR_METHODS = ("BLSoftmax", "LDAM", "RIDE", "TADE", "IFL")
BBN_TRUNK = (
    "BBN's own plain ResNet-50; our bbn rows split the shared backbone (bbn trunk=resnet50 builds BBN's)"
)
NOT_REPRODUCIBLE = "not reproducible from released code (the authors' scripts train on CIFAR only)"
GROUP_COLUMNS = ("many", "medium", "few", "overall")

# method | many acc prec | medium acc prec | few acc prec | overall acc prec  (percent)
_POSTER_CLT = """
Baseline        | 59.34 39.08 | 36.95 52.87 | 14.39 56.65 | 42.52 47.92
cRT             | 56.55 45.79 | 42.89 46.23 | 26.67 41.47 | 45.92 45.34
LWS             | 55.38 46.67 | 43.91 46.87 | 30.11 40.92 | 46.43 45.90
Deconfound-TDE  | 54.94 49.27 | 43.18 43.91 | 28.64 33.40 | 45.70 44.48
BLSoftmax       | 55.60 48.19 | 42.74 47.27 | 28.79 38.14 | 45.79 46.27
Logit-Adj       | 54.55 49.70 | 44.40 45.05 | 31.53 36.04 | 46.53 45.56
BBN             | 61.64 42.74 | 43.80 54.44 | 13.94 55.12 | 46.46 49.86
LDAM            | 59.05 45.39 | 43.23 48.80 | 24.44 44.99 | 46.74 46.86
Baseline + IFL  | 62.71 42.98 | 40.10 56.83 | 18.92 61.92 | 45.97 52.06
cRT + IFL       | 61.27 45.84 | 43.96 51.67 | 24.32 53.64 | 47.94 49.63
LWS + IFL       | 61.50 45.43 | 43.79 52.85 | 23.86 55.58 | 47.89 50.29
BLSoftmax + IFL | 58.00 53.70 | 44.70 51.73 | 33.49 37.58 | 48.34 50.39
Logit-Adj + IFL | 56.96 56.22 | 46.54 50.10 | 36.88 33.29 | 49.26 50.02
Mixup           | 59.68 37.96 | 30.83 55.74 |  7.09 34.33 | 38.81 45.41
RandAug         | 64.96 42.63 | 40.30 59.10 | 15.20 56.60 | 46.40 52.13
Mixup + IFL     | 67.71 47.77 | 45.87 62.58 | 24.71 67.77 | 51.43 57.44
RandAug + IFL   | 69.35 49.42 | 48.05 63.19 | 26.92 66.04 | 53.40 58.11
TADE            | 58.44 56.38 | 48.01 51.41 | 36.60 41.08 | 50.47 51.85
RIDE            | 64.04 51.91 | 48.66 53.21 | 30.44 46.25 | 52.08 51.65
TADE + IFL      | 61.71 55.59 | 48.87 53.42 | 34.02 40.93 | 51.78 52.41
RIDE + IFL      | 65.68 54.13 | 50.82 56.22 | 31.91 52.10 | 53.93 54.76
"""

_POSTER_GLT = """
Baseline        | 50.98 32.90 | 28.49 44.72 | 10.28 49.11 | 34.75 40.65
cRT             | 48.02 38.40 | 34.16 38.07 | 19.92 33.50 | 37.57 37.51
LWS             | 47.15 39.16 | 34.88 38.68 | 22.56 32.88 | 37.94 38.01
Deconfound-TDE  | 46.87 42.39 | 34.43 35.77 | 22.11 26.30 | 37.56 37.00
BLSoftmax       | 47.15 40.89 | 33.48 39.11 | 21.10 27.50 | 37.09 38.08
Logit-Adj       | 45.94 41.97 | 35.15 36.63 | 24.07 28.59 | 37.80 37.56
BBN             | 52.41 35.58 | 34.31 46.38 | 10.06 44.43 | 37.91 41.77
LDAM            | 51.02 38.78 | 34.13 40.39 | 18.46 35.91 | 38.54 39.08
Baseline + IFL  | 54.09 36.74 | 31.73 49.03 | 13.62 51.42 | 37.96 44.47
cRT + IFL       | 52.75 39.11 | 35.14 43.36 | 17.92 43.35 | 39.60 41.65
LWS + IFL       | 53.21 38.92 | 34.99 44.44 | 17.42 45.90 | 39.64 42.45
BLSoftmax + IFL | 49.92 46.86 | 36.11 44.31 | 25.71 32.01 | 40.08 43.48
Logit-Adj + IFL | 48.25 49.17 | 37.50 41.65 | 29.00 25.77 | 40.52 42.28
Mixup           | 51.04 31.85 | 23.10 47.25 |  4.94 22.88 | 31.55 37.44
RandAug         | 56.36 35.97 | 31.43 51.13 | 10.36 48.92 | 38.24 44.74
Mixup + IFL     | 59.36 40.95 | 36.77 54.67 | 18.06 55.10 | 43.00 49.25
RandAug + IFL   | 60.79 42.41 | 39.07 55.15 | 20.04 57.90 | 44.90 50.47
TADE            | 50.29 49.25 | 38.74 43.74 | 27.99 31.75 | 41.75 44.15
RIDE            | 55.47 44.55 | 38.65 44.26 | 22.80 37.26 | 43.00 43.32
TADE + IFL      | 53.75 48.73 | 39.90 45.28 | 26.77 35.34 | 43.47 45.17
RIDE + IFL      | 57.84 47.00 | 41.80 48.65 | 24.63 42.96 | 45.64 47.14
"""

# The IFL paper's rows as CALA and CLP reprint them: ImageNet-GLT ALT; MSCOCO-GLT CLT | ALT | GLT.
_REPRINT_IMAGENET_ALT = """
Baseline        | 41.73 41.74
Mixup           | 42.11 42.42
LDAM            | 42.66 41.80
cRT             | 41.59 41.43
LWS             | 41.70 41.71
Deconfound-TDE  | 41.40 42.36
BLSoftmax       | 41.32 41.37
BBN             | 43.26 43.86
RandAug         | 46.29 46.32
Logit-Adj       | 41.73 41.74
Baseline + IFL  | 45.89 46.42
"""

_REPRINT_MSCOCO = """
Baseline        | 72.34 76.61 | 50.17 50.94 | 63.79 70.52
Mixup           | 74.22 78.61 | 48.90 49.53 | 64.45 71.13
LDAM            | 75.57 77.70 | 55.52 56.21 | 67.26 70.70
cRT             | 73.64 75.84 | 49.97 50.37 | 64.69 68.33
LWS             | 72.60 75.66 | 50.14 50.61 | 63.60 68.81
Deconfound-TDE  | 73.79 74.90 | 50.76 51.68 | 66.07 68.20
BLSoftmax       | 72.64 75.25 | 49.72 50.65 | 64.07 68.59
BBN             | 73.69 77.35 | 51.83 51.77 | 64.48 70.20
RandAug         | 76.81 79.88 | 53.69 54.71 | 67.71 72.73
Logit-Adj       | 75.50 76.88 | 50.17 50.94 | 66.17 68.35
Baseline + IFL  | 74.31 78.90 | 52.86 53.49 | 65.31 72.24
"""

# Later methods: source | method | ImageNet-GLT CLT | ALT | GLT || MSCOCO-GLT CLT | ALT | GLT.
_LATER = """
CLP  | ISDA           | 47.66 51.98 | 47.62 47.46 | 39.44 44.26 || 77.32 79.23 | 54.43 54.62 | 67.57 72.89
CALA | RISDA          | 46.31 51.24 | 43.65 43.23 | 38.45 42.77 || 74.34 78.27 | 51.58 52.28 | 66.85 71.36
CLP  | RISDA          | 49.31 50.64 | 47.33 46.33 | 38.45 42.77 || 76.34 79.27 | 54.58 53.98 | 66.85 72.66
CALA | CSA            | 46.49 50.77 | 43.03 44.05 | 37.22 42.01 || 74.25 78.56 | 52.34 52.11 | 64.78 69.10
CLP  | CSA            | 46.49 50.77 | 43.03 44.05 | 37.22 42.01 || 74.25 78.56 | 52.34 52.11 | 64.78 69.10
CALA | BKD            | 46.51 50.15 | 42.17 41.83 | 37.93 41.50 || 75.82 78.23 | 51.88 51.23 | 65.48 70.59
CLP  | BKD            | 46.51 50.15 | 42.17 41.83 | 37.93 41.50 || 75.82 78.23 | 51.88 51.23 | 65.48 70.59
CALA | MetaSAug       | 50.53 55.21 | 49.12 48.56 | 41.27 47.38 || 77.89 79.45 | 54.87 54.78 | 67.83 73.05
CLP  | MetaSAug       | 50.53 55.21 | 49.12 48.56 | 41.27 47.38 || 77.50 79.43 | 54.66 54.73 | 67.07 72.68
CLP  | Meta-LP        | 50.87 55.64 | 49.46 48.85 | 41.56 47.66 || 77.71 80.23 | 55.76 56.44 | 67.92 73.04
CLP  | CLP            | 52.01 56.72 | 51.12 50.38 | 43.03 48.97 || 78.83 80.92 | 56.89 57.78 | 68.87 74.05
CALA | Heuristic-CALA | 54.13 58.38 | 51.88 52.75 | 44.71 50.82 || 79.14 82.04 | 56.67 57.78 | 69.04 75.51
CALA | Meta-CALA      | 55.14 59.47 | 52.76 53.66 | 45.83 51.36 || 80.05 82.98 | 58.99 59.56 | 71.05 76.21
"""

# Registered methods → the paper's name; IFL and decoupling variants are told apart by hyperparameters.
_REGISTRY = {
    "ce": "Baseline",
    "balanced-softmax": "BLSoftmax",
    "la-posthoc": "Logit-Adj",
    "ldam-drw": "LDAM",
    "tde": "Deconfound-TDE",
    "bbn": "BBN",
    "mixup": "Mixup",
    "randaug": "RandAug",
    "ride": "RIDE",
    "tade": "TADE",
}
_IFL_LOSS = {"ce": "Baseline", "bs": "BLSoftmax", "la-posthoc": "Logit-Adj"}
_ALIASES = {"tde": "Deconfound-TDE"}  # other names match a paper's name in any case (`_paper_names`)


@functools.cache
def _paper_names() -> dict[str, str]:
    names = {line.split("|")[0].strip() for line in _POSTER_CLT.strip().splitlines()}
    names |= {line.split("|")[1].strip() for line in _LATER.strip().splitlines()}
    return {name.lower(): name for name in names}


def identity(method: Any, hparams: Any = None, from_method: Any = None) -> str | None:
    """The canonical (paper) name of a method, or None when no paper reports it.

    `method` is a registered name with its effective `hparams`, or a paper's own name (any case);
    `from_method` is the stage-1 method of a decoupling run started `--from` another run.
    """
    if not isinstance(method, str):
        return None
    hparams = hparams if isinstance(hparams, dict) else {}
    if method in ("crt", "lws"):
        ifl_stage1 = hparams.get("stage1") == "ifl" or from_method == "ifl"
        stage1 = hparams.get("stage1", "ce") if from_method is None else from_method
        if not ifl_stage1 and stage1 != "ce":
            return None
        return {"crt": "cRT", "lws": "LWS"}[method] + (" + IFL" if ifl_stage1 else "")
    if method == "ifl":
        if hparams.get("experts") in ("ride", "tade"):
            return f"{hparams['experts'].upper()} + IFL"
        if hparams.get("mixup") is True:
            return "Mixup + IFL"
        if hparams.get("randaug") is True:
            return "RandAug + IFL"
        loss = _IFL_LOSS.get(hparams.get("loss", "bs"))
        return f"{loss} + IFL" if loss else None
    if method == "la-posthoc" and (hparams.get("tau", 1) != 1 or hparams.get("base_loss", "ce") != "ce"):
        return None
    if method in _REGISTRY:
        return _REGISTRY[method]
    key = method.strip().lower()
    return _ALIASES.get(key) or _paper_names().get(key)


def _numbers(cell: str) -> tuple[float, float]:
    acc, prec = (float(value) / 100 for value in cell.split())
    return acc, prec


def _groups(table: str) -> dict[str, dict[str, float]]:
    """Method → metrics (fractions) of one poster block: acc/prec per group and overall."""
    parsed = {}
    for line in table.strip().splitlines():
        method, *cells = (part.strip() for part in line.split("|"))
        metrics = {}
        for column, cell in zip(GROUP_COLUMNS, cells, strict=True):
            suffix = "" if column == "overall" else f"_{column}"
            metrics[f"acc{suffix}"], metrics[f"prec{suffix}"] = _numbers(cell)
        parsed[method] = metrics
    return parsed


def _overall(cell: str) -> dict[str, float]:
    acc, prec = _numbers(cell)
    return {"acc": acc, "prec": prec}


def _caveats(method: str, source: Source) -> list[str]:
    caveats = []
    if source in (POSTER, REPRINT):
        caveats.append(MOMENTUM)
        if any(part in method for part in PRIOR_METHODS):
            caveats.append(PRIOR_ORDER)
    if method == "BBN":
        caveats.append(BBN_TRUNK)
    return caveats


def _record(benchmark: str, method: str, source: Source, results: dict[str, tuple[Source, dict]]) -> dict:
    caveats = _caveats(method, source)
    later = source in (CALA, CLP)
    return {
        "kind": "reported",
        "benchmark": benchmark,
        "method": method,
        "identity": identity(method),
        "seed": None,
        "source": source.text if later else "; ".join(dict.fromkeys(s.text for s, _ in results.values())),
        "source_name": source.name,
        "links": [
            {"label": s.name, "url": s.url}
            for used in dict.fromkeys(s for s, _ in results.values())
            for s in ((CALA, CLP) if used is REPRINT else (used,))
        ]
        + ([{"label": "code", "url": CODE_URL}] if not later else []),
        "caveats": caveats,
        "flags": [NOT_REPRODUCIBLE] if later else [],
        "conflicts": {},
        "results": [
            {"protocol": protocol, "source": s.text, "metrics": metrics}
            for protocol, (s, metrics) in results.items()
        ],
    }


def _ifl_paper_records() -> list[dict[str, Any]]:
    clt, glt = _groups(_POSTER_CLT), _groups(_POSTER_GLT)
    alt = {line.split("|")[0].strip(): _overall(line.split("|")[1]) for line in
           _REPRINT_IMAGENET_ALT.strip().splitlines()}  # fmt: skip
    records = []
    for method in clt:
        results = {"clt": (POSTER, clt[method]), "glt": (POSTER, glt[method])}
        if method in alt:
            results["alt"] = (REPRINT, alt[method])
        records.append(_record(IMAGENET, method, POSTER, results))
    for line in _REPRINT_MSCOCO.strip().splitlines():
        method, *cells = (part.strip() for part in line.split("|"))
        results = {p: (REPRINT, _overall(c)) for p, c in zip(("clt", "alt", "glt"), cells, strict=True)}
        records.append(_record(MSCOCO, method, REPRINT, results))
    for record in records:
        if record["method"] == "Logit-Adj" and "alt" in {r["protocol"] for r in record["results"]}:
            record["caveats"].append(
                "ALT equals Baseline's: a uniform training prior shifts every logit alike"
            )
        if record["benchmark"] == MSCOCO and record["method"] == "RandAug":
            record["caveats"].append(
                "ALT 53.69 is RandAug's (Baseline's is 50.17), the figure the original repository's "
                "issue #1 compares with a user's > 62% with RandAugment"
            )
    return records


def _later_records() -> list[dict[str, Any]]:
    records = []
    for line in _LATER.strip().splitlines():
        source_name, method, cells = (part.strip() for part in line.split("|", 2))
        source = {"CALA": CALA, "CLP": CLP}[source_name]
        imagenet, mscoco = (part.split("|") for part in cells.split("||"))
        for benchmark, part in ((IMAGENET, imagenet), (MSCOCO, mscoco)):
            results = {p: (source, _overall(c)) for p, c in zip(("clt", "alt", "glt"), part, strict=True)}
            records.append(_record(benchmark, method, source, results))
    # Two papers for one method: identical values make one row citing both; differing values stay
    # two rows, each naming the other paper's values for the cells that disagree.
    merged: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        merged.setdefault((record["benchmark"], record["method"]), []).append(record)
    out = []
    for pair in merged.values():
        if len(pair) == 2 and _same_results(*pair):
            first, second = pair
            first["source"] = f"{first['source']}; {second['source']}"
            first["links"] += second["links"]
            out.append(first)
            continue
        if len(pair) == 2:
            for this, other in (pair, pair[::-1]):
                theirs = {r["protocol"]: r["metrics"] for r in other["results"]}
                for result in this["results"]:
                    if result["metrics"] != theirs[result["protocol"]]:
                        acc, prec = (100 * theirs[result["protocol"]][k] for k in ("acc", "prec"))
                        this["conflicts"][result["protocol"]] = (
                            f"{other['source_name']} prints Acc {acc:.2f}, Prec {prec:.2f}"
                        )
        out += pair
    return out


def _same_results(first: dict, second: dict) -> bool:
    return [r["metrics"] for r in first["results"]] == [r["metrics"] for r in second["results"]]


def reference_records() -> list[dict[str, Any]]:
    """Every reported reference row (kind `reported`), with its source, links, caveats and flags."""
    return [*_ifl_paper_records(), *_later_records()]
