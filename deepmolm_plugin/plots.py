"""Every figure the project's reports draw, on matplotlib's Agg backend (files, no display).

Callers: the evaluation report (`eval.outputs`: text-metric bars, one parity plot per
property task), the KFLM2 report (`property.report`: learning curves, parity, ROC) and
`scripts/experiment_fusion.py` (MAE bars with error bars, parity per target). A caller
takes a figure from `panels`, draws each panel with one of the functions below from plain
numbers, labels the axes itself, and writes the file with `save`.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .result_files import replace_atomic

ERROR_CAPSIZE = 4  # points: the caps of error bars
# Largest |value| a parity plot places: beyond ~1.6e308 the padded limits, or matplotlib's
# tick steps, overflow to inf and drawing fails (ValueError / OverflowError at save).
MAX_DRAWABLE = 1e300


def pyplot():
    """matplotlib.pyplot on Agg: reports are written from scripts and servers without a
    display, whatever backend the environment (MPLBACKEND) asks for."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def panels(n: int, figsize: Tuple[float, float]):
    """A figure of `n` panels side by side: (figure, [axes, ...])."""
    fig, axes = pyplot().subplots(1, n, figsize=figsize, squeeze=False)
    return fig, list(axes[0])


def save(fig, path: "str | os.PathLike", dpi: int) -> Path:
    """Lay out, write and close `fig` (closing frees it: pyplot keeps every open figure).

    Every text is drawn as it is, never as matplotlib math text: titles, labels, legends and
    ticks hold task names and other user data, and a `$` in them (`solubility in $\\ce{H2O}$`,
    `$$`) switched on math mode, whose parser failed at layout (ValueError: Unknown symbol).
    Set here, where every figure passes: on the texts drawn so far, and through the rc
    setting on the tick labels matplotlib makes while laying out.

    A character the text's font lacks (CJK in DejaVu Sans) is drawn with an installed font
    that has it, else as its `\\uXXXX` escape, and a note on stderr names the characters
    (`readable_texts`; was: an empty box, and only matplotlib's warning)."""
    import matplotlib
    from matplotlib.text import Text

    try:
        plain_log_ticks(fig)
        for text in fig.findobj(Text):
            text.set_parse_math(False)
        escaped = readable_texts(fig)
        if escaped:
            print(f"note: {path}: no installed font draws {', '.join(repr(c) for c in escaped[:10])}"
                  f"{' ...' if len(escaped) > 10 else ''} (install a font that has them, e.g. fonts-noto-cjk): "
                  "drawn as their \\u escapes", file=sys.stderr)
        with matplotlib.rc_context({"text.parse_math": False}):
            fig.tight_layout()
            if fit_titles(fig):  # laid out again around the wrapped titles
                fig.tight_layout()
            # whole or not at all: a run killed while drawing left a cut PNG that passed for a plot
            kind = Path(path).suffix.lstrip(".").lower() or "png"
            replace_atomic(path, lambda f: fig.savefig(f, dpi=dpi, format=kind))
    finally:  # also on failure: an unclosed figure stays in pyplot's list for the process's life
        pyplot().close(fig)
    return Path(path)


def plain_log_ticks(fig) -> None:
    """Every log-scale axis of `fig` labels its ticks in plain text ("0.2", "1e-05"): matplotlib's
    default log formatters write math text ("$\\mathdefault{2\\times10^{-1}}$"), which `save`
    draws literally (math text is off, for the user's texts), so the learning curves' loss
    axis showed TeX source. Any other formatter (one a caller set) is kept."""
    from matplotlib import ticker

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for get, put in ((axis.get_major_formatter, axis.set_major_formatter),
                             (axis.get_minor_formatter, axis.set_minor_formatter)):
                old = get()
                if isinstance(old, ticker.LogFormatterMathtext):  # the defaults of the log and symlog scales
                    base, linthresh = _log_scale(axis)
                    put(_plain_log_formatter()(base=base, labelOnlyBase=old.labelOnlyBase,
                                               minor_thresholds=old.minor_thresholds, linthresh=linthresh))


def _log_scale(axis) -> "tuple[float, float | None]":
    """(base, linthresh) of a log or symlog `axis`, read from its public transform (not the
    formatter's private attributes); linthresh is None on a plain log axis, which has none."""
    from matplotlib.scale import SymmetricalLogTransform

    transform = axis.get_transform()
    linthresh = transform.linthresh if isinstance(transform, SymmetricalLogTransform) else None
    return transform.base, linthresh


def fit_titles(fig) -> bool:
    """Wrap every axes title wider than the room it has (at spaces; centred on its axes, within
    its panel's share of the figure) onto more lines; True when one was wrapped. A parity plot
    titled with a long task name ran off the figure's right edge."""
    import textwrap

    renderer = fig.canvas.get_renderer()
    wrapped = False
    for ax in fig.axes:
        title, spec = ax.title, ax.get_subplotspec()
        text = title.get_text()
        if not text or spec is None:
            continue
        ncols = spec.get_gridspec().ncols
        left, right = (fig.bbox.width * c / ncols for c in (spec.colspan.start, spec.colspan.stop))
        box = ax.get_window_extent(renderer)
        centre = (box.x0 + box.x1) / 2
        room = 2 * min(centre - left, right - centre) - 4  # pixels; a few kept off the edge
        # each line wrapped apart, sized by the longest: a break the caller put in (a target over
        # its kind) was turned into a space by wrapping the text whole
        lines = text.split("\n")
        width, chars = title.get_window_extent(renderer).width, max(len(line) for line in lines)
        while width > room and chars > 10:
            chars = max(10, min(chars - 1, int(chars * room / width)))
            title.set_text("\n".join(textwrap.fill(line, chars, break_long_words=False) for line in lines))
            width, wrapped = title.get_window_extent(renderer).width, True
    return wrapped


@functools.lru_cache(maxsize=None)
def _plain_log_formatter():
    """The class, made on first use: matplotlib is imported only when a figure is drawn."""
    from matplotlib import ticker

    class PlainLogFormatter(ticker.LogFormatter):
        """matplotlib's LogFormatter (which ticks it labels), each label as Python's `g` format,
        a negative tick (symlog) with its sign: LogFormatter labels abs(x), so -100 read "100"."""

        def __call__(self, x, pos=None):
            label = super().__call__(x, pos)
            return self.fix_minus("-" + label) if x < 0 and label else label

        def _num_to_string(self, x, vmin, vmax):
            return f"{x:g}"

    return PlainLogFormatter


# Fonts that "have" every character but draw each as a box with its code: no help to a reader
PLACEHOLDER_FONTS = ("Last Resort",)


def readable_texts(fig) -> list:
    """Make every text of `fig` drawable without boxes: a text holding characters its font
    lacks gets the first installed font that has them all as a fallback; where none has
    them, those characters are replaced by their escapes (`\\uXXXX`, above U+FFFF
    `\\UXXXXXXXX`: `_escape`). Returns the
    characters escaped, in order of first appearance (empty when none was)."""
    from matplotlib import font_manager
    from matplotlib.text import Text

    escaped = []
    for text in fig.findobj(Text):
        content = text.get_text()
        if content.isascii():  # every font matplotlib ships has ASCII
            continue
        primary = font_manager.findfont(text.get_fontproperties())
        lacking = {c for c in content if not c.isspace() and ord(c) not in _charmap(primary)}
        if not lacking:
            continue
        fallback = _font_having(lacking)
        if fallback is not None:  # matplotlib >= 3.6 draws each glyph with the first family that has it
            text.set_fontfamily([font_manager.FontProperties(fname=primary).get_name(), fallback])
            continue
        text.set_text("".join(_escape(c) if c in lacking else c for c in content))
        escaped += [c for c in dict.fromkeys(content) if c in lacking and c not in escaped]
    return escaped


def _escape(char: str) -> str:
    """A character as Python writes its escape: `\\u00b2`, and `\\U0001f9ea` above U+FFFF (was:
    `\\u1f9ea`, which a reader decodes as U+1F9E and an `a`)."""
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


@functools.lru_cache(maxsize=None)
def _charmap(font_file: str) -> frozenset:
    """The code points the font file has glyphs for."""
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(font_file).get_charmap())


def _font_having(characters: set) -> Optional[str]:
    """The family name of an installed font with a glyph for each of `characters`, or None."""
    from matplotlib import font_manager

    codes = {ord(c) for c in characters}
    for entry in font_manager.fontManager.ttflist:
        if entry.name.startswith(PLACEHOLDER_FONTS):
            continue
        try:
            if codes <= _charmap(entry.fname):
                return entry.name
        except (OSError, RuntimeError):  # a font file that cannot be opened has no glyph to give
            continue
    return None


def bars(ax, categories: Sequence[str], series: Sequence[Sequence[float]], *, labels: Optional[Sequence[str]] = None,
         errors: Optional[Sequence[Sequence[float]]] = None, colors: Optional[Sequence] = None,
         tick_fontsize=None, missing: str = "n/a") -> None:
    """Grouped bars: a group per category, in it one bar per series (the group 0.8 wide).

    labels: the series' legend entries; errors: per series, each bar's error-bar half
    height (e.g. a std over seeds); colors: per series, one colour or one per bar. Without
    colors each series takes the next colour of matplotlib's cycle. A value that is None
    (an undefined score) gets no bar and the `missing` mark ("n/a"), never a bar of height 0."""
    width = 0.8 / len(series)
    for i, values in enumerate(series):
        places = [x + i * width for x, v in enumerate(values) if v is None]
        values = [math.nan if v is None else v for v in values]
        for x in places:
            ax.text(x, 0, missing, ha="center", va="bottom", rotation=90, fontsize="x-small")
        options = {}
        if labels is not None:
            options["label"] = labels[i]
        if errors is not None:
            options.update(yerr=errors[i], capsize=ERROR_CAPSIZE)
        if colors is not None:
            options["color"] = colors[i]
        ax.bar([x + i * width for x in range(len(categories))], values, width, **options)
    # every group inside the axis: matplotlib fits its limits to the bars drawn, so a first
    # or last group without any value lay on the frame, its mark across the spine
    low, high = ax.get_xlim()
    ax.set_xlim(min(low, -width / 2 - 0.2), max(high, len(categories) - 1 + 0.8 - width / 2 + 0.2))
    ticks = {} if tick_fontsize is None else {"fontsize": tick_fontsize}
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(categories))], categories, **ticks)


def parity(ax, series: Sequence[tuple], *, size: float, alpha: float, linewidth: float = 0.8,
           pad: Optional[float] = None) -> None:
    """Predicted against reference values, with the y = x diagonal (black dashes).

    series: [(reference values, predicted values, legend label or None)], each scattered
    (an empty one still takes its colour of the cycle, so a seed keeps its colour). The
    diagonal spans the smallest to the largest value of all points; with `pad` (a fraction
    of that range, +-1 when the range is 0) it is extended by that margin on both ends and
    both axes are limited to it, so the plot is square in data units. A value beyond
    +-MAX_DRAWABLE (or not finite) is a ValueError: the caller leaves it out and says so."""
    points = [np.asarray(v, dtype=float).ravel() for x, y, _ in series for v in (x, y)]
    beyond = [v for p in points for v in p[~drawable(p)]]
    if beyond:
        raise ValueError(f"parity plot: {len(beyond)} value(s) beyond +-{MAX_DRAWABLE:g} (e.g. {beyond[0]:g}), "
                         "more than matplotlib can lay out on an axis")
    for x, y, label in series:
        ax.scatter(x, y, s=size, alpha=alpha, **({} if label is None else {"label": label}))
    points = np.concatenate(points) if points else np.zeros(0)
    if not points.size:
        return
    low, high = points.min(), points.max()
    if pad is not None:
        margin = (high - low) * pad or 1.0
        low, high = low - margin, high + margin
    ax.plot([low, high], [low, high], "k--", linewidth=linewidth)
    if pad is not None:
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)


def drawable(values) -> np.ndarray:
    """Mask of the values a parity plot can place (finite, within +-MAX_DRAWABLE)."""
    values = np.asarray(values, dtype=float)
    return np.isfinite(values) & (np.abs(values) <= MAX_DRAWABLE)


def learning_curves(loss_ax, metric_ax, runs: Sequence[tuple]) -> None:
    """Training runs: loss per epoch on `loss_ax`, the validation metric per epoch on
    `metric_ax` with a dotted grey line at the epoch selected.

    runs: [(epochs, training losses, validation metric values, label, selected epoch)];
    the label names the run in `metric_ax`'s legend (the caller decides whether to show one)."""
    for epochs, losses, metric, label, selected in runs:
        loss_ax.plot(epochs, losses, lw=0.8, alpha=0.7)
        metric_ax.plot(epochs, metric, lw=0.8, alpha=0.7, label=label)
        metric_ax.axvline(selected, lw=0.4, ls=":", color="grey")


def roc(ax, curves: Sequence[tuple], empty: str = "no curve") -> None:
    """ROC curves [(false positive rates, true positive rates, label)], the chance diagonal
    and a legend of the labels; without curves, `empty` written in the panel instead."""
    for fpr, tpr, label in curves:
        ax.plot(fpr, tpr, lw=0.8, label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.6)
    if curves:
        ax.legend(fontsize=6)
    else:  # an empty legend box (and matplotlib's warning about it) would say nothing
        ax.text(0.5, 0.75, empty, ha="center", va="center", fontsize=8, bbox=dict(facecolor="white", edgecolor="none"))
