"""Charts drawn on the server as SVG with pygal: readable without JavaScript, printable.

Each chart is served as its own image (``<img src=...svg>``) with the same numbers as a
table beside it; pygal's own script is left out (``js=[]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pygal
from pygal.style import Style

_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#222",
    foreground_strong="#111",
    foreground_subtle="#666",
    colors=("#1b7f3b", "#2b6cb0", "#c53030", "#b7791f", "#6b46c1"),
    font_family="system-ui, sans-serif",
)


def _config(title: str) -> dict[str, object]:
    return {
        "title": title,
        "style": _STYLE,
        "js": [],
        "disable_xml_declaration": True,
        "width": 720,
        "height": 320,
        "explicit_size": False,
        "legend_at_bottom": True,
        "truncate_label": 12,
        "x_label_rotation": 30,
        "show_minor_x_labels": False,
    }


def stacked(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]
) -> bytes:
    chart = pygal.StackedBar(**_config(title))
    chart.x_labels = list(labels)
    chart.x_labels_major = list(labels[:: max(1, len(labels) // 8)])
    for name, values in series:
        chart.add(name, list(values))
    return str(chart.render(is_unicode=True)).encode()


def line(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]]
) -> bytes:
    chart = pygal.Line(**_config(title), range=(0, 100))
    chart.x_labels = list(labels)
    chart.x_labels_major = list(labels[:: max(1, len(labels) // 8)])
    for name, values in series:
        chart.add(name, list(values))
    return str(chart.render(is_unicode=True)).encode()


def bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]]
) -> bytes:
    chart = pygal.Bar(**_config(title))
    chart.x_labels = list(labels)
    for name, values in series:
        chart.add(name, list(values))
    return str(chart.render(is_unicode=True)).encode()
