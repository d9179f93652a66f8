"""GET /team/stats/ and /team/stats.csv: staff's figures for a period, as charts with tables, and as CSV.

The figures themselves are checked by hand in test_figures.py; here: who may
see them, that the page shows them (chart and table), that the period form
filters and refuses bad dates, that the CSV carries the same numbers, and
that the number of queries does not grow with the tasks.
"""

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from modify import failures
from modify.models import ModifyTask
from tests.factories import backdate, make_key, make_member, make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
PAGE, CSV = "/team/stats/", "/team/stats.csv"
HTMX = {"HTTP_HX_REQUEST": "true"}
SECRET = "sk-stats-view-0123456789-wxyz"
GENERATION_FAILED = "The provider could not generate this video (…). Try a different prompt or video."


def task(owner, state, days_ago, *, took=None, credits=None, **make):
    """A task created ``days_ago`` days ago at noon; ``took``: seconds from submit to result."""
    created = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)
    made = make_task(owner, state, **make)
    moments = {"created_at": created, "credits": credits}
    if took is not None:
        moments.update(submitting_at=created, finished_at=created + timedelta(seconds=took))
    return backdate(made, **moments)


@pytest.fixture
def tasks(settings, member, other):
    """In the last 30 days: 2 succeeded (30 s and 90 s), 1 failed, 1 in flight; one more failure 40 days ago."""
    settings.TIME_ZONE = "UTC"
    team = make_key("Team key", secret=SECRET)
    task(member, S.SUCCEEDED, 0, took=90, credits=10, api_key=team)
    task(other, S.FAILED, 0, credits=10, api_key=team, failed_stage=S.GENERATING,
         error=failures.sentence("generation_failed", reason="refused"))
    task(member, S.SUCCEEDED, 1, took=30, credits=25)  # the environment's key
    task(other, S.QUEUED, 1)
    backdate(task(member, S.FAILED, 40), failure_key="source_unusable")
    return team


def day(days_ago):
    return (timezone.localdate() - timedelta(days=days_ago)).isoformat()


def texts(row):
    """The text of each cell of a table row's HTML."""
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]


def cells(page, row_id):
    """The texts of the cells of the table row ``row_id``."""
    return texts(re.search(rf'<tr id="{row_id}">(.*?)</tr>', page, re.S).group(1))


def table(page, table_id):
    """The body rows of the table ``table_id``, as lists of cell texts."""
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [texts(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def sections(response):
    """The CSV as ``{title: [header, *rows]}``."""
    found, current = {}, None
    for row in csv.reader(io.StringIO(response.content.decode())):
        if not row:
            current = None
        elif current is None:
            current = found.setdefault(row[0], [])
        else:
            current.append(row)
    return found


@pytest.mark.parametrize("url", [PAGE, CSV])
def test_staff_only(client, member, staff, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(member)
    assert client.get(url).status_code == 403
    client.force_login(staff)
    assert client.get(url).status_code == 200


def test_the_page_shows_the_last_30_days_as_charts_and_tables(client, staff, tasks):
    client.force_login(staff)
    page = client.get(PAGE).content.decode()
    assert page.count("<svg") == 6  # one chart per figure
    assert 'role="img" aria-label="Tasks per day by outcome"' in page
    assert cells(page, f"day-{day(0)}")[1:] == ["1", "1", "0", "2"]  # succeeded, failed, in flight, total
    assert cells(page, f"day-{day(1)}")[1:] == ["1", "0", "1", "2"]
    assert cells(page, f"day-{day(29)}")[1:] == ["0", "0", "0", "0"]
    assert f'id="day-{day(30)}"' not in page and f'id="day-{day(40)}"' not in page
    assert cells(page, "day-total") == ["All days", "2", "1", "1", "4"]
    assert cells(page, "success-rate-row") == ["Success rate", "66.7 %"]
    assert cells(page, "median-row") == ["Median", "60.0 s", "1 min"]  # of 30 s and 90 s
    assert cells(page, "p95-row") == ["95th percentile", "87.0 s", "1 min 27 s"]  # 30 + 0.95 × 60
    assert table(page, "members") == [["maria", "2", "35"], ["ivan", "1", "10"]]
    assert table(page, "keys") == [["Environment/sandbox key (environment)", "1", "25"],
                                   [f"Team key (••••{SECRET[-4:]}) (team)", "2", "20"]]
    assert table(page, "reasons") == [[GENERATION_FAILED, "1"]]
    assert "Last 30 days</a>" in page and 'aria-current="page">Last 30 days' in page


def test_the_period_form_filters(client, staff, tasks):
    client.force_login(staff)
    page = client.get(PAGE, {"from": day(45), "to": day(35)}).content.decode()
    assert cells(page, "day-total") == ["All days", "0", "1", "0", "1"]
    assert cells(page, f"day-{day(40)}")[1:] == ["0", "1", "0", "1"]
    assert table(page, "reasons") == [["The video URL cannot be used: …", "1"]]
    assert "No task of this period has succeeded yet." in page
    assert "No credits were spent on the tasks of this period." in page
    assert f'value="{day(45)}"' in page and f'value="{day(35)}"' in page


def test_presets_link_the_last_7_30_and_90_days(client, staff):
    client.force_login(staff)
    page = client.get(PAGE, {"from": day(6), "to": day(0)}).content.decode()
    for days in (7, 30, 90):
        assert f'href="/team/stats/?from={day(days - 1)}&amp;to={day(0)}"' in page
    assert 'aria-current="page">Last 7 days' in page


def test_only_a_start_runs_to_today(client, staff, tasks):
    client.force_login(staff)
    page = client.get(PAGE, {"from": day(1)}).content.decode()
    assert cells(page, "day-total") == ["All days", "2", "1", "1", "4"]
    assert f'id="day-{day(2)}"' not in page


@pytest.mark.parametrize("query, message", [
    ({"from": "2025-02-30"}, "Enter the first day as a date, such as 2025-01-31."),
    ({"to": "yesterday"}, "Enter the last day as a date, such as 2025-01-31."),
    ({"from": "2025-03-10", "to": "2025-03-01"}, "The first day (2025-03-10) is after the last day (2025-03-01)."),
    ({"from": "2023-01-01", "to": "2025-01-01"}, "Choose at most 366 days; this period has 732."),
    ({"to": "0001-01-05"}, "Choose a last day between 2000 and 2999."),
    ({"from": "9999-12-31", "to": "9999-12-31"}, "Choose a first day between 2000 and 2999."),
])
def test_bad_dates_say_what_is_wrong(client, staff, tasks, query, message):
    client.force_login(staff)
    response = client.get(PAGE, query)
    assert response.status_code == 400
    page = response.content.decode()
    assert html.escape(message) in page
    assert "<svg" not in page and 'id="per-day"' not in page
    response = client.get(CSV, query)
    assert response.status_code == 400 and message in response.content.decode()


def test_htmx_gets_the_figures_alone_without_any_script(client, staff, tasks):
    client.force_login(staff)
    response = client.get(PAGE, {"from": day(6), "to": day(0)}, **HTMX)
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<div id="stats" class="stats">')
    assert "<html" not in fragment and "<svg" in fragment
    assert "<script" not in fragment  # the charts need no JavaScript


def test_the_csv_has_the_same_numbers_as_the_page(client, staff, tasks):
    client.force_login(staff)
    page = client.get(PAGE).content.decode()
    response = client.get(CSV)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="lumaweb-stats-{day(29)}-to-{day(0)}.csv"'
    found = sections(response)
    assert found["Period"] == [["from", "to", "time zone"], [day(29), day(0), "UTC"]]
    summary = dict((name, value) for name, value, _unit in found["Summary"][1:])
    assert summary == {"Tasks": "4", "Succeeded": "2", "Failed": "1", "In flight": "1", "Success rate": "66.7",
                       "Median time from submit to result": "60.0",
                       "95th percentile time from submit to result": "87.0", "Credits spent": "45"}
    assert f"{summary['Success rate']} %" in cells(page, "success-rate-row")
    per_day = found["Tasks per day (by the day they were created)"]
    assert per_day[0] == ["day", "succeeded", "failed", "in flight", "total"]
    assert len(per_day) == 31
    for date, *counts in per_day[1:]:
        assert cells(page, f"day-{date}")[1:] == counts
    assert found["Credits spent per member"][1:] == table(page, "members")
    assert [[f"{key} ({whose})", tasks, credits] for key, whose, tasks, credits in found["Credits spent per key"][1:]] \
        == table(page, "keys")
    assert found["Top failure reasons"][1:] == [[GENERATION_FAILED, "generation_failed", "1"]]


def test_a_key_label_is_shown_as_text_never_run(client, staff, member):
    """A member names their key: on the page it is text, in a spreadsheet not a formula; the secret never shows."""
    key = make_key('=HYPERLINK("https://evil.example")<script>alert(1)</script>', owner=member, secret=SECRET, created_by=member)
    task(member, S.SUCCEEDED, 0, took=10, credits=10, api_key=key)
    client.force_login(staff)
    page = client.get(PAGE).content.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    exported = client.get(CSV).content.decode()
    assert sections(client.get(CSV))["Credits spent per key"][1][0].startswith("'=HYPERLINK")
    assert SECRET not in page and SECRET not in exported


def test_the_number_of_queries_does_not_grow_with_the_tasks(client, staff, member):
    """5 tasks of 1 member on 1 key, then 500 of 20 members on 6 keys over 30 days, failing 12 ways."""
    states = [S.QUEUED, S.FAILED, S.GENERATING, S.SUCCEEDED]

    def add(count, members, keys):
        for n in range(count):
            state = states[n % len(states)]
            made = task(members[n % len(members)], state, n % 30, api_key=keys[n % len(keys)],
                        took=n if state == S.SUCCEEDED else None, credits=None if n % 7 == 0 else 10)
            if state == S.FAILED:
                backdate(made, failure_key=list(failures.SENTENCES)[n // 4 % 12])

    def queries(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    client.force_login(staff)
    add(5, [member], [None])
    few = queries(PAGE), queries(CSV)
    members = [member] + [make_member(f"member{n}") for n in range(19)]
    add(495, members, [None] + [make_key(f"Key {n}", owner=members[n], secret=SECRET, created_by=members[n]) for n in range(5)])
    many = queries(PAGE), queries(CSV)
    assert few == many
    assert many[1] == 4  # the CSV: the four figures (the session and the user come from the cache)
    page = client.get(PAGE).content.decode()
    assert len(table(page, "members")) == 20 and len(table(page, "keys")) == 6 and len(table(page, "reasons")) == 10
