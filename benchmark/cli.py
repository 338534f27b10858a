"""`glt-bench`: a thin command line over the library. Each verb parses, calls one function, prints."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import click

from benchmark.errors import UserError
from benchmark.protocols import PROTOCOLS

MANIFESTS = click.option(
    "--manifests",
    "manifest_dir",
    type=click.Path(path_type=Path),
    default=Path("manifests"),
    show_default=True,
    help="Folder holding one built manifest per benchmark.",
)
BENCHMARK = click.option("--benchmark", default="fashion-glt", show_default=True, help="Benchmark name.")


# Verbs that read files and records only: they never import torch, the methods or the builders (which
# take seconds), so they skip `_register_all`; `list` reads the static copy in benchmark/catalog.py.
LIGHT_VERBS = frozenset({"list", "score", "submit", "report", "verify", "compare", "sweep", "status"})


def _register_all() -> None:
    """Import the packages whose modules register benchmarks, extractors and methods (imports torch)."""
    import baselines  # noqa: F401
    import splits  # noqa: F401


ERROR_LIMIT = 300  # characters of an error line


def one_line(message: str, limit: int = ERROR_LIMIT) -> str:
    """An error message on one line of at most `limit` characters (whatever a file or name held)."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Group(click.Group):
    """Turns UserError into a one-line message (≤ 300 characters) and exit code 1, without a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise click.ClickException(one_line(str(exc))) from None


def _manifest(manifest_dir: Path, benchmark: str):
    """The built manifest of a benchmark; a metadata.json of the wrong shape is one UserError line."""
    from benchmark.manifest import Manifest

    try:
        manifest = Manifest(manifest_dir / benchmark)
        manifest.benchmark, manifest.num_classes  # noqa: B018  (touched: any shape error surfaces here)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UserError(
            f"{manifest_dir / benchmark / 'metadata.json'} is not a glt-bench manifest "
            f"({type(exc).__name__}: {exc}); rebuild it with `glt-bench build-splits`"
        ) from None
    return manifest


@click.group(cls=_Group)
@click.version_option(package_name="glt-bench")
@click.pass_context
def main(ctx: click.Context) -> None:
    """glt-bench: build GLT splits, train and evaluate methods, score predictions, publish a leaderboard."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if ctx.invoked_subcommand not in LIGHT_VERBS:
        _register_all()


@main.command("list")
def list_cmd() -> None:
    """List benchmarks, protocols, methods and feature extractors."""
    from benchmark.catalog import (
        BENCHMARK_SUMMARIES,
        EXTRACTOR_SUMMARIES,
        METHOD_SUMMARIES,
        SELECTION_RULE_NAMES,
    )
    from benchmark.recipes import RECIPES

    sections = {
        "benchmarks": sorted(BENCHMARK_SUMMARIES.items()),
        "protocols": [(name, p.summary) for name, p in PROTOCOLS.items()],
        "methods": sorted(METHOD_SUMMARIES.items()),
        "feature extractors": sorted(EXTRACTOR_SUMMARIES.items()),
        "recipes": [
            (name, f"{r.backbone}, {r.epochs} epochs, batch {r.batch_size}, lr {r.lr}, momentum {r.momentum}")
            for name, r in RECIPES
        ],
        "selection rules": [(name, "") for name in SELECTION_RULE_NAMES],
    }
    for title, items in sections.items():
        click.echo(f"{title}:")
        for name, summary in items:
            click.echo(f"  {name:<20} {summary}".rstrip())


@main.command("build-splits")
@BENCHMARK
@click.option(
    "--data-root", type=click.Path(path_type=Path), help="Folder with the raw data (default: found)."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output folder [default: <manifests>/<benchmark>]."
)
@MANIFESTS
@click.option("--seed", type=int, default=25, show_default=True, help="Seed of clustering and every draw.")
@click.option(
    "--extractor",
    help="Feature extractor (`glt-bench list`, or torchvision:<arch>) [default: the benchmark's own].",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    help="state_dict file for a torchvision:<arch> extractor [default: torchvision's default weights].",
)
@click.option(
    "--num-clusters", type=int, default=6, show_default=True, help="K-means K per class (multiple of 3)."
)
@click.option(
    "--profile", help="Class-count profile: exp, pareto, exp:N_MAX:RATIO, pareto:A:SIGMA:N_MIN:N_MAX."
)
@click.option(
    "--counts-file", type=click.Path(path_type=Path), help="Class-count profile: one count per line."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Feature cache [default: $GLT_BENCH_CACHE or ~/.cache/glt-bench].",
)
@click.option("--device", type=click.Choice(["cuda", "cpu"]), help="Extractor device [default: cuda if any].")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Decoding and CPU clustering processes [default: one per CPU]; the manifest does not depend on it.",
)
@click.option(
    "--test-size",
    type=click.IntRange(min=1),
    help="Test-GBL images per class and attribute (imagenet-glt 20; imagefolder-glt scaled).",
)
@click.option(
    "--val-size",
    type=click.IntRange(min=1),
    help="Val images per class and attribute (imagenet-glt 10; imagefolder-glt scaled).",
)
@click.option("--name", help="Benchmark name of an imagefolder-glt build (run it with --benchmark NAME).")
@click.option(
    "--features",
    type=click.Path(path_type=Path),
    help="Precomputed features (.npz, or .parquet keyed by path) instead of extracting them.",
)
@click.option("--coco-root", type=click.Path(path_type=Path), help="COCO 2014 folder (mscoco-glt).")
@click.option("--attributes", type=click.Path(path_type=Path), help="COCO-Attributes file (mscoco-glt).")
@click.option("--trust-pickle", is_flag=True, help="Allow loading the COCO-Attributes pickle (mscoco-glt).")
@click.option(
    "--export-crops", type=click.Path(path_type=Path), help="Also write object crops here (mscoco-glt)."
)
@click.pass_context
def build_splits_cmd(ctx: click.Context, benchmark, out, manifest_dir, **options) -> None:
    """Build a benchmark's split manifests from raw data; save and print a summary."""
    from benchmark.benchmarks import BENCHMARKS
    from benchmark.summary import SUMMARY_TEXT

    started = time.perf_counter()
    definition = BENCHMARKS.get(benchmark)
    given = {
        name: value
        for name, value in options.items()
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    if "profile" in given and "counts_file" in given:
        raise UserError("--profile and --counts-file exclude each other; give one")
    accepted = inspect.signature(definition.build).parameters
    for name in given:
        if name not in accepted:
            raise UserError(f"--{name.replace('_', '-')} does not apply to {benchmark}")
    out = out or manifest_dir / given.get("name", benchmark)
    manifest = definition.build(out, **given)
    click.echo((manifest.root / SUMMARY_TEXT).read_text(encoding="utf-8"), nl=False)
    click.echo(f"manifest {manifest.root}  sha256 {manifest.content_hash}")
    click.echo(f"built in {time.perf_counter() - started:.1f} s")


@main.command("doctor")
@BENCHMARK
@click.option("--data-root", type=click.Path(path_type=Path), help="ILSVRC-2012 folder (imagenet-glt).")
@click.option("--coco-root", type=click.Path(path_type=Path), help="COCO 2014 folder (mscoco-glt).")
@click.option("--attributes", type=click.Path(path_type=Path), help="COCO-Attributes file (mscoco-glt).")
def doctor_cmd(benchmark, data_root, coco_root, attributes) -> None:
    """Say in seconds what a source folder holds and whether it is the release a benchmark expects."""
    from splits.doctor import doctor_imagenet, doctor_mscoco

    if benchmark in ("imagenet-glt", "imagefolder-glt"):
        if data_root is None:
            raise UserError(f"doctor --benchmark {benchmark} needs --data-root DIR")
        lines = doctor_imagenet(data_root)
        if benchmark == "imagefolder-glt":  # any classes and counts: only the folder problems matter
            lines = [line for line in lines if "ILSVRC" not in line and "WordNet" not in line]
    elif benchmark == "mscoco-glt":
        lines = doctor_mscoco(coco_root, attributes)
    else:
        raise UserError(
            f"doctor checks imagenet-glt, imagefolder-glt and mscoco-glt sources, not {benchmark}"
        )
    for line in lines:
        click.echo(line)
    if any(line.startswith("error:") for line in lines):
        raise click.exceptions.Exit(1)


@main.command("run")
@BENCHMARK
@click.option("--method", default="ce", show_default=True, help="Registered method name.")
@click.option(
    "--protocol",
    "protocols",
    type=click.Choice([*PROTOCOLS, "all"]),
    multiple=True,
    default=("all",),
    show_default=True,
    help="Protocol(s) to answer; repeatable.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--recipe", help="Training recipe (default: the benchmark's own; see `glt-bench list`).")
@click.option("--epochs", type=int, help="Override the recipe's epoch count.")
@click.option(
    "--device",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="auto: CUDA when a GPU is visible, else the CPU.",
)
@click.option(
    "--precision",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    help="auto: bf16 autocast on CUDA, fp32 on the CPU.",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the backbone.")
@click.option(
    "--gpus",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Data-parallel GPUs (launches torchrun).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads of this process [default: torch's, usually one per core]; CPU results depend on it.",
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a method hyperparameter."
)
@click.option("--selection", default="val_acc", show_default=True, help="Model-selection rule on Val.")
@click.option(
    "--from",
    "from_run",
    type=click.Path(path_type=Path),
    help="A finished run folder whose weights replace the method's first stage (cRT, LWS, tau-norm).",
)
@click.option(
    "--data-root", type=click.Path(path_type=Path), help="Folder with the raw data (default: found)."
)
@MANIFESTS
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last epoch checkpoint.")
@click.option("--force", is_flag=True, help="Run again even if a record for this config exists.")
@click.option(
    "--allow-thread-change",
    is_flag=True,
    help="Let --resume continue a CPU checkpoint written under another thread count.",
)
@click.option(
    "--scores/--no-scores",
    default=True,
    show_default=True,
    help="Write each test sample's class probabilities into the predictions files.",
)
def run_cmd(
    benchmark,
    method,
    protocols,
    seed,
    recipe,
    epochs,
    device,
    precision,
    compile_,
    gpus,
    threads,
    overrides,
    selection,
    from_run,
    data_root,
    manifest_dir,
    out,
    resume,
    force,
    allow_thread_change,
    scores,
) -> None:
    """Train a method, select on Val, predict the test splits, score and write run records."""
    import torch

    from baselines.base import METHODS, parse_overrides
    from benchmark.runner import Compute, run

    if threads is not None:
        torch.set_num_threads(threads)
    if gpus > 1 and "WORLD_SIZE" not in os.environ:
        if device == "cpu":
            raise UserError("--gpus needs --device cuda; for CPU processes launch torchrun yourself")
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible < gpus:
            raise UserError(
                f"--gpus {gpus} needs {gpus} CUDA GPUs but {visible} are visible; "
                "pass --gpus with at most that many, or run on a machine with GPUs"
            )
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}"]
        sys.exit(subprocess.run([*launcher, "-m", "benchmark.cli", *sys.argv[1:]], check=False).returncode)
    started = time.perf_counter()
    names = list(PROTOCOLS) if "all" in protocols else sorted(set(protocols))
    paths = run(
        benchmark=benchmark,
        method=method,
        protocols=names,
        manifest_dir=manifest_dir,
        out=out,
        seed=seed,
        epochs=epochs,
        recipe=recipe,
        compute=Compute(device, precision, compile_),
        data_root=data_root,
        overrides=parse_overrides(list(overrides), METHODS.get(method)),
        selection_rule=selection,
        from_run=from_run,
        resume=resume,
        force=force,
        allow_thread_change=allow_thread_change,
        scores=scores,
    )
    for path in paths:
        record = json.loads(path.read_text(encoding="utf-8"))
        for result in record["results"]:
            click.echo(f"{record['method']:<12} {result['protocol']:<4} {_brief(result['metrics'])}")
            where = path.parent / result["predictions"]
            click.echo(f"  predictions for {result['protocol']} ({result['split']}): {where}")
    if paths:
        click.echo(f"records in {out}  ({time.perf_counter() - started:.1f} s)")


def _brief(metrics: dict) -> str:
    """The leaderboard's headline columns of one metrics dict, in percent."""
    from leaderboard.tables import COLUMNS

    keys = [key for key, _ in COLUMNS if not key.startswith(("prec_", "acc_att"))]
    return "  ".join(f"{k} {100 * metrics[k]:.2f}" if metrics.get(k) is not None else f"{k} –" for k in keys)


@main.command("score")
@click.argument("predictions", type=click.Path(path_type=Path))
@BENCHMARK
@click.option("--protocol", required=True, type=click.Choice(list(PROTOCOLS)))
@MANIFESTS
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def score_cmd(predictions, benchmark, protocol, manifest_dir, as_json) -> None:
    """Validate a predictions file and score it against the held-out labels."""
    from leaderboard.scoring import score_predictions

    metrics = score_predictions(predictions, _manifest(manifest_dir, benchmark), protocol)
    if as_json:
        click.echo(json.dumps(metrics, indent=2, sort_keys=True))
        return
    for key, value in metrics.items():
        if isinstance(value, dict) or (isinstance(value, list) and not key.endswith("_ci95")):
            continue  # the bootstrap settings and per-class lists: see --json
        if value is None:
            shown = "–"
        elif key.endswith("_ci95"):
            shown = f"{100 * value[0]:.2f}–{100 * value[1]:.2f}"
        else:
            shown = f"{value}" if key == "n" else f"{100 * value:.2f}"
        click.echo(f"{key:<16} {shown:>8}")


@main.command("submit")
@click.argument("predictions", type=click.Path(path_type=Path))
@BENCHMARK
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), help="Protocol answered (needed).")
@click.option("--name", help="Leaderboard row label, ≤ 100 characters (needed); not a method's name.")
@click.option(
    "--train-split",
    type=click.Choice(["train_glt", "train_cbl"]),
    help="Split the model trained on (needed): train_glt for clt and glt, train_cbl for alt.",
)
@click.option("--method", help="The method you ran, as free text ≤ 100 characters [default: none].")
@click.option("--description", default="", help="One line about the submission, ≤ 2,000 characters.")
@click.option("--url", default="", help="http(s) link to the paper or code, ≤ 500 characters.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed the predictions came from.")
@MANIFESTS
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
def submit_cmd(
    predictions,
    benchmark,
    protocol,
    name,
    train_split,
    method,
    description,
    url,
    seed,
    manifest_dir,
    runs_dir,
):
    """Validate and score a predictions file, and store it as a leaderboard submission."""
    from leaderboard.submit import submit

    given = {"--protocol": protocol, "--name": name, "--train-split": train_split}
    missing = [option for option, value in given.items() if value is None]
    if missing:
        raise click.UsageError(
            f"submit needs --protocol, --name and --train-split; missing {', '.join(missing)}"
        )
    path = submit(
        predictions, _manifest(manifest_dir, benchmark), protocol, runs_dir, name=name,
        train_split=train_split, method=method, description=description, url=url, seed=seed,
    )  # fmt: skip
    record = json.loads(path.read_text(encoding="utf-8"))
    click.echo(f"{record['name']} {protocol}: {_brief(record['results'][0]['metrics'])}")
    for other in record["identical_to"]:
        click.echo(f"note: the same predictions file as {other}")
    click.echo(f"stored: {path}")


@main.command("report")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("report"), show_default=True)
@click.option(
    "--readme",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Also rewrite this file's `<!-- results:BENCHMARK -->` sections with the runs' summary tables.",
)
@click.option(
    "--manifests",
    "manifest_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Re-score every stored predictions file against these manifests: verification levels, "
    "significance against the Baseline, benchmark cards.",
)
def report_cmd(runs_dir, out, readme, manifest_dir) -> None:
    """Render the HTML leaderboard and its Markdown, CSV and LaTeX tables from the records."""
    from benchmark.atomic import ensure_writable_dir, write_text
    from leaderboard.exports import README_START, replace_section, results_summary
    from leaderboard.report import current_stamp, report_tables, write_report
    from leaderboard.store import clean_orphans, load_records
    from leaderboard.tables import usable_records

    if manifest_dir is not None and not manifest_dir.is_dir():
        raise UserError(f"--manifests {manifest_dir} is not a folder; pass the folder `build-splits` wrote")
    clean_orphans(runs_dir)
    records = usable_records(load_records(runs_dir))
    text = None
    if readme:  # checked before anything is written
        text = readme.read_text(encoding="utf-8")
        names = sorted({r["benchmark"] for r in records if README_START.format(r["benchmark"]) in text})
        if not names:
            raise UserError(f"{readme} has no `<!-- results:BENCHMARK -->` section for these records")
        tables = report_tables(records)
        for name in names:
            text = replace_section(text, name, results_summary(tables, name))
    ensure_writable_dir(out)  # before the re-scoring and rendering: a read-only --out is one line
    path = write_report(records, out, current_stamp(), runs_dir=runs_dir, manifest_dir=manifest_dir)
    click.echo(f"leaderboard of {len(records)} records: {path.resolve()}")
    if text is not None:
        write_text(readme, text)
        click.echo(f"results of {', '.join(names)} written into {readme}")


@main.command("verify")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@MANIFESTS
def verify_cmd(runs_dir, manifest_dir) -> None:
    """Re-score every stored predictions file and compare with its record; exit 1 on any drift."""
    from leaderboard.store import load_records
    from leaderboard.tables import usable_records
    from leaderboard.verify import EQUAL, Verifier

    records = usable_records(load_records(runs_dir))
    checks = Verifier(runs_dir, manifest_dir).check_all(records)
    for (path, protocol), check in sorted(checks.items()):
        click.echo(f"{check.status:<12} {protocol:<4} {path}: {check.message}")
    bad = sum(check.status != EQUAL for check in checks.values())
    click.echo(f"{len(checks) - bad} of {len(checks)} results re-scored equal to their records")
    if bad:
        raise click.ClickException(f"{bad} results drifted or could not be re-scored (listed above)")


@main.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@MANIFESTS
@click.option("--benchmark", help="The benchmark of A and B when a row label exists on several.")
def compare_cmd(a, b, runs_dir, manifest_dir, benchmark) -> None:
    """Paired significance test between two rows (record folders or leaderboard row labels)."""
    from leaderboard.compare import compare

    for line in compare(a, b, runs_dir, manifest_dir, benchmark):
        click.echo(line)


@main.command("convert-attributes")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--trust-pickle", is_flag=True, help="Allow loading SOURCE, a Python pickle you trust.")
def convert_attributes_cmd(source, target, trust_pickle) -> None:
    """Convert the COCO-Attributes pickle once into Parquet, which mscoco-glt reads without unpickling."""
    from splits.mscoco import convert_attributes

    rows = convert_attributes(source, target, trust_pickle=trust_pickle)
    click.echo(f"{rows} attributed instances written to {target}")


def _sweep_options(command):
    """The options `sweep` and `status` share: which runs the sweep is, and where they live."""
    options = [
        click.argument("sweep_file", type=click.Path(path_type=Path, exists=True, dir_okay=False)),
        click.option(
            "--seeds", default="0,1,2", show_default=True, help="Seeds of every line: 0,1,2 or 0-4."
        ),
        click.option(
            "--benchmark", default="fashion-glt", show_default=True, help="Benchmark of lines without one."
        ),
        MANIFESTS,
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=Path("runs"),
            show_default=True,
            help="Records of every run, and the sweep's state in <out>/.sweep.",
        ),
        click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"])),
        click.option("--data-root", type=click.Path(path_type=Path), help="Raw data folder of every run."),
        click.option(
            "--gpus-per-job",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Data-parallel GPUs of each run (with --device cpu: CPU processes, gloo).",
        ),
        click.option(
            "--nodes-per-job",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Slurm nodes of each run (rendezvous at the first node).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _sweep_setup(sweep_file, seeds, benchmark, manifest_dir, out, device, data_root, gpus_per_job,
                 nodes_per_job, threads=1, retries=1):  # fmt: skip
    from benchmark.sweep import Options, expand, parse_seeds

    options = Options(
        out=out, manifest_dir=manifest_dir, benchmark=benchmark, device=device, data_root=data_root,
        gpus_per_job=gpus_per_job, nodes_per_job=nodes_per_job, threads=threads, retries=retries,
    )  # fmt: skip
    return expand(sweep_file, parse_seeds(seeds), options), options


@main.command("sweep")
@_sweep_options
@click.option("--launcher", type=click.Choice(["local", "slurm"]), default="local", show_default=True)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Local runs at a time."
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="CPU threads per process."
)
@click.option(
    "--retries", type=click.IntRange(min=0), default=1, show_default=True, help="Reruns of a crashed run."
)
@click.option("--partition", help="Slurm partition.")
@click.option("--time", "time_limit", default="3:00:00", show_default=True, help="Slurm time limit per job.")
@click.option(
    "--cpus-per-gpu", type=click.IntRange(min=1), default=4, show_default=True, help="Slurm CPUs per GPU."
)
@click.option("--mem", help="Slurm memory per node, e.g. 64G.")
@click.option("--account", help="Slurm account.")
@click.option("--qos", help="Slurm quality of service.")
@click.option(
    "--array-parallelism", type=click.IntRange(min=1), default=256, show_default=True,
    help="Most array jobs running at once.",
)  # fmt: skip
@click.option(
    "--slurm",
    "slurm_extra",
    multiple=True,
    metavar="KEY[=VALUE]",
    help="Any other sbatch option, e.g. constraint=a100.",
)
@click.option("--status", "show_status", is_flag=True, help="Print the sweep's status instead of submitting.")
@click.option("--dry-run", is_flag=True, help="Plan and count, start nothing.")
def sweep_cmd(sweep_file, seeds, benchmark, manifest_dir, out, device, data_root, gpus_per_job, nodes_per_job,
              launcher, jobs, threads, retries, partition, time_limit, cpus_per_gpu, mem, account, qos,
              array_parallelism, slurm_extra, show_status, dry_run) -> None:  # fmt: skip
    """Run every line of SWEEP_FILE × every seed, here or as one Slurm job array; skip finished runs."""
    from benchmark.sweep import SlurmOptions, format_status, status, submit

    entries, options = _sweep_setup(
        sweep_file, seeds, benchmark, manifest_dir, out, device, data_root, gpus_per_job, nodes_per_job,
        threads, retries,
    )  # fmt: skip
    if show_status:
        click.echo(format_status(status(entries, options)))
        return
    slurm = SlurmOptions(
        partition=partition, time=time_limit, cpus_per_gpu=cpus_per_gpu, mem=mem, account=account, qos=qos,
        array_parallelism=array_parallelism, extra=tuple(slurm_extra),
    )  # fmt: skip
    outcome = submit(entries, options, launcher, slurm=slurm, jobs=jobs, dry_run=dry_run, echo=click.echo)
    again = shlex.join(["glt-bench", *sys.argv[1:], "--status"])
    if outcome.failed:
        raise UserError(f"{outcome.failed} runs failed; `{again}` says why")
    if launcher == "slurm" and outcome.started:
        click.echo(f"job ids: {', '.join(outcome.started)}")
        click.echo(f"follow with: {again}")


@main.command("status")
@_sweep_options
def status_cmd(**kwargs) -> None:
    """Print where every run of a sweep stands: done, running, queued, failed or never started."""
    from benchmark.sweep import format_status, status

    entries, options = _sweep_setup(**kwargs)
    click.echo(format_status(status(entries, options)))


if __name__ == "__main__":  # `python -m benchmark.cli`, as torchrun launches it
    main()
