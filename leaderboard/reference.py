"""Reported reference numbers: the original paper's ImageNet-GLT results, as leaderboard records.

Source: K. Tang, M. Tao, J. Qi, Z. Liu, H. Zhang, "Invariant Feature Learning for Generalized
Long-Tailed Classification", ECCV 2022 — the poster table (project page of
KaihuaTang/Generalized-Long-Tailed-Benchmarks.pytorch, branch `project_page`, `asset/4408.png`),
transcribed in docs/benchmarks.md §10. The poster does not name the dataset; its 1000-class scale (Baseline
CLT accuracy 42.52) identifies ImageNet-GLT. Each cell is accuracy and precision in percent for the
many / medium / few groups and overall; the poster has no ALT, attribute-wise or F1 numbers.
"""

from __future__ import annotations

from typing import Any

BENCHMARK = "imagenet-glt"
SOURCE = "Tang et al., ECCV 2022, poster table (docs/benchmarks.md §10)"
NOTE = (
    "momentum 0 and the original code as shipped, including its prior-ordering issue for "
    "Balanced Softmax, LDAM, RIDE, TADE and IFL (docs/benchmarks.md §7c)"
)
COLUMNS = ("many", "medium", "few", "overall")

# method | many acc prec | medium acc prec | few acc prec | overall acc prec  (percent)
_CLT = """
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

_GLT = """
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


def _parse(table: str) -> dict[str, dict[str, float]]:
    """Method → metrics (fractions) of one protocol's block."""
    parsed = {}
    for line in table.strip().splitlines():
        method, *cells = (part.strip() for part in line.split("|"))
        metrics = {}
        for column, cell in zip(COLUMNS, cells, strict=True):
            acc, prec = (float(value) / 100 for value in cell.split())
            suffix = "" if column == "overall" else f"_{column}"
            metrics[f"acc{suffix}"], metrics[f"prec{suffix}"] = acc, prec
        parsed[method] = metrics
    return parsed


def reference_records() -> list[dict[str, Any]]:
    """One record per reported method (kind `reported`), answering CLT and GLT of ImageNet-GLT."""
    clt, glt = _parse(_CLT), _parse(_GLT)
    return [
        {
            "kind": "reported",
            "benchmark": BENCHMARK,
            "method": method,
            "seed": None,
            "source": SOURCE,
            "note": NOTE,
            "results": [
                {"protocol": "clt", "metrics": clt[method]},
                {"protocol": "glt", "metrics": glt[method]},
            ],
        }
        for method in clt
    ]
