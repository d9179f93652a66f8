"""The stats page's charts, drawn on the server as inline SVG by pygal.

No CDN and no JavaScript: pygal's tooltips need its script, so the charts
print their values instead, and the config ``<script>`` pygal always embeds
(it repeats the labels, which members chose) is removed from the tree. Each
chart is an image labelled for screen readers; the table beside it carries
the same figures.

Drawing costs more than counting (pygal takes some 10 ms a chart), and a
chart depends only on its figures: the last drawings are kept, so a reload,
or another period whose numbers are the same, draws nothing.
"""

import functools
import math

import pygal
from django.utils.safestring import mark_safe
from pygal.style import Style

SUCCEEDED, FAILED, IN_FLIGHT = "#16a34a", "#dc2626", "#4f46e5"
# Light bars, so the value printed on each stays readable in dark text.
BAR, FAILED_BAR = "#a5b4fc", "#fca5a5"
FONT = 'system-ui, -apple-system, "Segoe UI", sans-serif'
WIDTH = 480  # a narrow canvas, so that its text stays legible when a phone shrinks it
LABEL_CHARS = 28  # longer labels (failure sentences) are cut in the chart; the table has them whole


def _style(*colors):
    return Style(background="transparent", plot_background="transparent", foreground="#1d2330",
                 foreground_strong="#1d2330", foreground_subtle="#667085", font_family=FONT, label_font_size=14,
                 major_label_font_size=14, value_font_size=14, value_label_font_size=14, legend_font_size=14,
                 no_data_font_size=20, colors=colors or (BAR,), opacity=".9", opacity_hover=".9",
                 guide_stroke_color="#e4e7ec", major_guide_stroke_color="#d0d5dd")


def _without_scripts(label):
    """An xml filter: no ``<script>`` anywhere, and the root labelled as one image."""

    def apply(root):
        for parent in list(root.iter()):
            for child in list(parent):
                if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == "script":
                    parent.remove(child)
        root.set("role", "img")
        root.set("aria-label", label)
        return root

    return apply


def _render(chart_class, label, *, colors=(), **config):
    config = {"width": WIDTH, "height": 320, "disable_xml_declaration": True, "js": [], "style": _style(*colors),
              "show_legend": False, "margin": 12, "margin_right": 32, "truncate_label": -1, **config}
    return chart_class(**config).add_xml_filter(_without_scripts(label))


def _svg(chart):
    svg = chart.render(is_unicode=True)
    if "<script" in svg:
        raise ValueError("A chart must not carry a script.")
    return mark_safe(svg)  # pygal escapes every label and value it writes (an XML tree, serialised)


def _remembered(draw):
    """Keep the last drawings of ``draw`` by their figures (lists become tuples to serve as the key)."""
    cached = functools.lru_cache(maxsize=32)(draw)

    @functools.wraps(draw)
    def chart(*figures):
        return cached(*(tuple(figure) if isinstance(figure, list) else figure for figure in figures))

    chart.cache_clear = cached.cache_clear
    return chart


def forget_drawings():
    """Draw every chart afresh (for the bench's cold figures)."""
    for chart in (tasks_per_day, success_rate, durations, spenders, reasons):
        chart.cache_clear()


def _label_every(count):
    """Every how many days a date is written under the chart, so that the dates never overlap."""
    for most, every in ((14, None), (31, 7), (92, 14)):
        if count <= most:
            return every
    return 61


def _day_label(day):
    return f"{day:%b} {day.day}"


@_remembered
def tasks_per_day(days):
    """Each day's tasks by outcome so far: stacked bars for a month or less, stacked areas beyond it
    (bars a few pixels wide show nothing more, and cost ten times as much to draw)."""
    bars = len(days) <= 31
    shape = {} if bars else {"fill": True, "show_dots": False}
    every = _label_every(len(days))
    chart = _render(pygal.StackedBar if bars else pygal.StackedLine, "Tasks per day by outcome",
                    colors=(SUCCEEDED, FAILED, IN_FLIGHT), show_legend=True, legend_at_bottom=True,
                    legend_at_bottom_columns=3, x_label_rotation=-45, show_minor_x_labels=every is None,
                    x_labels_major_every=every, print_values=False, value_formatter=_number,
                    y_labels=_whole_steps(max((day.total for day in days), default=0)), **shape)
    chart.x_labels = [_day_label(day.day) for day in days]
    chart.add("Succeeded", [day.succeeded for day in days])
    chart.add("Failed", [day.failed for day in days])
    chart.add("In flight", [day.in_flight for day in days])
    return _svg(chart)


@_remembered
def success_rate(rate):
    """A half gauge: succeeded out of finished, in percent."""
    chart = _render(pygal.SolidGauge, "Success rate", colors=(SUCCEEDED,), half_pie=True, inner_radius=0.65,
                    width=320, height=180, value_formatter=lambda percent: f"{percent:.1f} %", show_legend=False)
    chart.add("Success rate", [{"value": rate, "max_value": 100}])
    return _svg(chart)


@_remembered
def durations(median, p95):
    """Two bars: the median and the 95th percentile of the time from submit to result."""
    chart = _render(pygal.HorizontalBar, "Time from submit to result", height=200, print_values=True,
                    value_formatter=human_seconds, y_labels=_time_steps(max(median, p95)))
    chart.x_labels = ["95th percentile", "Median"]  # from the bottom up
    chart.add("Seconds", [p95, median])
    return _svg(chart)


@_remembered
def spenders(rows, label):
    """One bar per member or key: the credits it spent."""
    chart = _render(pygal.HorizontalBar, label, height=_bars_height(len(rows)), print_values=True,
                    value_formatter=_number, y_labels=_whole_steps(max(row.credits for row in rows)))
    rows = rows[::-1]  # pygal draws the first bar at the bottom: the biggest goes on top
    chart.x_labels = [_short(row.name) for row in rows]
    chart.add("Credits", [row.credits for row in rows])
    return _svg(chart)


@_remembered
def reasons(rows):
    """One bar per failure reason: how many tasks failed with it."""
    chart = _render(pygal.HorizontalBar, "Top failure reasons", height=_bars_height(len(rows)), print_values=True,
                    value_formatter=_number, colors=(FAILED_BAR,),
                    y_labels=_whole_steps(max(row.tasks for row in rows)))
    rows = rows[::-1]
    chart.x_labels = [_short(row.text) for row in rows]
    chart.add("Failed tasks", [row.tasks for row in rows])
    return _svg(chart)


def _whole_steps(top, ticks=5):
    """Axis labels for a count: whole numbers from 0 past ``top``, about ``ticks`` of them (never 0.8 tasks)."""
    top = max(top, 1)
    step = math.ceil(top / ticks)
    magnitude = 10 ** (len(str(step)) - 1)
    step = next(nice * magnitude for nice in (1, 2, 5, 10) if nice * magnitude >= step)
    return list(range(0, top + step, step)) if top % step else list(range(0, top + 1, step))


TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)


def _time_steps(top, ticks=4):
    """Axis labels for a duration in seconds: round steps (30 s, 2 min, 15 min…) from 0 past ``top``."""
    step = next((step for step in TIME_STEPS if step * ticks >= top), None) or 86400 * math.ceil(top / ticks / 86400)
    return list(range(0, math.ceil(max(top, 1) / step) * step + 1, step))


def _number(n):
    return f"{n:g}"  # 3 for a bar, 2.5 on an axis


def _short(label):
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1].rstrip() + "…"


def _bars_height(count):
    return max(140, 60 + 36 * count)


def human_seconds(seconds):
    """``42 s``, ``3 min 5 s``, ``1 h 2 min``: how long, in words a person reads at a glance."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
