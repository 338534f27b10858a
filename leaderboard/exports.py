"""The leaderboard tables as Markdown, CSV and LaTeX: the numbers the page shows, in percent.

Each format starts with the overview of every benchmark (the same `tables.Overview` the page and the
README's results table are made from), then the per-protocol tables.

Every string that comes from a record is escaped for its format: Markdown gets backslash escapes for
the characters that could start markup (`|` included, so a name cannot split a table cell); LaTeX
gets its ten special characters (and `<`, `>`, `|`) replaced by commands, every row starts with `{}`
(so a name starting with `[` is never read as the optional argument of `\\` or `\\midrule`), and the
text is transliterated to ASCII (accents dropped, a few symbols as commands, anything else as
`(U+XXXX)`), so the file compiles with pdflatex whatever the names; CSV is written by the `csv`
module with every text field quoted, line breaks folded into spaces and a leading `'` before a text
that a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from decimal import Decimal

from benchmark.protocols import PROTOCOLS
from leaderboard.tables import (
    CI_KEYS,
    COLUMNS,
    OVERVIEW_COLUMNS,
    Cell,
    Overview,
    OverviewRow,
    Row,
    Table,
    millions,
    overviews,
    pct,
    signed_pct,
)

LEGEND = (
    "mean ± std over seeds, then the bootstrap 95% interval over test samples in brackets; "
    "Train imgs = training images processed, millions, mean over seeds"
)
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")
MARKDOWN_SPECIAL_ESCAPED = re.compile(r"\\([\\`*_\[\]<>|&~])")
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
LATEX_UNICODE = {
    "→": r"$\rightarrow$",
    "←": r"$\leftarrow$",
    "±": r"$\pm$",
    "−": "-",
    "–": "--",
    "—": "---",
    "·": r"$\cdot$",
    "×": r"$\times$",
    "Δ": r"$\Delta$",
    "…": r"\ldots{}",
    "ß": "ss",
    "æ": "ae",
    "Æ": "AE",
    "ø": "o",
    "Ø": "O",
    "ł": "l",
    "Ł": "L",
    "œ": "oe",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "⚠": "(!)",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def markdown_escape(text: str) -> str:
    return MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(text))


def _latex_char(char: str) -> str:
    if char in LATEX_SPECIAL:
        return LATEX_SPECIAL[char]
    if char.isascii():
        return char if char.isprintable() else " "
    if char in LATEX_UNICODE:
        return LATEX_UNICODE[char]
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and base.isascii() and base.isprintable():
        return "".join(LATEX_SPECIAL.get(c, c) for c in base)
    return f"(U+{ord(char):04X})"


def latex_escape(text: str) -> str:
    """Text as pdflatex-safe ASCII: special characters as commands, non-ASCII transliterated."""
    return "".join(_latex_char(char) for char in _one_line(text))


def csv_text(text: str) -> str:
    """A record's string as one CSV line's field that no spreadsheet evaluates: line breaks folded into
    spaces, and a `'` before a leading formula character."""
    text = _one_line(text)
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


def _rank_change(value: int | None) -> str:
    return "–" if value is None else ("0" if value == 0 else f"{value:+d}".replace("-", "−"))


def _overview_header(overview: Overview, *, level: bool = True) -> list[str]:
    header = ["Method", *(["Level"] if level else []), "Seeds", "Train imgs"]
    for protocol in overview.protocols:
        header += [
            f"{protocol.upper()} Rank",
            *(f"{protocol.upper()} {label}" for _, label in OVERVIEW_COLUMNS),
        ]
    return [*header, "GLT−CLT acc", "GLT−CLT prec", "Rank CLT→GLT", "Rank GLT→ALT"]


def _overview_cells(overview: Overview, line: OverviewRow, *, level: bool = True) -> list[str]:
    """One overview line's cells as Markdown text; Δ paper after accuracy and precision."""
    seeds = sorted({seed for row in line.rows.values() for seed in row.seeds})
    cells = [
        markdown_escape(line.label),
        *([line.first.level] if level else []),
        ", ".join(map(str, seeds)) or "–",
        millions(line.first.train_images),
    ]
    for protocol in overview.protocols:
        row = line.rows.get(protocol)
        cells.append("–" if row is None or row.rank is None else str(row.rank))
        for key, _ in OVERVIEW_COLUMNS:
            cell = row.cells[key] if row else None
            text = _cell(cell and Cell(cell.mean, cell.std, None), plus_minus="±", missing="–", ci="")
            if cell is not None and cell.mean == overview.best(protocol, key):
                text = f"**{text}**"
            if row is not None and row.paper is not None and key in ("acc", "prec"):
                delta = getattr(row.paper, key)
                text += "" if delta is None else f" (Δ paper {signed_pct(delta)})"
            cells.append(text)
    cells += [signed_pct(line.shift("acc")), signed_pct(line.shift("prec"))]
    return [
        *cells,
        _rank_change(line.rank_change("clt", "glt")),
        _rank_change(line.rank_change("glt", "alt")),
    ]


def overview_markdown(overview: Overview, kinds: tuple[str, ...] = ("run", "submission", "reported")) -> str:
    """One Markdown table of a benchmark's configurations across the protocols: rank, Acc, Prec, Few acc
    and Worst-att acc per protocol (mean ± std over seeds, best in bold), the GLT − CLT shift and the
    rank changes; a reported row follows the reproduction it is paired with."""
    level = kinds != ("run",)
    header = _overview_header(overview, level=level)
    lines = ["| " + " | ".join(header) + " |", "|---|" + ("---|" if level else "") + "---|"
             + "---:|" * (len(header) - 2 - level)]  # fmt: skip
    for group in overview.groups:
        for line in group:
            if line.kind in kinds:
                lines.append("| " + " | ".join(_overview_cells(overview, line, level=level)) + " |")
    return "\n".join(lines) + "\n"


def to_markdown(tables: list[Table]) -> str:
    lines = ["# glt-bench leaderboard", "", f"Percentages: {LEGEND}; – = not available."]
    for overview in overviews(tables):
        lines += [
            "",
            f"## {markdown_escape(overview.benchmark)} · overview",
            "",
            overview_markdown(overview).rstrip(),
        ]
    for table in tables:
        header = ["Method", "Kind", "Level", "Rank", "Seeds", "Train imgs", *(label for _, label in COLUMNS)]
        lines += ["", f"## {markdown_escape(_title(table))}", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 5 + "---:|" * (len(COLUMNS) + 1)]
        for row in table.rows:
            rank = "–" if row.rank is None else str(row.rank)
            cells = [markdown_escape(row.label), row.kind, row.level, rank, _seeds(row) or "–"]
            cells.append(millions(row.train_images))
            cells += [_cell(row.cells[key], plus_minus="±", missing="–", ci="{}") for key, _ in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> Decimal | str:
    """A percentage as a CSV number (unquoted), or an empty field."""
    return "" if value is None else Decimal(pct(value))


def _csv_numbers(cell: Cell | None, *, with_ci: bool) -> list[Decimal | str]:
    """Mean, std (and the interval's ends): empty fields where a value is missing."""
    width = 4 if with_ci else 2
    if cell is None:
        return [""] * width
    return [_number(value) for value in [cell.mean, cell.std, *(cell.ci95 or (None, None))][:width]]


CSV_EXTRA = ("ece", "nll", "brier")


def to_csv(tables: list[Table]) -> str:
    """One line per row and protocol; per metric its mean and std, and for acc/prec/F1 the interval's
    ends; then the row's rank, Δ to the paper, the test against the Baseline and its calibration."""
    header = ["benchmark", "protocol", "method", "kind", "level", "identity", "rank", "seeds", "train_images"]
    for key, _ in COLUMNS:
        header += [key, f"{key}_std"] + ([f"{key}_ci95_lo", f"{key}_ci95_hi"] if key in CI_KEYS else [])
    header += [
        "paper_row",
        "delta_paper_acc",
        "delta_paper_prec",
        "vs_baseline_acc_diff",
        "vs_baseline_p_holm",
    ]
    header += [*CSV_EXTRA, "flags"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(header)
    for table in tables:
        for row in table.rows:
            line: list = [csv_text(table.benchmark), csv_text(table.protocol), csv_text(row.label), row.kind,
                          row.level, csv_text(row.identity or ""), "" if row.rank is None else row.rank,
                          _seeds(row)]  # fmt: skip
            line.append("" if row.train_images is None else Decimal(f"{row.train_images:.0f}"))
            for key, _ in COLUMNS:
                line += _csv_numbers(row.cells[key], with_ci=key in CI_KEYS)
            paper, versus = row.paper, row.vs_baseline
            line += [
                csv_text(paper.label) if paper else "",
                _number(paper and paper.acc),
                _number(paper and paper.prec),
            ]
            line += [
                _number(versus and versus.diff),
                "" if versus is None else Decimal(f"{versus.p_holm:.4g}"),
            ]
            ece, nll, brier = (row.cells.get(key) for key in CSV_EXTRA)
            line.append(_number(ece and ece.mean))  # a fraction, in percent
            line += ["" if c is None else Decimal(f"{c.mean:.4f}") for c in (nll, brier)]
            line.append(csv_text("; ".join(row.flags)))
            writer.writerow(line)
    return buffer.getvalue()


def _latex_row(cells: list[str]) -> str:
    """A tabular row that starts with `{}`, so a cell starting with `[` is never an optional argument."""
    return "{}" + " & ".join(cells) + r" \\"


def _latex_table(caption: str, label: str, header: list[str], spec: str, rows: list[list[str]]) -> list[str]:
    return [
        "",
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:glt-bench-{label}}}",
        r"\resizebox{\textwidth}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        _latex_row(header),
        r"\midrule",
        *(_latex_row(cells) for cells in rows),
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table}",
    ]


def to_latex(tables: list[Table]) -> str:
    """A booktabs overview per benchmark, then a `table` per benchmark and protocol, ready to `\\input`
    (needs booktabs and graphicx; pure ASCII, so any pdflatex set-up compiles it)."""
    lines = [
        "% glt-bench leaderboard: an overview per benchmark, then a table per benchmark and protocol;",
        "% needs \\usepackage{booktabs,graphicx}. Names are transliterated to ASCII.",
        "% Percentages: " + latex_escape(LEGEND).replace(r"$\pm$", "+/-") + "; -- = not available.",
    ]
    for overview in overviews(tables):
        header = [latex_escape(h) for h in _overview_header(overview, level=True)]
        rows = []
        for group in overview.groups:
            for line in group:
                cells = [c.replace("**", "") for c in _overview_cells(overview, line)]
                rows.append([latex_escape(markdown_unescape(c)) for c in cells])
        caption = latex_escape(
            f"{overview.benchmark}: overview (rank, Acc, Prec, Few acc, Worst-att acc per protocol)"
        )
        lines += _latex_table(caption, overview.anchor, header, "lll" + "r" * (len(header) - 3), rows)
    for table in tables:
        caption = latex_escape(_title(table).replace(" ·", ","))
        if table.protocol in PROTOCOLS:
            caption += ": " + latex_escape(PROTOCOLS[table.protocol].summary)
        header = ["Method", "Kind", "Seeds", "Train imgs", *(label for _, label in COLUMNS)]
        rows = []
        for row in table.rows:
            cells = [latex_escape(row.label), row.kind, _seeds(row) or "--", millions(row.train_images, "--")]
            cells += [_cell(row.cells[key], plus_minus=r"$\pm$", missing="--", ci=r"{{\scriptsize {}}}")
                      for key, _ in COLUMNS]  # fmt: skip
            rows.append(cells)
        lines += _latex_table(caption, table.anchor, header, f"lll*{{{len(COLUMNS) + 1}}}{{r}}", rows)
    return "\n".join(lines) + "\n"


def markdown_unescape(text: str) -> str:
    """Undo `markdown_escape`'s backslashes (the overview's cells are built as Markdown)."""
    return MARKDOWN_SPECIAL_ESCAPED.sub(r"\1", text)


README_START, README_END = "<!-- results:{} -->", "<!-- /results -->"


def results_summary(tables: list[Table], benchmark: str) -> str:
    """The README's results table of a benchmark: its overview restricted to the runs (no level column)."""
    for overview in overviews(tables):
        if overview.benchmark == benchmark:
            return overview_markdown(overview, kinds=("run",))
    return ""


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with what lies between the markers `<!-- results:NAME -->` and `<!-- /results -->`
    replaced by `body`; ValueError when the markers are missing."""
    start, end = README_START.format(name), README_END
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"no '{start}' … '{end}' section")
    return f"{head}{start}\n{body}{end}{rest.split(end, 1)[1]}"
