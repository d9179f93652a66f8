"""GET /team/audit/ and /team/audit.csv (team.audit): the task event log and the team's audit events as one
list for staff, newest first, filtered by member, task, kind and dates, paged by keyset, exported as CSV."""

import csv
import html
import io
import re
from datetime import datetime

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from modify.models import ModifyTask, TaskEvent
from modify.states import Actor
from team.models import AuditEvent
from tests.factories import make_key, make_member, make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
ROW = re.compile(r'<tr id="event-(task|team)-(\d+)"[^>]*data-when="([^"]+)" data-source="\w+" data-kind="([\w-]+)">')
SECRET = "kie-SECRET-distinctive-9f8e7d6c5b4a"


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def at(day, hour=12, minute=0):
    return timezone.make_aware(datetime(2024, 5, day, hour, minute))


def moved(event, when):
    """``event`` as if it had happened at ``when`` (test-only: events are never edited)."""
    type(event).objects.filter(pk=event.pk).update(created_at=when)
    event.refresh_from_db()
    return event


def task_events(task):
    return list(task.events.all())


def listing(client, **params):
    response = client.get("/team/audit/", params)
    assert response.status_code == 200
    return response.content.decode()


def rows_of(page):
    """``(source, id)`` of each row shown, in order."""
    return [(source, int(pk)) for source, pk, _, _ in ROW.findall(page)]


def older_link(page):
    found = re.search(r'<a href="([^"]+)" id="older"', page)
    return html.unescape(found.group(1)) if found else None


def errors_of(page):
    return [html.unescape(e) for e in re.findall(r'<p class="error">([^<]+)</p>', page)]


def text_of(page):
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def csv_rows(response):
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- Who may look ------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/team/audit/", "/team/audit.csv"])
def test_staff_see_it_members_get_403_and_visitors_go_to_sign_in(client, member, staff, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(member)
    assert client.get(url).status_code == 403
    client.force_login(staff)
    assert client.get(url).status_code == 200


# --- What a row says ------------------------------------------------------------------------------------

def test_both_logs_in_one_list_newest_first_with_who_what_and_which_task_or_key(staff_client, staff, member):
    task = make_task(member, prompt="turn the beach into snow")
    created = moved(task_events(task)[0], at(1, 9))
    key = make_key("Team key", secret="team-secret-abcd", created_by=staff)
    added = moved(AuditEvent.log("key_added", by=staff, api_key=key, detail="checked: 500 credits"), at(1, 10))
    checked = moved(task.record("checked", actor=Actor.STAFF, by=staff, detail="successFlag 0 (generating)"), at(1, 11))
    quota = moved(AuditEvent.log("quota_changed", by=staff, member=member, detail="tasks per day: 5"), at(1, 12))

    page = listing(staff_client)
    assert rows_of(page) == [("team", quota.pk), ("task", checked.pk), ("team", added.pk), ("task", created.pk)]
    row = {source_pk: chunk for source_pk, chunk in zip(rows_of(page), re.split(r'<tr id="event-', page)[1:])}
    checked_row = text_of(row[("task", checked.pk)])
    assert "Staff · sam" in checked_row and "Staff asked the provider: successFlag 0 (generating)" in checked_row
    assert f'href="/tasks/{task.pk}/"' in row[("task", checked.pk)] and "“turn the beach into snow”" in checked_row
    assert "of maria" in checked_row
    assert "Member · maria" in text_of(row[("task", created.pk)]) and "Created" in text_of(row[("task", created.pk)])
    added_row = text_of(row[("team", added.pk)])
    assert "Key added: checked: 500 credits" in added_row and "Key Team key ••••abcd" in added_row
    assert "Quota changed: tasks per day: 5" in text_of(row[("team", quota.pk)])
    assert "Member maria" in text_of(row[("team", quota.pk)])
    assert 'id="older"' not in page


def test_the_kind_select_offers_task_steps_and_team_kinds_logged_so_far(staff_client, staff):
    AuditEvent.log("budget_reviewed", by=staff)
    page = listing(staff_client)
    select = re.search(r'<select name="kind".*?</select>', page, re.S).group()
    assert '<optgroup label="Task steps">' in select and '<optgroup label="Team account">' in select
    for kind in ("created", "callback_rejected", "poll", "key_added", "invitation_sent", "budget_reviewed"):
        assert f'<option value="{kind}"' in select


# --- Filters --------------------------------------------------------------------------------------------

def test_member_filter_keeps_events_by_them_about_them_and_on_their_tasks(staff_client, staff, member, other):
    mine = make_task(member)
    theirs = make_task(other)
    on_mine = mine.record("checked", actor=Actor.STAFF, by=staff)
    by_me = AuditEvent.log("password_changed", by=member, member=member)
    about_me = AuditEvent.log("quota_changed", by=staff, member=member)
    my_key = make_key("Maria's key", owner=member, secret=SECRET, created_by=member)
    my_key_event = AuditEvent.log("key_revoked", by=staff, api_key=my_key)
    AuditEvent.log("quota_changed", by=staff, member=other)
    AuditEvent.log("key_added", by=staff)
    theirs.record("checked", actor=Actor.STAFF, by=staff)

    shown = set(rows_of(listing(staff_client, member="maria")))
    expected = {("task", e.pk) for e in task_events(mine)} | {
        ("team", by_me.pk), ("team", about_me.pk), ("team", my_key_event.pk)}
    assert ("task", on_mine.pk) in expected
    assert shown == expected
    assert not {("task", e.pk) for e in task_events(theirs)} & shown


def test_task_filter_keeps_that_tasks_events_only(staff_client, staff, member):
    task = make_task(member, S.GENERATING)
    make_task(member)
    AuditEvent.log("quota_changed", by=staff, member=member)
    expected = [("task", e.pk) for e in reversed(task_events(task))]
    assert len(expected) >= 4  # created, claim, generate_sent, accepted
    assert rows_of(listing(staff_client, task=str(task.pk))) == expected
    # Pasting the task page's address works as well.
    assert rows_of(listing(staff_client, task=f"http://testserver/tasks/{task.pk}/")) == expected


def test_kind_filter_narrows_both_logs(staff_client, staff, member):
    first, second = make_task(member), make_task(member, S.GENERATING)
    added = AuditEvent.log("key_added", by=staff)
    AuditEvent.log("quota_changed", by=staff, member=member)
    created = [e.pk for t in (second, first) for e in task_events(t) if e.kind == "created"]
    assert rows_of(listing(staff_client, kind="created")) == [("task", pk) for pk in created]
    assert rows_of(listing(staff_client, kind="key_added")) == [("team", added.pk)]


def test_date_filters_include_both_whole_days(staff_client, staff, member):
    task = make_task(member)
    before = moved(task_events(task)[0], at(1, 23, 59))
    first_day = moved(AuditEvent.log("key_added", by=staff), at(2, 0, 0))
    second_day = moved(task.record("checked", actor=Actor.STAFF, by=staff), at(3, 23, 59))
    after = moved(AuditEvent.log("key_revoked", by=staff), at(4, 0, 0))

    assert rows_of(listing(staff_client, since="2024-05-02", until="2024-05-03")) == [
        ("task", second_day.pk), ("team", first_day.pk)]
    assert rows_of(listing(staff_client, since="2024-05-03")) == [("team", after.pk), ("task", second_day.pk)]
    assert rows_of(listing(staff_client, until="2024-05-01")) == [("task", before.pk)]


@pytest.mark.parametrize("params, message", [
    ({"member": "nobody"}, "There is no member named “nobody”."),
    ({"task": "not-a-task"}, "A task id looks like"),
    ({"since": "2024-05-03", "until": "2024-05-02"}, "“To” is before “From”."),
    ({"since": "3 May"}, "Enter a valid date."),
    ({"kind": "made_up"}, "Select a valid choice."),
    ({"before": "yesterday"}, "That “Older” link is broken"),
])
def test_bad_filters_say_what_is_wrong_and_list_nothing(staff_client, member, params, message):
    make_task(member)
    page = listing(staff_client, **params)
    assert any(error.startswith(message) for error in errors_of(page)), errors_of(page)
    assert rows_of(page) == [] and "Fix the filters above" in page
    response = staff_client.get("/team/audit.csv", params)
    assert response.status_code == 400 and message in response.content.decode()


# --- Keyset pages --------------------------------------------------------------------------------------

def same_moment_events(staff, members, count=60):
    """``count`` task events and ``count`` team events, all at one instant: only the ids tell them apart."""
    moment = at(10)
    tasks = [make_task(m) for m in members]
    TaskEvent.objects.bulk_create([TaskEvent(task=tasks[i % len(tasks)], kind="poll", actor=Actor.SYSTEM,
                                             detail=f"poll {i}", created_at=moment) for i in range(count - len(tasks))])
    TaskEvent.objects.filter(task__in=tasks).update(created_at=moment)
    AuditEvent.objects.bulk_create(AuditEvent(kind="quota_changed", actor=Actor.STAFF, actor_user=staff,
                                              member=members[i % len(members)], created_at=moment) for i in range(count))
    everything = [("task", pk) for pk in TaskEvent.objects.values_list("pk", flat=True)]
    return everything + [("team", pk) for pk in AuditEvent.objects.values_list("pk", flat=True)]


def walk(client, url):
    """Every page from ``url`` on, following "Older →"; the rows of each."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        page = response.content.decode()
        pages.append(rows_of(page))
        url = older_link(page)
    return pages


def test_keyset_pages_neither_repeat_nor_skip_rows_at_one_instant(staff_client, staff, member, other):
    everything = same_moment_events(staff, [member, other])
    assert len(everything) == 120
    pages = walk(staff_client, "/team/audit/")
    assert [len(p) for p in pages] == [50, 50, 20]
    seen = [row for p in pages for row in p]
    assert len(seen) == len(set(seen)) == 120 and set(seen) == set(everything)
    # One order throughout: at one instant, team rows (by id, newest first), then task rows.
    assert seen == sorted(everything, key=lambda row: (row[0], row[1]), reverse=True)


def test_older_pages_keep_the_filters(staff_client, staff, member, other):
    same_moment_events(staff, [member, other])
    pages = walk(staff_client, "/team/audit/?member=maria&kind=quota_changed")
    seen = [row for p in pages for row in p]
    expected = AuditEvent.objects.filter(member=member, kind="quota_changed").values_list("pk", flat=True)
    assert len(pages) == 1 and sorted(seen) == sorted(("team", pk) for pk in expected) and len(seen) == 30
    pages = walk(staff_client, "/team/audit/?kind=poll")
    assert [len(p) for p in pages] == [50, 8]
    assert all(kind == "poll" for p in pages for kind in [TaskEvent.objects.get(pk=pk).kind for _, pk in p])


def test_a_deep_page_is_a_keyset_query_not_an_offset(staff_client, staff, member, other):
    same_moment_events(staff, [member, other])
    second = older_link(listing(staff_client))
    with CaptureQueriesContext(connection) as queries:
        assert staff_client.get(second).status_code == 200
    reads = [q["sql"] for q in queries if "_taskevent" in q["sql"] or "team_auditevent" in q["sql"]]
    assert reads and not any("OFFSET" in sql.upper() for sql in reads)
    assert sum("LIMIT 51" in sql for sql in reads) == 2


def test_the_number_of_queries_does_not_grow_with_the_events(staff_client, staff):
    members = [make_member(f"member{i}") for i in range(5)]
    keys = [make_key(f"key {i}", owner=m, secret=f"secret-{i:04d}", created_by=m) for i, m in enumerate(members)]

    def add(count):
        for i in range(count):
            m = members[i % 5]
            if i % 2:
                make_task(m, prompt=f"task {i}")
            else:
                AuditEvent.log("key_added", by=m, member=m, api_key=keys[i % 5])

    def queries_for(**params):
        with CaptureQueriesContext(connection) as queries:
            page = listing(staff_client, **params)
        return len(queries), len(rows_of(page))

    add(10)
    few = queries_for(), queries_for(member="member1")
    add(190)
    many = queries_for(), queries_for(member="member1")
    assert [rows for _, rows in few] == [10, 2] and [rows for _, rows in many] == [50, 40]
    assert [n for n, _ in few] == [n for n, _ in many]
    assert max(n for n, _ in many) <= 8


# --- CSV ---------------------------------------------------------------------------------------------------

def test_csv_streams_every_matching_row_in_the_lists_order(staff_client, staff, member, other):
    same_moment_events(staff, [member, other])
    task = make_task(member, prompt="later")
    AuditEvent.log("key_added", by=staff)  # not about maria
    response = staff_client.get("/team/audit.csv", {"member": "maria"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    lines = csv_rows(response)
    assert lines[0] == ["time", "source", "kind", "actor", "user", "task", "member", "key", "detail"]
    body = lines[1:]

    listed = []
    for rows in walk(staff_client, "/team/audit/?member=maria"):
        listed += rows
    page = listing(staff_client, member="maria")
    assert len(body) == len(listed) > 50  # the whole result, not one page
    first_page = [(when, source, kind) for source, _, when, kind in ROW.findall(page)]
    assert [(time, source, kind) for time, source, kind, *_ in body[:50]] == first_page
    created = next(line for line in body if line[2] == "created")
    assert created[3:7] == ["Member", "maria", str(task.pk), "maria"]
    assert datetime.fromisoformat(created[0]) == task_events(task)[0].created_at


def test_csv_cells_never_start_a_spreadsheet_formula(staff_client, staff):
    AuditEvent.log("quota_changed", by=staff, detail='=HYPERLINK("https://evil.example","click")')
    line = csv_rows(staff_client.get("/team/audit.csv"))[1]
    assert line[8] == "'=HYPERLINK(\"https://evil.example\",\"click\")"


def test_htmx_gets_the_filters_and_rows_without_the_page_around_them(staff_client, staff):
    event = AuditEvent.log("key_added", by=staff)
    response = staff_client.get("/team/audit/", {"kind": "key_added"}, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="audit" class="audit-page">') and "<html" not in page
    assert rows_of(page) == [("team", event.pk)] and 'name="kind"' in page


# --- Never a secret ----------------------------------------------------------------------------------------

def test_neither_a_key_nor_a_callback_token_appears_in_the_list_or_the_csv(staff_client, client, staff, member):
    key = make_key("Maria's key", owner=member, secret=SECRET, created_by=member)
    AuditEvent.log("key_added", by=member, member=member, api_key=key, detail="500 credits left")
    task = make_task(member, S.GENERATING, api_key=key)
    token = task.callback_token
    assert client.post(f"/callbacks/{token}/", data="{}", content_type="application/json").status_code == 400
    task.record("checked", actor=Actor.STAFF, by=staff, detail=f"called back at https://x.example/callbacks/{token}/")
    assert task.events.filter(kind="callback_rejected").exists()

    page = listing(staff_client)
    exported = b"".join(staff_client.get("/team/audit.csv").streaming_content).decode()
    for shown in (page, exported):
        assert SECRET not in shown and SECRET[-12:] not in shown
        assert token not in shown
        assert "Maria's key ••••5b4a" in html.unescape(shown)
        assert "callback_rejected" in shown


# --- In a browser ---------------------------------------------------------------------------------------

def browser_as(browser, app, user, **context):
    from django.test import Client

    session = Client()
    session.force_login(user)
    context = browser.new_context(base_url=app.url, **context)
    context.add_cookies([{"name": "sessionid", "value": session.cookies["sessionid"].value, "url": app.url}])
    return context


@pytest.mark.browser
def test_filtering_and_paging_in_a_browser_and_the_list_fits_a_phone(app, browser, staff, member):
    from playwright.sync_api import expect

    task = make_task(member, S.FAILED, prompt="a rather long prompt about a snowy winter night " * 4,
                     error="The result could not be archived: https://files.example.com/" + "very-long-path/" * 8)
    for number in range(60):
        AuditEvent.log("quota_changed", by=staff, member=member, detail=f"tasks per day: {number}")
    AuditEvent.log("key_added", by=staff, detail="a-very-long-unbroken-label-" * 4)

    phone = browser_as(browser, app, staff, viewport={"width": 375, "height": 740})
    page = phone.new_page()
    page.goto("/team/audit/")
    assert page.locator("tr.event").count() == 50
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    phone.close()

    desk = browser_as(browser, app, staff, viewport={"width": 1280, "height": 900})
    page = desk.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/team/audit/")
    page.get_by_label("Kind").select_option("quota_changed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"kind=quota_changed"))
    expect(page.locator("tr.event")).to_have_count(50)
    assert set(page.locator("tr.event").evaluate_all("rows => rows.map(r => r.dataset.kind)")) == {"quota_changed"}
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("tr.event")).to_have_count(10)
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)
    page.get_by_label("Task").fill(str(task.pk))
    page.get_by_label("Kind").select_option("")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr.event")).to_have_count(task.events.count())
    assert problems == []
    desk.close()
