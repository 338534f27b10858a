"""The leaderboard tables as Markdown, CSV and LaTeX: the numbers the page shows, in percent.

Every string that comes from a record is escaped for its format: Markdown gets backslash escapes for
the characters that could start markup (`|` included, so a name cannot split a table cell); LaTeX
gets its ten special characters (and `<`, `>`, `|`) replaced by commands; CSV is written by the
`csv` module, with a leading `'` before a text that a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
import re

from benchmark.protocols import PROTOCOLS
from leaderboard.tables import CI_KEYS, COLUMNS, Cell, Row, Table, millions, pct

LEGEND = (
    "mean ± std over seeds, then the bootstrap 95% interval over test samples in brackets; "
    "Train imgs = training images processed, millions, mean over seeds"
)
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")
LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def markdown_escape(text: str) -> str:
    return MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(text))


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(char, char) for char in _one_line(text))


def csv_text(text: str) -> str:
    """A record's string as a CSV field that no spreadsheet evaluates."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _seeds(row: Row) -> str:
    return ", ".join(str(seed) for seed in row.seeds)


def _cell(cell: Cell | None, *, plus_minus: str, missing: str, ci: str) -> str:
    if cell is None:
        return missing
    text = pct(cell.mean)
    if cell.std is not None:
        text += f" {plus_minus} {pct(cell.std)}"
    if cell.ci95 is not None:
        text += " " + ci.format(f"[{pct(cell.ci95[0])}, {pct(cell.ci95[1])}]")
    return text


def _title(table: Table) -> str:
    return f"{table.benchmark} · {table.protocol.upper()}"


def to_markdown(tables: list[Table]) -> str:
    lines = ["# glt-bench leaderboard", "", f"Percentages: {LEGEND}; – = not available."]
    for table in tables:
        header = ["Method", "Kind", "Seeds", "Train imgs", *(label for _, label in COLUMNS)]
        lines += ["", f"## {markdown_escape(_title(table))}", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(COLUMNS) + 1)]
        for row in table.rows:
            cells = [markdown_escape(row.label), row.kind, _seeds(row) or "–", millions(row.train_images)]
            cells += [_cell(row.cells[key], plus_minus="±", missing="–", ci="{}") for key, _ in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_numbers(cell: Cell | None, *, with_ci: bool) -> list[str]:
    """Mean, std (and the interval's ends): empty fields where a value is missing."""
    width = 4 if with_ci else 2
    if cell is None:
        return [""] * width
    numbers = [cell.mean, cell.std, *(cell.ci95 or (None, None))][:width]
    return ["" if value is None else pct(value) for value in numbers]


def to_csv(tables: list[Table]) -> str:
    """One line per row; per metric its mean and std, and for acc/prec/F1 the interval's ends."""
    header = ["benchmark", "protocol", "method", "kind", "seeds", "train_images"]
    for key, _ in COLUMNS:
        header += [key, f"{key}_std"] + ([f"{key}_ci95_lo", f"{key}_ci95_hi"] if key in CI_KEYS else [])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for table in tables:
        for row in table.rows:
            line = [csv_text(table.benchmark), table.protocol, csv_text(row.label), row.kind, _seeds(row)]
            line.append("" if row.train_images is None else f"{row.train_images:.0f}")
            for key, _ in COLUMNS:
                line += _csv_numbers(row.cells[key], with_ci=key in CI_KEYS)
            writer.writerow(line)
    return buffer.getvalue()


def to_latex(tables: list[Table]) -> str:
    """One booktabs `table` per benchmark and protocol, ready to `\\input`."""
    lines = [
        "% glt-bench leaderboard, a table per benchmark and protocol; needs \\usepackage{booktabs,graphicx}.",
        f"% Percentages: {LEGEND}; -- = not available.".replace("±", "+/-"),
    ]
    for table in tables:
        caption = latex_escape(_title(table).replace(" ·", ","))
        if table.protocol in PROTOCOLS:
            caption += ": " + latex_escape(PROTOCOLS[table.protocol].summary).replace("→", r"$\rightarrow$")
        header = ["Method", "Kind", "Seeds", "Train imgs", *(label for _, label in COLUMNS)]
        lines += [
            "",
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{{caption}}}",
            rf"\label{{tab:glt-bench-{table.anchor}}}",
            r"\resizebox{\textwidth}{!}{%",
            rf"\begin{{tabular}}{{lll*{{{len(COLUMNS) + 1}}}{{r}}}}",
            r"\toprule",
            " & ".join(header) + r" \\",
            r"\midrule",
        ]
        for row in table.rows:
            cells = [latex_escape(row.label), row.kind, _seeds(row) or "--", millions(row.train_images, "--")]
            cells += [_cell(row.cells[key], plus_minus=r"$\pm$", missing="--", ci=r"{{\scriptsize {}}}")
                      for key, _ in COLUMNS]  # fmt: skip
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


SUMMARY_COLUMNS = (
    ("acc", "Acc"),
    ("prec", "Prec"),
    ("acc_few", "Few acc"),
    ("acc_worst_att", "Worst-att acc"),
)
README_START, README_END = "<!-- results:{} -->", "<!-- /results -->"


def results_summary(tables: list[Table], benchmark: str) -> str:
    """One Markdown table of a benchmark's runs across the three protocols (mean ± std over seeds),
    rows in CLT-accuracy order: the README's results table."""
    by_protocol = {t.protocol: t for t in tables if t.benchmark == benchmark}
    protocols = [p for p in PROTOCOLS if p in by_protocol]
    rows: dict[str, dict[str, Row]] = {}
    for protocol in protocols:
        for row in by_protocol[protocol].rows:
            if row.kind == "run":
                rows.setdefault(row.label, {})[protocol] = row
    header = ["Method", "Seeds", "Train imgs"]
    header += [f"{p.upper()} {label}" for p in protocols for _, label in SUMMARY_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for label, answered in rows.items():
        seeds = sorted({seed for row in answered.values() for seed in row.seeds})
        first = next(iter(answered.values()))  # the Train-GLT model's when CLT or GLT is answered
        cells = [markdown_escape(label), ", ".join(map(str, seeds)), millions(first.train_images)]
        for protocol in protocols:
            row = answered.get(protocol)
            for key, _ in SUMMARY_COLUMNS:
                cell = row.cells[key] if row else None
                cells.append(
                    _cell(cell and Cell(cell.mean, cell.std, None), plus_minus="±", missing="–", ci="")
                )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with what lies between the markers `<!-- results:NAME -->` and `<!-- /results -->`
    replaced by `body`; ValueError when the markers are missing."""
    start, end = README_START.format(name), README_END
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"no '{start}' … '{end}' section")
    return f"{head}{start}\n{body}{end}{rest.split(end, 1)[1]}"
