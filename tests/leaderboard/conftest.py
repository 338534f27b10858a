"""A fixed set of records for the report's tests: runs over seeds, an old record, submissions with hostile
names, a GPU run and an ImageNet-GLT run beside the paper's reported rows."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from leaderboard.report import Stamp, write_report

XSS_NAME = "<script>alert(1)</script>"
NASTY_NAME = '=cmd|"x" 50% a_b & {c} ~ ^ \\ $ # <img src=x onerror="window.__pwned=1">'
MANIFEST = "ab" * 32
STAMP = Stamp("2026-01-02 03:04 UTC", "0123456789abcdef0123456789abcdef01234567")


def metrics(acc: float, prec: float, *, ci: bool = True, per_class: bool = True) -> dict[str, Any]:
    """A full metrics dict: groups and attributes around `acc`, intervals acc ± 0.02, 4 classes."""
    out: dict[str, Any] = {"n": 400, "acc": acc, "prec": prec, "f1": 2 * acc * prec / (acc + prec)}
    for shift, group in ((0.1, "many"), (0.0, "medium"), (-0.2, "few")):
        out[f"acc_{group}"], out[f"prec_{group}"] = acc + shift, prec - shift
    for k in range(3):
        out[f"acc_att{k}"], out[f"prec_att{k}"] = acc - 0.05 * k, prec - 0.02 * k
    out["acc_worst_att"] = acc - 0.1
    if ci:
        for key in ("acc", "prec", "f1"):
            out[f"{key}_ci95"] = [out[key] - 0.02, out[key] + 0.03]
        out["ci95"] = {"method": "percentile bootstrap", "resamples": 1000, "seed": 0}
    if per_class:
        out["acc_per_class"] = [acc + 0.2, acc + 0.1, acc - 0.1, None]
        out["train_count_per_class"] = [1600, 400, 60, 15]
    return out


def record(
    method: str,
    seed: int,
    results: dict[str, dict[str, Any]],
    *,
    benchmark: str = "fashion-glt",
    kind: str = "run",
    hparams: dict | None = None,
    compute: dict | None = None,
    **extra: Any,
) -> dict[str, Any]:
    folder = "submissions" if kind == "submission" else method
    rec = {
        "format": "glt-bench-record/1",
        "kind": kind,
        "benchmark": benchmark,
        "method": method,
        "seed": seed,
        "hparams": hparams or {},
        "manifest_sha256": MANIFEST,
        "results": [
            {
                "protocol": p,
                "predictions": f"predictions_{p}.csv",
                "predictions_sha256": hashlib.sha256(
                    f"{method}{hparams}{seed}{p}".encode("utf-8", "surrogatepass")
                ).hexdigest(),
                "metrics": m,
            }
            for p, m in results.items()
        ],
        "environment": {"git_sha": "0123456789abcdef0123456789abcdef01234567", "versions": {}},
        "_path": f"{benchmark}/{folder}/seed{seed}-{'-'.join(results)}/record.json",
        **extra,
    }
    if kind == "run":
        rec["compute"] = compute or {"images_processed": 120_000, "train_seconds": 90.5, "device": "cpu"}
    return rec


def build_records() -> list[dict[str, Any]]:
    return [
        record("ce", 0, {"clt": metrics(0.50, 0.45), "glt": metrics(0.40, 0.38)}),
        record("ce", 1, {"clt": metrics(0.70, 0.55), "glt": metrics(0.50, 0.42)}),
        record("ce", 0, {"alt": metrics(0.60, 0.58, ci=False, per_class=False)}),
        record(
            "ce",
            0,
            {"clt": metrics(0.65, 0.60)},
            hparams={"label_smoothing": 0.1},
            compute={
                "images_processed": 2_000_000,
                "train_seconds": 3000.0,
                "gpu_seconds": 7200.0,
                "device": "cuda:0",
            },
        ),
        record(
            XSS_NAME,
            0,
            {"glt": metrics(0.90, 0.80)},
            kind="submission",
            name=XSS_NAME,
            description="x",
            url="javascript:alert(1)",
            submitted_at="2026-01-02T03:04:05+00:00",
        ),
        record(
            NASTY_NAME,
            3,
            {"glt": metrics(0.30, 0.20)},
            kind="submission",
            name=NASTY_NAME,
            description=NASTY_NAME,
            url="https://example.org/paper",
            submitted_at="2026-01-02T03:04:06+00:00",
        ),
        record(
            "ce",
            0,
            {"clt": metrics(0.47, 0.49)},
            benchmark="imagenet-glt",
            world_size=2,
            compute={"images_processed": 11_346_000, "train_seconds": 5400.0, "device": "cuda:0"},
        ),
    ]


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return build_records()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of `build_records()`, rendered once: index.html and the exports."""
    out = tmp_path_factory.mktemp("site")
    write_report(build_records(), out, STAMP)
    return out


@pytest.fixture(scope="session")
def stamp() -> Stamp:
    return STAMP


@pytest.fixture
def make_record():
    return record


@pytest.fixture
def make_metrics():
    return metrics


@pytest.fixture(scope="session")
def hostile_names() -> tuple[str, str]:
    """The submission names that try to inject markup: a script and an `onerror` handler."""
    return XSS_NAME, NASTY_NAME
