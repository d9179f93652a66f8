"""Quotas (team.quotas, the studio's form, intake.accept, the Quota admin): a submission over a
limit (tasks per day, tasks in flight, credits per month) is refused before anything is stored
or sent, saying which limit and when it resets; it is allowed again once the period resets. A
member's own limits beat the team's default. Staff set both in the admin, and each change is in
the audit log."""

import html
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from modify import intake
from modify.models import ModifyTask
from team import quotas
from team.models import AuditEvent, Quota
from team.quotas import QuotaExceeded
from tests.factories import backdate, make_task

S = ModifyTask.State
HTMX = {"HTTP_HX_REQUEST": "true"}
# A Saturday afternoon in March, in the test's time zone (UTC).
NOW = datetime(2026, 3, 14, 18, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc_and_ten_credits_a_task(settings):
    settings.TIME_ZONE = "UTC"
    settings.LUMA_CREDITS_PER_TASK = 10
    settings.SANDBOX_TASK_COST = 10
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # the request path must not reach a provider


@pytest.fixture
def sent(monkeypatch):
    """The tasks handed to ``modify.enqueue.send_to_provider`` (nothing is really enqueued)."""
    tasks = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", tasks.append)
    return tasks


def team_default(**limits):
    return Quota.objects.create(member=None, **limits)


def refusal(member, now=NOW):
    with pytest.raises(QuotaExceeded) as refused:
        quotas.check(member, now=now)
    return str(refused.value)


def stored_sources():
    return {path for path in Path(settings.MEDIA_ROOT).glob("sources/**/*") if path.is_file()}


def form_error(page):
    """The error shown above the form's fields."""
    head = page.split('<div class="field')[0]
    found = re.search(r'<div class="error" role="alert">(.*?)</div>', head, re.S)
    return html.unescape(found.group(1)) if found else ""


def upload(path):
    return SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")


# --- Each limit, and its reset ----------------------------------------------------------------------


@pytest.mark.django_db
def test_tasks_per_day_refuse_at_the_limit_saying_when_it_resets(member):
    team_default(tasks_per_day=2)
    make_task(member, S.SUCCEEDED, created_at=NOW - timedelta(hours=3))
    quotas.check(member, now=NOW)  # one of two: allowed
    make_task(member, S.FAILED, created_at=NOW - timedelta(hours=1))  # finished or not, a submission counts
    assert refusal(member) == (
        "You have reached your limit of 2 tasks per day; it resets on 15 Mar at 00:00 (UTC), in 5 h 30 min."
    )


@pytest.mark.django_db
def test_tasks_per_day_allow_again_after_midnight(member):
    team_default(tasks_per_day=1)
    task = make_task(member, S.SUCCEEDED, created_at=NOW - timedelta(hours=1))
    assert "1 task per day" in refusal(member)
    quotas.check(member, now=datetime(2026, 3, 15, 0, 1, tzinfo=UTC))  # the next day
    backdate(task, created_at=NOW - timedelta(days=1))
    quotas.check(member, now=NOW)  # yesterday's task no longer counts today


@pytest.mark.django_db
def test_tasks_in_flight_count_only_live_tasks(member):
    team_default(tasks_in_flight=2)
    make_task(member, S.SUCCEEDED)
    make_task(member, S.FAILED)
    make_task(member, S.GENERATING)
    quotas.check(member)  # one live task of two; finished ones do not count
    archiving = make_task(member, S.ARCHIVING)
    assert refusal(member, now=None) == (
        "You have reached your limit of 2 tasks in flight; it frees up when one of them finishes."
    )
    assert archiving.fail("The provider gave up.")
    quotas.check(member)  # one finished: a place is free again


@pytest.mark.django_db
@pytest.mark.parametrize("state", [S.QUEUED, S.SUBMITTING, S.UNCONFIRMED, S.GENERATING, S.ARCHIVING])
def test_every_live_state_is_in_flight(member, state):
    team_default(tasks_in_flight=1)
    make_task(member, state)
    assert "limit of 1 task in flight" in refusal(member, now=None)


@pytest.mark.django_db
def test_credits_per_month_refuse_what_would_go_past_the_limit(member):
    team_default(credits_per_month=25)
    for _ in range(2):
        backdate(make_task(member, S.SUCCEEDED), generating_at=NOW - timedelta(days=2))  # 10 credits each
    assert refusal(member) == (
        "This task would take you past your limit of 25 credits per month (20 spent); "
        "it resets on 1 Apr at 00:00 (UTC), in 17 days."
    )


@pytest.mark.django_db
def test_credits_per_month_allow_again_next_month(member):
    team_default(credits_per_month=20)
    first, second = make_task(member, S.SUCCEEDED), make_task(member, S.SUCCEEDED)
    backdate(first, generating_at=NOW - timedelta(days=1))
    backdate(second, generating_at=NOW - timedelta(days=1))
    assert "limit of 20 credits per month" in refusal(member)
    quotas.check(member, now=datetime(2026, 4, 1, 0, 1, tzinfo=UTC))  # a new month
    backdate(second, generating_at=datetime(2026, 2, 27, 12, tzinfo=UTC))
    quotas.check(member, now=NOW)  # spent last month: 10 of 20 this month


@pytest.mark.django_db
def test_credits_per_month_count_tasks_not_billed_yet(member):
    """Queued tasks have cost nothing yet, but will: a burst cannot overdraw the month."""
    team_default(credits_per_month=30)
    make_task(member, S.QUEUED)
    make_task(member, S.SUBMITTING)
    quotas.check(member, now=None)  # 20 committed, one more makes 30
    make_task(member, S.QUEUED)
    assert "(0 spent, 30 more on tasks not sent yet)" in refusal(member, now=None)


@pytest.mark.django_db
def test_no_quota_means_no_limit(member):
    for _ in range(3):
        make_task(member, S.QUEUED)
    quotas.check(member)



@pytest.mark.django_db
@pytest.mark.parametrize("limits, named", [
    ({"tasks_per_day": 0}, "tasks per day is 0"),
    ({"tasks_in_flight": 0}, "tasks in flight is 0"),
    ({"credits_per_month": 9}, "credits per month is 9"),  # less than one task's 10
])
def test_a_limit_that_leaves_no_room_says_to_ask_staff_not_to_wait(member, limits, named):
    team_default(**limits)
    assert refusal(member) == f"Your limit of {named}, which leaves no room for a task; ask staff to raise it."


# --- Whose limits ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_members_override_beats_the_team_default(member, other):
    team_default(tasks_in_flight=1, tasks_per_day=5)
    Quota.objects.create(member=member, tasks_in_flight=3)
    for owner in (member, other):
        make_task(owner, S.QUEUED)
    quotas.check(member, now=None)  # maria may have three in flight
    assert "limit of 1 task in flight" in refusal(other, now=None)  # ivan has the team's one
    assert quotas.limits_for(member) == quotas.Limits(tasks_per_day=5, tasks_in_flight=3)  # empty: the default


@pytest.mark.django_db
def test_an_override_may_also_be_stricter(member, other):
    team_default(tasks_per_day=10)
    Quota.objects.create(member=member, tasks_per_day=1)
    make_task(member, S.SUCCEEDED, created_at=NOW - timedelta(hours=1))
    make_task(other, S.SUCCEEDED, created_at=NOW - timedelta(hours=1))
    assert "limit of 1 task per day" in refusal(member)
    quotas.check(other, now=NOW)


@pytest.mark.django_db
def test_another_members_tasks_do_not_count(member, other):
    team_default(tasks_in_flight=1)
    make_task(other, S.GENERATING)
    quotas.check(member)


# --- In the studio: refused before anything is stored or sent -----------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_submission_over_a_limit_is_refused_and_nothing_is_kept(signed_in, member, clip, sent, htmx):
    team_default(tasks_in_flight=1)
    make_task(member, S.GENERATING, prompt="the one in flight")
    before = stored_sources()
    response = signed_in.post("/tasks/", {"video": upload(clip(seconds=1)), "prompt": "a snowy winter night"},
                              **(HTMX if htmx else {}))
    assert response.status_code == (200 if htmx else 422)
    page = response.content.decode()
    assert form_error(page) == "You have reached your limit of 1 task in flight; it frees up when one of them finishes."
    assert list(ModifyTask.objects.values_list("prompt", flat=True)) == ["the one in flight"]
    assert stored_sources() == before
    assert sent == []


@pytest.mark.django_db
def test_the_daily_limit_in_the_studio_names_the_reset(signed_in, member, sent):
    team_default(tasks_per_day=1)
    make_task(member, S.SUCCEEDED)
    response = signed_in.post("/tasks/", {"video_url": "https://example.com/clip.mp4", "prompt": "a snowy night"})
    assert response.status_code == 422
    assert re.fullmatch(r"You have reached your limit of 1 task per day; it resets on \d+ \w{3} at 00:00 \(UTC\), "
                        r"in .+\.", form_error(response.content.decode()))
    assert ModifyTask.objects.count() == 1 and sent == []


@pytest.mark.django_db
def test_under_the_limit_the_task_is_created(signed_in, member, sent, django_capture_on_commit_callbacks):
    team_default(tasks_in_flight=2, tasks_per_day=2, credits_per_month=100)
    make_task(member, S.GENERATING)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/tasks/", {"video_url": "https://example.com/clip.mp4", "prompt": "a snowy night"})
    assert response.status_code == 302
    assert ModifyTask.objects.filter(owner=member).count() == 2
    assert len(sent) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_limit_reached_after_the_form_checked_is_refused_when_the_task_is_created(
        signed_in, member, clip, sent, monkeypatch, htmx):
    """Another submission of the member got in between the form's check and the task's creation:
    the check inside the creating transaction refuses, and the stored upload is deleted again."""
    team_default(tasks_in_flight=1)
    monkeypatch.setattr("modify.forms.TaskForm._check_quota", lambda form: None)  # the form saw none in flight
    make_task(member, S.QUEUED, prompt="the other submission")
    before = stored_sources()
    response = signed_in.post("/tasks/", {"video": upload(clip(seconds=1)), "prompt": "a snowy winter night"},
                              **(HTMX if htmx else {}))
    assert response.status_code == (200 if htmx else 422)
    assert "limit of 1 task in flight" in form_error(response.content.decode())
    assert list(ModifyTask.objects.values_list("prompt", flat=True)) == ["the other submission"]
    assert stored_sources() == before
    assert sent == []


@pytest.mark.django_db
def test_accept_refuses_over_a_limit_and_deletes_the_stored_source(member, clip, sent):
    team_default(tasks_per_day=1)
    make_task(member, S.FAILED)
    before = stored_sources()
    with open(clip(seconds=1), "rb") as fh, pytest.raises(QuotaExceeded, match="limit of 1 task per day"):
        intake.accept(member, "a snowy winter night", upload=File(fh, name="clip.mp4"))
    assert ModifyTask.objects.count() == 1
    assert stored_sources() == before
    assert sent == []


@pytest.mark.django_db(transaction=True)
def test_two_submissions_at_once_cannot_both_pass(member, monkeypatch, sent):
    """Both passed the form; the second to create its task waits for the first (the member's row is
    locked) and then sees it in flight, even when counting is slow."""
    team_default(tasks_in_flight=1)
    counted = quotas.usage

    def slow_usage(*args, **kwargs):
        figures = counted(*args, **kwargs)
        time.sleep(0.3)  # without the lock, the other request would count the same figures meanwhile
        return figures

    monkeypatch.setattr(quotas, "usage", slow_usage)
    outcomes = []

    def submit(prompt):
        try:
            intake.accept(member, prompt, url="https://example.com/clip.mp4")
            outcomes.append("created")
        except QuotaExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(f"submission {n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["created", "refused"]
    assert ModifyTask.objects.filter(owner=member).count() == 1


# --- The Quota admin ------------------------------------------------------------------------------------


@pytest.fixture
def admin(client, staff):
    """A test client signed in as ``staff`` (sam), who may manage quotas."""
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="team", codename__endswith="quota"))
    client.force_login(staff)
    return client


def quota_changes():
    return list(AuditEvent.objects.filter(kind="quota_changed").order_by("id").values_list(
        "actor", "actor_user__username", "member__username", "detail"))


@pytest.mark.django_db
def test_staff_set_the_team_default_and_it_is_logged(admin, member):
    response = admin.post("/admin/team/quota/add/", {"member": "", "tasks_per_day": "5", "tasks_in_flight": "2",
                                                     "credits_per_month": ""})
    assert response.status_code == 302
    assert quotas.limits_for(member) == quotas.Limits(tasks_per_day=5, tasks_in_flight=2)
    assert quota_changes() == [
        ("staff", "sam", None, "set the team's default: tasks per day 5, tasks in flight 2, credits per month no limit")]


@pytest.mark.django_db
def test_staff_override_a_member_and_each_change_says_what_changed(admin, member):
    team_default(tasks_per_day=5)
    response = admin.post("/admin/team/quota/add/", {"member": member.pk, "tasks_per_day": "20",
                                                     "tasks_in_flight": "", "credits_per_month": ""})
    assert response.status_code == 302
    quota = Quota.objects.get(member=member)
    admin.post(f"/admin/team/quota/{quota.pk}/change/", {"member": member.pk, "tasks_per_day": "",
                                                          "tasks_in_flight": "4", "credits_per_month": ""})
    admin.post(f"/admin/team/quota/{quota.pk}/change/", {"member": member.pk, "tasks_per_day": "",
                                                          "tasks_in_flight": "4", "credits_per_month": ""})  # no change
    assert quotas.limits_for(member) == quotas.Limits(tasks_per_day=5, tasks_in_flight=4)
    assert quota_changes() == [
        ("staff", "sam", "maria", "set maria: tasks per day 20, tasks in flight team default, credits per month team default"),
        ("staff", "sam", "maria", "maria: tasks per day: 20 → team default, tasks in flight: team default → 4"),
    ]


@pytest.mark.django_db
def test_removing_an_override_is_logged_and_the_default_applies_again(admin, member):
    team_default(tasks_in_flight=1)
    quota = Quota.objects.create(member=member, tasks_in_flight=9)
    response = admin.post(f"/admin/team/quota/{quota.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert quotas.limits_for(member).tasks_in_flight == 1
    assert quota_changes() == [("staff", "sam", "maria", "removed maria")]


@pytest.mark.django_db
def test_the_list_shows_each_member_and_their_three_limits(admin, member):
    team_default(tasks_per_day=5, credits_per_month=500)
    Quota.objects.create(member=member, tasks_in_flight=3)
    page = admin.get("/admin/team/quota/").content.decode()
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    rows = [re.sub(r"<[^>]+>", "|", row) for row in re.findall(r"<tr.*?</tr>", body, re.S)]
    cells = [[cell.strip() for cell in row.split("|") if cell.strip()] for row in rows]
    assert cells == [["Team default", "5", "no limit", "500"], ["maria", "team default", "3", "team default"]]


@pytest.mark.django_db
def test_a_second_team_default_or_a_second_row_for_a_member_is_refused(admin, member):
    team_default(tasks_per_day=5)
    Quota.objects.create(member=member, tasks_per_day=1)
    empty = {"tasks_per_day": "1", "tasks_in_flight": "", "credits_per_month": ""}
    response = admin.post("/admin/team/quota/add/", {"member": "", **empty})
    assert "There is already a team default quota: change that one instead." in response.content.decode()
    response = admin.post("/admin/team/quota/add/", {"member": member.pk, **empty})
    assert "maria already has a quota of their own: change that one instead." in response.content.decode()
    assert Quota.objects.count() == 2 and quota_changes() == []


@pytest.mark.django_db
def test_members_cannot_reach_the_quota_admin(signed_in):
    response = signed_in.get("/admin/team/quota/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

