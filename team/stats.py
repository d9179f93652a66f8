"""Staff's figures for a period: the stats page (charts with their tables) and its CSV.

Thin views over ``team.figures`` (the numbers) and ``team.charts`` (the
pictures). The period comes from a GET form (``?from=…&to=…``, the last 30
days by default), so a period is a link staff can bookmark or share; the page
and the CSV of one link show the same numbers, formatted by the same
functions here.
"""

import csv
from datetime import date, timedelta
from urllib.parse import urlencode

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from team import charts, figures
from team.access import staff_required

DEFAULT_DAYS = 30
PRESETS = (7, 30, 90)
MAX_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)  # beyond these, date arithmetic would overflow
CHART_BARS = 15  # members or keys drawn; the table beside the chart lists them all


def _date_field(label, which):
    return forms.DateField(
        label=label, required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": f"Enter the {which} day as a date, such as 2025-01-31."},
    )


class PeriodForm(forms.Form):
    """Whole days, both ends included. Leave out the end and the period ends today; leave out
    the start and it lasts the default 30 days."""

    start = _date_field("From", "first")
    end = _date_field("To", "last")

    # The query says ?from=…&to=…; "from" is a Python keyword, so the fields have other names.
    PARAMETERS = {"start": "from", "end": "to"}

    def add_prefix(self, field_name):
        return self.PARAMETERS.get(field_name, field_name)

    def _within_reach(self, day, which):
        if day and not EARLIEST <= day <= LATEST:
            raise forms.ValidationError(f"Choose a {which} day between {EARLIEST:%Y} and {LATEST:%Y}.")
        return day

    def clean_start(self):
        return self._within_reach(self.cleaned_data["start"], "first")

    def clean_end(self):
        return self._within_reach(self.cleaned_data["end"], "last")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        end = data.get("end") or timezone.localdate()
        start = data.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise forms.ValidationError(f"The first day ({start:%Y-%m-%d}) is after the last day ({end:%Y-%m-%d}).")
        data["period"] = period = figures.Period(start, end)
        if period.length > MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days; this period has {period.length}.")
        return data


def _query(period):
    return urlencode({"from": period.start.isoformat(), "to": period.end.isoformat()})


def _period(request):
    """The period asked for, and the form that shows it (or, for bad input, its errors and no period)."""
    form = PeriodForm(request.GET)
    if not form.is_valid():
        return None, form
    period = form.cleaned_data["period"]
    return period, PeriodForm(initial={"start": period.start, "end": period.end})


def _presets(period):
    """``(label, query, current)`` for the last 7, 30 and 90 days."""
    presets = []
    for days in PRESETS:
        preset = figures.Period.last(days)
        presets.append((f"Last {days} days", _query(preset), preset == period))
    return presets


def _decimal(value):
    return "" if value is None else f"{value:.1f}"


def summary(shown):
    """``(figure, value, unit)``: the period's headline figures, as the page and the CSV both show them."""
    return [
        ("Tasks", shown.total, ""),
        ("Succeeded", shown.succeeded, ""),
        ("Failed", shown.failed, ""),
        ("In flight", shown.in_flight, ""),
        ("Success rate", _decimal(shown.success_rate), "%"),
        ("Median time from submit to result", _decimal(shown.median), "s"),
        ("95th percentile time from submit to result", _decimal(shown.p95), "s"),
        ("Credits spent", shown.credits, ""),
    ]


def _charts(shown):
    """The SVG of each chart that has something to show."""
    drawn = {"days": charts.tasks_per_day(shown.days)}
    if shown.success_rate is not None:
        drawn["success"] = charts.success_rate(shown.success_rate)
    if shown.durations.count:
        drawn["durations"] = charts.durations(shown.median, shown.p95)
    if shown.members:
        drawn["members"] = charts.spenders(shown.members[:CHART_BARS], "Credits spent per member")
    if shown.keys:
        drawn["keys"] = charts.spenders(shown.keys[:CHART_BARS], "Credits spent per key")
    if shown.reasons:
        drawn["reasons"] = charts.reasons(shown.reasons)
    return drawn


@staff_required
@require_safe
def stats_page(request):
    period, form = _period(request)
    template = "team/stats.html#stats" if request.htmx else "team/stats.html"
    context = {"form": form, "period": period, "presets": _presets(period), "chart_bars": CHART_BARS}
    if period is None:
        return render(request, template, context, status=200 if request.htmx else 400)
    shown = figures.for_period(period)
    context.update(figures=shown, summary=summary(shown), charts=_charts(shown), query=_query(period),
                   success_rate=_decimal(shown.success_rate), median=_decimal(shown.median), p95=_decimal(shown.p95),
                   median_words=charts.human_seconds(shown.median), p95_words=charts.human_seconds(shown.p95),
                   time_zone=timezone.get_current_timezone_name())
    return render(request, template, context)


@staff_required
@require_safe
def stats_csv(request):
    period, form = _period(request)
    if period is None:
        errors = " ".join(error for errors in form.errors.values() for error in errors)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"lumaweb-stats-{period.start:%Y-%m-%d}-to-{period.end:%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    for row in csv_rows(figures.for_period(period)):
        writer.writerow([_cell(value) for value in row])
    return response


def csv_rows(shown):
    """Every figure of the page, one section after another: its title, its header row, its rows."""
    period = shown.period
    sections = [
        ("Period", ["from", "to", "time zone"],
         [[period.start.isoformat(), period.end.isoformat(), timezone.get_current_timezone_name()]]),
        ("Summary", ["figure", "value", "unit"], summary(shown)),
        ("Tasks per day (by the day they were created)", ["day", "succeeded", "failed", "in flight", "total"],
         [[day.day.isoformat(), day.succeeded, day.failed, day.in_flight, day.total] for day in shown.days]),
        ("Credits spent per member", ["member", "tasks charged", "credits"],
         [[row.name, row.tasks, row.credits] for row in shown.members]),
        ("Credits spent per key", ["key", "whose", "tasks charged", "credits"],
         [[row.name, row.detail, row.tasks, row.credits] for row in shown.keys]),
        ("Top failure reasons", ["reason", "sentence key", "failed tasks"],
         [[row.text, row.key, row.tasks] for row in shown.reasons]),
    ]
    for number, (title, header, rows) in enumerate(sections):
        if number:
            yield []
        yield [title]
        yield header
        yield from rows


def _cell(value):
    """A spreadsheet must not run a key's label as a formula (``=HYPERLINK(…)``)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
