"""Draw bar, line and pie charts with matplotlib's Agg backend, reproducibly.

One job: turn a :class:`~pipelines.render.model.BarChart`, ``LineChart`` or ``PieChart`` into
pixels. Each chart is drawn on its own ``Figure`` with an Agg canvas (no pyplot, no global
figure list), under matplotlib's built-in default settings plus the few fixed ones below (a
user's ``matplotlibrc`` or another caller's ``rcParams`` never leak in), one chart at a time
(rcParams are process-wide, so a lock keeps threads from mixing them). Every value is written
on the chart with ``format_value``, so a question about it has one right answer.
"""
from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from pipelines.render.model import COLORS, SHAPE_COLORS, BarChart, LineChart, PieChart, format_value

__all__ = ["render_chart", "CHART_RC"]

_DPI = 100
CHART_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 10.0,
    "axes.titlesize": 12.0,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "text.hinting": "default",
    "path.simplify": True,
}
"""Settings applied over matplotlib's built-in defaults for every chart."""
_LOCK = threading.Lock()


def _hex(name: str) -> str:
    return "#%02x%02x%02x" % COLORS[name]


def _bar(fig, chart: BarChart) -> None:
    ax = fig.add_subplot()
    positions = np.arange(len(chart.categories))
    bars = ax.bar(positions, chart.values, color=_hex(chart.color), width=0.6)
    ax.bar_label(bars, labels=[format_value(v) for v in chart.values], padding=2)
    ax.set_xticks(positions, chart.categories)
    ax.set_ylim(0, max(max(chart.values), 1) * 1.15)
    ax.set_ylabel(chart.y_label)
    ax.set_title(chart.title)


def _line(fig, chart: LineChart) -> None:
    ax = fig.add_subplot()
    positions = np.arange(len(chart.x_labels))
    for series in chart.series:
        ax.plot(positions, series.values, color=_hex(series.color), marker="o", linewidth=2, label=series.name)
        for x, v in zip(positions, series.values):
            ax.annotate(format_value(v), (x, v), textcoords="offset points", xytext=(0, 6), ha="center",
                        color=_hex(series.color))
    top = max(max(s.values) for s in chart.series)
    ax.set_ylim(0, max(top, 1) * 1.2)
    ax.set_xticks(positions, chart.x_labels)
    ax.set_ylabel(chart.y_label)
    ax.set_title(chart.title)
    if len(chart.series) > 1:
        ax.legend(loc="upper left", frameon=False, ncols=len(chart.series))


def _pie(fig, chart: PieChart) -> None:
    ax = fig.add_subplot()
    colors = chart.colors or SHAPE_COLORS[:len(chart.labels)]
    ax.pie(chart.values, labels=[f"{label}\n{format_value(v)}" for label, v in zip(chart.labels, chart.values)],
           colors=[_hex(c) for c in colors], startangle=90, counterclock=False,
           wedgeprops={"edgecolor": "white", "linewidth": 1.5}, labeldistance=1.15)
    ax.set_aspect("equal")
    ax.set_title(chart.title)


_DRAW = {BarChart: _bar, LineChart: _line, PieChart: _pie}


def render_chart(chart: BarChart | LineChart | PieChart) -> Image.Image:
    """The chart's RGB image, ``chart.width`` x ``chart.height`` pixels.

    Raises:
        TypeError: ``chart`` is not a chart.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    draw = _DRAW.get(type(chart))
    if draw is None:
        raise TypeError(f"render_chart: not a chart: {type(chart).__name__}")
    with _LOCK, matplotlib.rc_context():
        matplotlib.rcdefaults()  # built-in defaults, not the user's matplotlibrc (undone on exit)
        matplotlib.rcParams.update(CHART_RC)
        fig = Figure(figsize=(chart.width / _DPI, chart.height / _DPI), dpi=_DPI)
        canvas = FigureCanvasAgg(fig)
        draw(fig, chart)
        fig.tight_layout()
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]))
    if image.size != (chart.width, chart.height):  # figsize * dpi rounds; never off in practice
        image = image.resize((chart.width, chart.height), Image.Resampling.NEAREST)
    return image
