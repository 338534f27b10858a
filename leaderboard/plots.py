"""The report's figures (matplotlib), returned as SVG data URIs to embed in the page.

Figures are drawn on `matplotlib.figure.Figure` directly (no pyplot, so no GUI backend and no global
figure state) and saved as SVG with a fixed hash salt and no date: the same tables give byte-identical
images. Text stays text (`svg.fonttype: none`, small files) with math parsing off, so a `$` in a name
is just a character; an image is embedded as `<img src="data:…">`, where nothing in it can run.
Margins are fixed in inches rather than computed by a layout engine, which would draw each figure
several times.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from leaderboard.tables import Row, Table

# Okabe–Ito: distinguishable under protanopia, deuteranopia and tritanopia (orange/blue first).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
STYLE = {
    "svg.hashsalt": "glt-bench",
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": 10,
    "legend.fontsize": 9,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
MARKERS = {"run": "o", "submission": "s", "reported": "^"}
LAYER = {"reported": 1, "submission": 2, "run": 3}  # runs drawn on top: never hidden by a submission
PER_CLASS_ROWS = 6  # series in the per-class plot: the best rows that have per-class data
MAX_CLASS_POINTS = 100  # more classes than this are shown as mean accuracy per training-count bin
COUNT_BINS = 20
LABEL_CHARS = 32  # longer row labels are shortened in figures (the tables show them whole)


@dataclass(frozen=True)
class Plot:
    title: str
    uri: str


def _legend_text(text: str) -> str:
    """matplotlib leaves labels starting with `_` out of legends; a zero-width space keeps them."""
    return "\u200b" + text if text.startswith("_") else text


def _short(text: str) -> str:
    """A figure label: at most LABEL_CHARS characters, only characters the fonts can show (others: ?)."""
    text = "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else "?" for c in str(text))
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _figure(width: float, height: float, *, left: float = 0.6, bottom: float = 0.5) -> Figure:
    """A figure of `width` × `height` inches with fixed margins (`left`, `bottom` in inches)."""
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(left=left / width, right=1 - 0.15 / width, bottom=bottom / height,
                           top=1 - 0.3 / height, wspace=0.1)  # fmt: skip
    return figure


def _svg_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "glt-bench"})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _value(row: Row, key: str) -> float:
    cell = row.cells[key]
    return np.nan if cell is None else 100 * cell.mean


def _count_bins(counts: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean class accuracy in log-spaced bins of training count (geometric-mean count per bin)."""
    bins = np.digitize(counts, np.geomspace(counts.min(), counts.max() + 1, COUNT_BINS + 1)[1:-1])
    x, y = [], []
    for b in range(COUNT_BINS):
        members = (bins == b) & ~np.isnan(accuracy)
        if members.any():
            x.append(np.exp(np.log(counts[members]).mean()))
            y.append(accuracy[members].mean())
    return np.array(x), np.array(y)


def per_class_figure(table: Table) -> Figure | None:
    """Per-class accuracy against the class's training count (log scale); binned for many classes."""
    rows = [row for row in table.rows if row.per_class is not None][:PER_CLASS_ROWS]
    if not rows:
        return None
    axes = (figure := _figure(6, 3.4)).add_subplot()
    positive = bool((np.array(rows[0].per_class.train_counts) > 0).all())
    binned = positive and len(rows[0].per_class.train_counts) > MAX_CLASS_POINTS
    for row in rows:
        counts = np.array(row.per_class.train_counts, dtype=float)
        accuracy = np.array([np.nan if a is None else 100 * a for a in row.per_class.accuracy])
        marker, label = MARKERS.get(row.kind, "o"), _legend_text(_short(row.label))
        layer = LAYER.get(row.kind, 3)
        if binned:
            axes.plot(*_count_bins(counts, accuracy), marker=marker, ms=4, label=label, zorder=layer)
        else:
            axes.scatter(counts, accuracy, s=16, alpha=0.8, marker=marker, label=label, zorder=layer)
    if positive:
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_formatter(NullFormatter())
    ylabel = "class accuracy (%" + (f", mean in {COUNT_BINS} count bins)" if binned else ")")
    axes.set(xlabel="training images of the class", ylabel=ylabel, ylim=(-3, 103))
    axes.legend(loc="upper left")
    return figure


def precision_accuracy_figure(table: Table) -> Figure | None:
    """Precision against accuracy, one point per row, bootstrap 95% intervals as error bars; runs are
    drawn above submissions (filled circles over open squares) and labels are moved apart."""
    rows = [row for row in table.rows if row.cells["acc"] and row.cells["prec"]]
    if not rows:
        return None
    size = (6.4, 4.2)
    axes = (figure := _figure(*size)).add_subplot()
    labelled = []
    for kind in ("reported", "submission", "run"):
        chosen = [row for row in rows if row.kind == kind]
        if not chosen:
            continue
        x = np.array([_value(row, "acc") for row in chosen])
        y = np.array([_value(row, "prec") for row in chosen])
        errors = [_error_bars(chosen, key, centre) for key, centre in (("acc", x), ("prec", y))]
        colour = {"reported": "0.55", "submission": PALETTE[1], "run": PALETTE[0]}[kind]
        axes.errorbar(x, y, xerr=errors[0], yerr=errors[1], fmt=MARKERS[kind], color=colour, ms=6,
                      mfc="none" if kind == "submission" else colour, elinewidth=0.8, capsize=2,
                      label=kind, zorder=LAYER[kind])  # fmt: skip
        if kind != "reported":
            labelled += [(row.label, xi, yi) for row, xi, yi in zip(chosen, x, y, strict=True)]
    leader = {"arrowstyle": "-", "lw": 0.5, "color": "0.5"}
    for text, xi, yi, dx, dy in _spread(labelled, axes, size):
        axes.annotate(_short(text), (xi, yi), xytext=(dx, dy), textcoords="offset points", fontsize=9,
                      ha="left" if dx > 0 else "right", arrowprops=leader if dy != 3 else None)  # fmt: skip
    axes.set(xlabel="accuracy (%)", ylabel="precision (%)")
    axes.legend(loc="best")
    return figure


def _spread(points: list[tuple[str, float, float]], axes, size: tuple[float, float]) -> list:
    """Label offsets (points) so that no two labels overlap: each label is a box about 5.4 pt per
    character wide and 11 pt high, right of its point (left of it near the right edge); labels are
    placed bottom to top and each is lifted above any box it would overlap."""
    (x0, x1), (y0, y1) = axes.get_xlim(), axes.get_ylim()
    box = axes.get_position()
    width, height = box.width * size[0] * 72, box.height * size[1] * 72  # the axes in points
    placed: list[tuple[float, float, float, float]] = []  # left, right, bottom, top in points
    out = []
    for text, x, y in sorted(points, key=lambda p: (p[2], p[1])):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        px, py = (x - x0) / (x1 - x0) * width, (y - y0) / (y1 - y0) * height
        span = 5.4 * len(_short(text))
        dx = 5 if px + 5 + span <= width + 10 else -5  # near the right edge: the label goes left
        left, right = (px + 5, px + 5 + span) if dx > 0 else (px - 5 - span, px - 5)
        bottom = py + 3
        for other_left, other_right, other_bottom, other_top in sorted(placed, key=lambda b: b[2]):
            if (
                left < other_right
                and other_left < right
                and bottom < other_top
                and other_bottom < bottom + 11
            ):
                bottom = other_top + 1
        placed.append((left, right, bottom, bottom + 11))
        out.append((text, x, y, dx, bottom - py))
    return out


def _error_bars(rows: list[Row], key: str, centre: np.ndarray) -> np.ndarray:
    """2×n distances from the mean to the interval's ends (0 where a row has no interval)."""
    bounds = np.array([[100 * b for b in row.cells[key].ci95] if row.cells[key].ci95 else [np.nan] * 2
                       for row in rows])  # fmt: skip
    below, above = centre - bounds[:, 0], bounds[:, 1] - centre
    return np.nan_to_num(np.clip(np.vstack([below, above]), 0, None))


def _grouped_bars(table: Table, panels: list[tuple[str, list[tuple[str, str]]]]) -> Figure | None:
    """Horizontal grouped bars: a panel per metric family, a group per row, a bar per key.

    Each series is one PolyCollection of rectangles (one artist, not one patch per bar).
    """
    keys = [key for _, series in panels for key, _ in series]
    rows = [row for row in table.rows if any(row.cells[key] for key in keys)]
    if not rows:
        return None
    labels = [_short(row.label) for row in rows]
    left = 0.3 + 0.075 * max(len(label) for label in labels)
    figure = _figure(left + 3.2 * len(panels), 1.4 + 0.34 * len(rows), left=left, bottom=1.0)
    height = 0.8 / max(len(series) for _, series in panels)
    for index, (title, series) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        for offset, (key, label) in enumerate(series):
            tops = np.arange(len(rows)) - 0.4 + height * offset
            values = np.nan_to_num([_value(row, key) for row in rows])
            boxes = [[(0, y), (v, y), (v, y + height), (0, y + height)]
                     for y, v in zip(tops, values, strict=True)]  # fmt: skip
            axes.add_collection(PolyCollection(boxes, facecolors=PALETTE[offset], label=label))
        axes.set_yticks(np.arange(len(rows)), labels if index == 0 else [""] * len(rows))
        axes.set(title=title, xlim=(0, 100), ylim=(len(rows) - 0.5, -0.5), xlabel="%")
        axes.grid(axis="y", visible=False)
    figure.legend(*axes.get_legend_handles_labels(), loc="lower center", ncols=len(series), frameon=False)
    return figure


def group_figure(table: Table) -> Figure | None:
    """Many / medium / few accuracy and precision per row."""
    groups = ("many", "medium", "few")
    return _grouped_bars(
        table,
        [(f"{name} by frequency group", [(f"{prefix}_{group}", group) for group in groups])
         for prefix, name in (("acc", "accuracy"), ("prec", "precision"))],
    )  # fmt: skip


def attribute_figure(table: Table) -> Figure | None:
    """Accuracy per attribute per row."""
    return _grouped_bars(table, [("accuracy by attribute", [(f"acc_att{k}", f"att{k}") for k in range(3)])])


def reliability_figure(table: Table) -> Figure | None:
    """Reliability diagram: accuracy against mean confidence per confidence bin, one line per row
    whose predictions carry scores (the best rows first), with the diagonal of perfect calibration."""
    rows = [row for row in table.rows if row.reliability is not None][:PER_CLASS_ROWS]
    if not rows:
        return None
    axes = (figure := _figure(5.2, 4.2)).add_subplot()
    axes.plot([0, 100], [0, 100], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    for row in rows:
        bins = row.reliability
        table_bins = zip(bins.confidence, bins.accuracy, bins.count, strict=True)
        pairs = [(100 * c, 100 * a) for c, a, n in table_bins if n and c is not None and a is not None]
        if pairs:
            x, y = zip(*pairs, strict=True)
            axes.plot(x, y, marker=MARKERS.get(row.kind, "o"), ms=4, label=_legend_text(_short(row.label)),
                      zorder=LAYER.get(row.kind, 3))  # fmt: skip
    axes.set(xlabel="confidence (%, mean per bin)", ylabel="accuracy (%)", xlim=(0, 102), ylim=(0, 102))
    axes.legend(loc="best")
    return figure


FIGURES = (
    ("Per-class accuracy against training frequency", per_class_figure),
    ("Precision against accuracy", precision_accuracy_figure),
    ("Many / medium / few", group_figure),
    ("Attribute-wise accuracy", attribute_figure),
    ("Reliability diagram", reliability_figure),
)


def table_plots(table: Table) -> list[Plot]:
    """The figures that this table has data for, as embeddable SVG data URIs."""
    plots = []
    with mpl.rc_context(STYLE), warnings.catch_warnings():
        # Text stays text in the SVG (the browser picks a font for it), so a glyph the layout font
        # lacks is no error: only its measured width is approximate.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        for title, draw in FIGURES:
            figure = draw(table)
            if figure is not None:
                plots.append(Plot(title, _svg_uri(figure)))
    return plots
