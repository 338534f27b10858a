"""The leaderboard is a pure function of the records: golden files of the page and its exports, the
aggregation rules, the paper's reported rows, provenance, escaping and deterministic plots."""

from __future__ import annotations

import base64
import copy
import csv
import hashlib
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from leaderboard.exports import latex_escape, markdown_escape, replace_section, results_summary
from leaderboard.plots import table_plots
from leaderboard.report import render_html, report_tables, write_report
from leaderboard.store import load_records
from leaderboard.tables import gpu_hours, leaderboard_tables

GOLDEN = Path(__file__).parent / "golden"
FILES = ("index.html", "leaderboard.md", "leaderboard.csv", "leaderboard.tex")


def tables_by_key(records: list[dict]) -> dict:
    return {(t.benchmark, t.protocol): t for t in report_tables(records)}


def test_rows_average_seeds_and_intervals_and_sort_by_accuracy(records, hostile_names):
    tables = tables_by_key(records)
    assert list(tables) == [(b, p) for b in ("fashion-glt", "imagenet-glt", "mscoco-glt")
                            for p in ("clt", "glt", "alt")]  # fmt: skip
    smoothed, plain = tables[("fashion-glt", "clt")].rows
    # Same method, another config: the hyperparameters that differ from the method's defaults tell.
    assert (smoothed.label, smoothed.seeds, plain.seeds) == ("ce label_smoothing=0.1", [0], [0, 1])
    assert plain.label == "ce"
    acc = plain.cells["acc"]
    assert acc.mean == pytest.approx(0.6) and acc.std == pytest.approx(0.1414213562)
    # The interval of a multi-seed row is the mean of the seeds' endpoints: [0.48, 0.53] and [0.68, 0.73].
    assert acc.ci95 == pytest.approx((0.58, 0.63))
    assert smoothed.cells["acc"].std is None and plain.cells["acc_many"].ci95 is None
    assert plain.per_class.train_counts == [1600, 400, 60, 15]
    accuracy = plain.per_class.accuracy
    assert accuracy[:3] == pytest.approx([0.8, 0.7, 0.5]) and accuracy[3] is None
    glt = tables[("fashion-glt", "glt")].rows
    assert [row.method for row in glt] == [hostile_names[0], "ce", hostile_names[1]]


def test_old_records_without_intervals_or_per_class_data_still_render(records, site: Path):
    (alt,) = tables_by_key(records)[("fashion-glt", "alt")].rows
    assert alt.cells["acc"].ci95 is None and alt.per_class is None
    html = site.joinpath("index.html").read_text()
    section = html.split("fashion-glt · ALT</h3>")[1].split("</section>")[0]
    assert section.count('<span class="ci">–</span>') == 3  # acc, prec, F1
    assert "Per-class accuracy" not in section


def test_a_row_averages_only_intervals_every_seed_has(make_record, make_metrics):
    rows = leaderboard_tables(
        [
            make_record("ce", 0, {"clt": make_metrics(0.5, 0.5)}),
            make_record("ce", 1, {"clt": make_metrics(0.7, 0.5, ci=False)}),
        ]
    )[0].rows
    assert rows[0].cells["acc"].mean == pytest.approx(0.6) and rows[0].cells["acc"].ci95 is None


def test_reported_rows_are_always_shown_and_merged_with_runs(records):
    alone = tables_by_key([])
    assert list(alone) == [(b, p) for b in ("imagenet-glt", "mscoco-glt") for p in ("clt", "glt", "alt")]
    assert all({r.kind for r in t.rows} == {"reported"} for t in alone.values())
    # ImageNet-GLT: 21 poster rows, 9 later methods (RISDA twice: the two papers conflict).
    assert [len(alone[("imagenet-glt", p)].rows) for p in ("clt", "glt", "alt")] == [31, 31, 21]
    baseline = next(r for r in alone[("imagenet-glt", "clt")].rows if r.method == "Baseline")
    assert (baseline.cells["acc"].mean, baseline.cells["prec"].mean) == pytest.approx((0.4252, 0.4792))
    assert baseline.cells["prec_few"].mean == pytest.approx(0.5665) and baseline.cells["f1"] is None
    ride = next(r for r in alone[("imagenet-glt", "glt")].rows if r.method == "RIDE + IFL")
    assert (ride.cells["acc_few"].mean, ride.cells["prec_few"].mean) == pytest.approx((0.2463, 0.4296))
    assert ride.seeds == [] and ride.provenance[0][0].text.startswith("Tang et al., ECCV 2022")
    assert any("priors permuted" in caveat for caveat in ride.caveats)

    merged = tables_by_key(records)[("imagenet-glt", "clt")].rows
    assert len(merged) == 32 and [r.kind for r in merged].count("run") == 1
    assert [r.method for r in merged if r.kind == "reported"].index("Baseline") == 29
    run = next(r for r in merged if r.kind == "run")
    assert run.rank == 1 and run.paper.label == "Baseline"
    assert (run.paper.acc, run.paper.prec) == pytest.approx((0.47 - 0.4252, 0.49 - 0.4792))


def test_gpu_hours_rule(records):
    assert gpu_hours(records[0]) == 0.0  # CPU
    assert gpu_hours(records[3]) == pytest.approx(2.0)  # compute.gpu_seconds 7200
    assert gpu_hours(records[6]) == pytest.approx(3.0)  # CUDA, 5400 s × 2 GPUs
    assert gpu_hours(records[4]) is None  # a submission has no compute block


def test_provenance_lists_every_record(records):
    plain = tables_by_key(records)[("fashion-glt", "clt")].rows[1]
    assert len(plain.provenance) == 2 and plain.paths[1] == "fashion-glt/ce/seed1-clt-glt/record.json"
    facts = {fact.label: fact.text for fact in plain.provenance[1]}
    assert facts == {
        "seed": "1",
        "hyperparameters": "{}",
        "device": "cpu",
        "images processed": "120,000",
        "GPU-hours": "0 (CPU)",
        "record": "fashion-glt/ce/seed1-clt-glt/record.json",
        "manifest sha256": "ab" * 32,
        "git SHA": "0123456789abcdef0123456789abcdef01234567",
        "predictions sha256": hashlib.sha256(b"ceNone1clt").hexdigest(),
    }
    submission = tables_by_key(records)[("fashion-glt", "glt")].rows[0].provenance[0]
    assert {f.label: f.link for f in submission}["url"] is False  # javascript: is never a link


def _digest_images(html: str) -> str:
    """The page with each embedded image replaced by its sha256: pinned bytes, a readable golden file."""
    return re.sub(
        r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)",
        lambda m: "data:image/svg+xml;sha256," + hashlib.sha256(m.group(1).encode()).hexdigest(),
        html,
    )


def test_report_files_match_the_golden_files(site: Path):
    for name in FILES:
        text = site.joinpath(name).read_text(encoding="utf-8")
        text = _digest_images(text) if name == "index.html" else text
        if os.environ.get("GLT_BENCH_UPDATE_GOLDEN"):
            GOLDEN.joinpath(name).write_text(text, encoding="utf-8")
        assert text == GOLDEN.joinpath(name).read_text(encoding="utf-8"), name
    assert sorted(p.name for p in site.iterdir()) == sorted(FILES)  # no temporary files left


def test_report_is_a_pure_function_of_the_records(records, site: Path, stamp):
    page = render_html(report_tables(records), stamp, records=len(records))
    assert page == site.joinpath("index.html").read_text()


def test_user_strings_are_escaped_in_the_page(site: Path):
    html = site.joinpath("index.html").read_text()
    assert html.count("<script") == 1 and "<script>(function" not in html  # only the page's own script
    assert html.index("<script>") > html.index("</table>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in html
    assert 'href="javascript:' not in html and "javascript:alert(1)</dd>" in html
    assert '<a href="https://example.org/paper" rel="noopener noreferrer">' in html


def test_content_security_policy_allows_exactly_the_inline_script_and_style(site: Path):
    html = site.joinpath("index.html").read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    for tag in ("script", "style"):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
    assert policy.startswith("default-src 'none'; img-src data:;")


def test_markdown_export_escapes_pipes_and_markup(site: Path):
    assert markdown_escape("a|b <i>_x_</i>\nnext") == r"a\|b \<i\>\_x\_\</i\> next"
    text = site.joinpath("leaderboard.md").read_text()
    for block in text.split("\n\n"):
        table_lines = [line for line in block.splitlines() if line.startswith("|")]
        if table_lines:  # every line of a table has the header's cells: a name never splits a cell
            counts = {len(re.findall(r"(?<!\\)\|", line)) for line in table_lines}
            assert len(counts) == 1, block[:200]


def test_latex_export_escapes_special_characters(site: Path, hostile_names):
    assert latex_escape(r"50% a_b & {c} ~ ^ \ $ # <x>|") == (
        r"50\% a\_b \& \{c\} \textasciitilde{} \textasciicircum{} \textbackslash{} \$ \# "
        r"\textless{}x\textgreater{}\textbar{}"
    )
    assert latex_escape(hostile_names[1]) in site.joinpath("leaderboard.tex").read_text()


def test_csv_export_round_trips_and_defuses_formulas(site: Path, hostile_names):
    rows = list(csv.DictReader(io.StringIO(site.joinpath("leaderboard.csv").read_text())))
    assert len(rows) == 7 + 31 + 31 + 21 + 3 * 22  # our rows + the reported rows of every table
    names = {row["method"] for row in rows}
    assert hostile_names[0] in names and "'" + hostile_names[1] in names
    plain = next(r for r in rows if r["protocol"] == "clt" and r["seeds"] == "0, 1")
    assert (plain["acc"], plain["acc_std"], plain["acc_ci95_lo"], plain["acc_ci95_hi"]) == (
        "60.00", "14.14", "58.00", "63.00",
    )  # fmt: skip
    alt = next(r for r in rows if r["protocol"] == "alt")
    assert alt["acc_ci95_lo"] == "" and alt["acc_std"] == ""


def test_plots_are_deterministic_parseable_svg(records):
    glt = tables_by_key(records)[("fashion-glt", "glt")]
    plots = table_plots(glt)
    assert [p.title for p in plots] == [
        "Per-class accuracy against training frequency",
        "Precision against accuracy",
        "Many / medium / few",
        "Attribute-wise accuracy",
    ]
    assert plots == table_plots(glt)
    for plot in plots:
        prefix, payload = plot.uri.split(",", 1)
        assert prefix == "data:image/svg+xml;base64"
        svg = base64.b64decode(payload)
        ET.fromstring(svg)  # hostile names stay well-formed XML
        assert b"<dc:date>" not in svg


def test_per_class_plot_of_many_classes_shows_count_bins(make_record, make_metrics):
    scored = make_metrics(0.5, 0.5)
    scored["train_count_per_class"] = list(range(1000, 0, -1))
    scored["acc_per_class"] = [c / 1000 for c in range(1000, 0, -1)]
    (table,) = leaderboard_tables([make_record("ce", 0, {"clt": scored})])
    svg = base64.b64decode(table_plots(table)[0].uri.split(",", 1)[1]).decode()
    assert "mean in 20 count bins" in svg and len(svg) < 40_000


def test_store_reads_records_and_skips_junk(records, tmp_path: Path, stamp):
    for i, rec in enumerate(records):
        (tmp_path / f"r{i}").mkdir()
        stored = {key: value for key, value in rec.items() if key != "_path"}
        (tmp_path / f"r{i}" / "record.json").write_text(json.dumps(stored))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "record.json").write_text("{not json")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "record.json").write_text("[1, 2]")
    loaded = load_records(tmp_path)
    assert [r["_path"] for r in loaded] == [f"r{i}/record.json" for i in range(len(records))]
    path = write_report(loaded, tmp_path / "site", stamp)
    assert path == tmp_path / "site" / "index.html" and "r3/record.json" in path.read_text()


def test_results_summary_spans_the_protocols_and_skips_submissions(records):
    text = results_summary(report_tables(records), "fashion-glt")
    header, rule, *rows = text.splitlines()
    assert (
        header.startswith("| Method | Seeds | Train imgs | CLT Rank | CLT Acc | CLT Prec |")
        and "ALT Worst-att acc" in header
    )
    assert rule.count("|") == header.count("|")
    labels = [row.split(" | ")[0].lstrip("| ") for row in rows]
    assert labels == ["ce", "ce label\\_smoothing=0.1"]  # GLT-accuracy order, then the rest; runs only
    # seeds of every protocol; images; CLT rank; mean ± std; the best of a column in bold; the shift
    assert "| 0, 1 | 0.12M | 2 | 60.00 ± 14.14 |" in rows[0] and "| 1 | **60.00** |" in rows[0]
    assert rows[0].endswith("| −15.00 | −10.00 | 0 | +1 |")
    assert "| 0 | 2.00M | 1 | **65.00** |" in rows[1]


def test_readme_section_is_replaced_between_its_markers():
    text = "intro\n<!-- results:fashion-glt -->\nold\n<!-- /results -->\noutro\n"
    assert replace_section(text, "fashion-glt", "new\n") == (
        "intro\n<!-- results:fashion-glt -->\nnew\n<!-- /results -->\noutro\n"
    )
    with pytest.raises(ValueError, match="results:mscoco-glt"):
        replace_section(text, "mscoco-glt", "new\n")


def test_a_transductive_run_says_so_in_its_provenance(records):
    rec = copy.deepcopy(records[0])
    rec["transductive"] = True
    rec["results"][0]["adaptation"] = {"aggregation_weights": [0.5, 0.3, 0.2]}
    row = tables_by_key([rec])[("fashion-glt", rec["results"][0]["protocol"])].rows[0]
    facts = {fact.label: fact.text for fact in row.provenance[0]}
    assert facts["transductive"].endswith('{"aggregation_weights": [0.5, 0.3, 0.2]}')
