"""The admin, as staff use it: API keys are write-only secrets, tasks can be overseen and stopped,
and what staff do to a task lands in its history as theirs."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from modify.models import ApiKey, ModifyTask
from modify.states import LIVE, Actor
from team.models import AuditEvent
from tests.factories import make_key, make_member, make_task

pytestmark = pytest.mark.django_db
SECRET = "kie-3f9a1c0d7be24e55a1c9d2f0e8b7a6c5"
S = ModifyTask.State


@pytest.fixture
def admin(client, staff):
    """A test client signed in as ``staff`` (sam), who may manage tasks, API keys and members."""
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["modify", "auth"]))
    client.force_login(staff)
    return client


def generating_with_key(owner, api_key, provider_task_id="p" * 32, **fields):
    """A generating task that spends ``api_key``, moved there the way sending does."""
    return make_task(owner, S.GENERATING, provider_task_id=provider_task_id, api_key=api_key, **fields)


def change_url(task):
    return f"/admin/modify/modifytask/{task.pk}/change/"


def change_form(admin, task, shared):
    """The task's change form as the browser would send it: its inline's management form,
    and ``shared`` (a checkbox: absent when unticked)."""
    page = admin.get(change_url(task))
    assert page.status_code == 200
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
    if shared:
        data["shared"] = "on"
    return data


# --- API keys ----------------------------------------------------------------------------------------


def test_keys_are_added_on_the_keys_page_not_in_the_admin(admin):
    """The Keys page checks a key with the provider before saving it; the admin has no way around that."""
    assert admin.get("/admin/modify/apikey/add/").status_code == 403
    assert admin.post("/admin/modify/apikey/add/", {"label": "Team key", "is_active": "on"}).status_code == 403
    assert not ApiKey.objects.exists()
    assert 'href="/keys/"' in admin.get("/admin/modify/apikey/").content.decode()


def test_closing_and_reopening_a_key_in_the_admin_is_logged(admin):
    key = make_key("Team key", secret=SECRET)
    admin.post(f"/admin/modify/apikey/{key.pk}/change/", {"label": "Team key"})
    key.refresh_from_db()
    assert not key.is_active and key.revoked_at is not None
    admin.post(f"/admin/modify/apikey/{key.pk}/change/", {"label": "Team key", "is_active": "on"})
    key.refresh_from_db()
    assert key.is_active and key.revoked_at is None
    assert [(e.kind, e.actor_user.get_username()) for e in AuditEvent.objects.order_by("created_at", "id")] == [
        ("key_revoked", "sam"), ("key_reopened", "sam")]
    assert key.secret == SECRET  # the secret stays what it was


def test_the_admin_pages_show_only_the_last_four_characters(admin, member):
    key = make_key("Maria's key", secret=SECRET, owner=member)
    pages = {
        "changelist": admin.get("/admin/modify/apikey/"),
        "change": admin.get(f"/admin/modify/apikey/{key.pk}/change/"),
        "delete": admin.get(f"/admin/modify/apikey/{key.pk}/delete/"),
        "history": admin.get(f"/admin/modify/apikey/{key.pk}/history/"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        page = response.content.decode()
        assert SECRET not in page, name
        assert SECRET[:-4] not in page, name
        assert key.secret_encrypted not in page, name
    assert f"••••{SECRET[-4:]}" in pages["changelist"].content.decode()
    assert f"••••{SECRET[-4:]}" in pages["change"].content.decode()


def test_renaming_a_key_keeps_its_secret(admin):
    key = make_key("Team key", secret=SECRET)
    response = admin.post(f"/admin/modify/apikey/{key.pk}/change/", {"label": "Team key (2025)", "is_active": "on"})
    assert response.status_code == 302, response.content.decode()[:3000]
    key.refresh_from_db()
    assert (key.label, key.secret, key.last4) == ("Team key (2025)", SECRET, SECRET[-4:])
    assert not AuditEvent.objects.exists()


def test_for_user_prefers_the_users_own_active_key(member, other):
    team = make_key("Team", secret="team-secret-0001")
    assert ApiKey.for_user(member) == team
    make_key("Ivan's", secret="ivan-secret-0002", owner=other)
    assert ApiKey.for_user(member) == team
    own = make_key("Maria's", secret="maria-secret-0003", owner=member)
    assert ApiKey.for_user(member) == own
    assert ApiKey.for_user(other).label == "Ivan's"


def test_for_user_ignores_inactive_keys(member):
    make_key("Maria's old", secret="maria-secret-0001", owner=member, is_active=False)
    assert ApiKey.for_user(member) is None
    make_key("Team old", secret="team-secret-0002", is_active=False)
    assert ApiKey.for_user(member) is None
    team = make_key("Team", secret="team-secret-0003")
    assert ApiKey.for_user(member) == team


# --- Tasks -------------------------------------------------------------------------------------------


def test_the_task_changelist_loads_and_filters_by_state(admin, member):
    make_task(member, S.FAILED, prompt="the one that failed")
    make_task(member, S.SUCCEEDED, prompt="the one that worked")
    make_task(member, S.GENERATING, prompt="the one still running")
    everything = admin.get("/admin/modify/modifytask/").content.decode()
    for prompt in ("the one that failed", "the one that worked", "the one still running"):
        assert prompt in everything
    response = admin.get("/admin/modify/modifytask/?state__exact=failed")
    assert response.status_code == 200
    page = response.content.decode()
    assert "the one that failed" in page
    assert "the one that worked" not in page and "the one still running" not in page


def test_the_task_pages_never_show_the_callback_token_or_the_key_secret(admin, member):
    key = make_key("Maria's key", secret=SECRET, owner=member)
    task = generating_with_key(member, key, prompt="a snowy winter night")
    # A rejected callback quoting its own URL: the history keeps the event, not the token.
    task.record("callback_rejected", actor=Actor.PROVIDER,
                detail=f"bad signature on https://lumaweb.example/callbacks/{task.callback_token}/")
    changelist = admin.get("/admin/modify/modifytask/")
    change = admin.get(change_url(task))
    assert changelist.status_code == change.status_code == 200
    assert "a snowy winter night" in changelist.content.decode()
    page = change.content.decode()
    assert "p" * 32 in page  # the page does show the task's facts...
    assert f"Maria&#x27;s key (••••{SECRET[-4:]})" in page  # ...and which key it spends...
    assert "bad signature on https://lumaweb.example/callbacks/[redacted]/" in page
    for name, response in {"changelist": changelist, "change": change}.items():
        html = response.content.decode()
        assert task.callback_token not in html, name  # ...but never the token
        assert SECRET not in html and SECRET[:-4] not in html, name  # ...nor the key's secret
        assert key.secret_encrypted not in html, name


def history_rows(page):
    """The rows of the task page's event inline, each ``{field: text shown}``."""
    history = page[page.index('id="events-group"'):]
    history = history[: history.index("</table>")]
    rows = []
    for row in history.split('<tr class="form-row')[1:]:
        cells = re.findall(r'<td class="field-(\w+)">(.*?)</td>', row, re.S)
        rows.append({name: " ".join(re.sub(r"<[^>]*>", " ", html).split()) for name, html in cells})
    return rows


def test_the_task_page_shows_its_history(admin, staff, member):
    task = make_task(member, S.GENERATING, provider_task_id="prov-1")
    assert task.fail("Stopped by staff (sam).", actor=Actor.STAFF, by=staff)
    page = admin.get(change_url(task)).content.decode()
    rows = history_rows(page)
    assert [(row["kind"], row["from_state"], row["to_state"], row["actor"], row["actor_user"], row["detail"])
            for row in rows] == [
        ("created", "-", "Queued", "Member", "maria", "made by a test factory"),
        ("claim", "Queued", "Submitting", "System", "-", "attempt 1"),
        ("generate_sent", "Submitting", "Awaiting the provider", "System", "-", "-"),
        ("accepted", "Awaiting the provider", "Generating", "System", "-", "prov-1"),
        ("fail", "Generating", "Failed", "Staff", "sam", "Stopped by staff (sam)."),
    ]
    assert all(row["created_at"] for row in rows)
    # Read-only: no field to edit, nothing to add or delete.
    assert 'name="events-0-detail"' not in page and 'name="events-0-DELETE"' not in page
    assert 'name="events-TOTAL_FORMS" value="5"' in page and 'name="events-MAX_NUM_FORMS" value="0"' in page


def test_saving_a_task_in_the_admin_keeps_its_callback_token_and_logs_the_change(admin, staff, member):
    task = make_task(member, S.SUCCEEDED)
    assert task.shared
    token, state, finished_at = task.callback_token, task.state, task.finished_at
    response = admin.post(change_url(task), change_form(admin, task, shared=False))
    assert response.status_code == 302, response.content.decode()[:3000]
    task.refresh_from_db()
    assert task.shared is False
    assert task.callback_token == token
    assert (task.state, task.finished_at) == (state, finished_at)
    unshared = task.events.last()
    assert (unshared.kind, unshared.actor, unshared.actor_user) == ("unshared", Actor.STAFF, staff)
    assert unshared.from_state == unshared.to_state == S.SUCCEEDED

    admin.post(change_url(task), change_form(admin, task, shared=True))
    task.refresh_from_db()
    assert task.shared is True
    shared = task.events.last()
    assert (shared.kind, shared.actor, shared.actor_user) == ("shared", Actor.STAFF, staff)
    # Saving without a change logs nothing.
    count = task.events.count()
    assert admin.post(change_url(task), change_form(admin, task, shared=True)).status_code == 302
    assert task.events.count() == count


def test_stopping_tasks_fails_the_running_ones_and_leaves_finished_ones_alone(admin, staff, member):
    running = {state: make_task(member, state, prompt=state) for state in LIVE}
    done = make_task(member, S.SUCCEEDED, prompt="done")
    failed = make_task(member, S.FAILED, prompt="failed", error="The provider gave up.")
    finished = {task: (task.finished_at, task.events.count()) for task in (done, failed)}
    response = admin.post(
        "/admin/modify/modifytask/",
        {"action": "mark_failed", "_selected_action": [str(t.pk) for t in (*running.values(), done, failed)]},
        follow=True,
    )
    assert response.status_code == 200
    assert f"Stopped {len(LIVE)} task(s)." in response.content.decode()
    for stage, task in running.items():
        task.refresh_from_db()
        assert task.state == S.FAILED, stage
        assert task.failed_stage == stage
        assert task.error_message == "Stopped by staff (sam)."
        assert task.finished_at is not None
        event = task.events.last()
        assert (event.kind, event.from_state, event.to_state) == ("fail", stage, S.FAILED)
        assert event.actor == Actor.STAFF == "staff"
        assert event.actor_user == staff
        assert event.detail == "Stopped by staff (sam)."
    for task, (finished_at, events) in finished.items():
        state, error = task.state, task.error_message
        task.refresh_from_db()
        assert (task.state, task.error_message, task.finished_at) == (state, error, finished_at)
        assert task.events.count() == events
    assert done.error_message == "" and failed.error_message == "The provider gave up."


def test_staff_who_may_only_view_tasks_cannot_stop_them(client, staff, member):
    staff.user_permissions.set(Permission.objects.filter(codename__in=["view_modifytask", "view_taskevent"]))
    client.force_login(staff)
    task = make_task(member, S.GENERATING)
    assert client.get("/admin/modify/modifytask/").status_code == 200
    client.post("/admin/modify/modifytask/", {"action": "mark_failed", "_selected_action": [str(task.pk)]})
    task.refresh_from_db()
    assert task.state == S.GENERATING
    assert not task.events.filter(kind="fail").exists()


def test_tasks_cannot_be_added_by_hand(admin):
    assert admin.get("/admin/modify/modifytask/add/").status_code == 403


def test_members_without_staff_rights_cannot_reach_the_admin(signed_in):
    response = signed_in.get("/admin/modify/apikey/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_user_list_shows_each_members_tasks(admin, member):
    make_task(member, S.SUCCEEDED, prompt="one")
    make_task(member, S.SUCCEEDED, prompt="two")
    make_task(member, S.FAILED, prompt="three")
    make_task(make_member("ivan"), S.FAILED, prompt="someone else's")
    page = admin.get("/admin/auth/user/?q=maria").content.decode()
    row = page[page.index(">maria<"):]
    row = row[: row.index("</tr>")]
    assert [re.sub(r"<[^>]*>", "", cell).strip() for cell in row.split("</td>")[:-1]][-3:] == ["3", "2", "1"]


# --- The task list: posters, readable prompts, filters, and a cost that does not grow --------------------


def list_page(admin, query=""):
    response = admin.get(f"/admin/modify/modifytask/{query}")
    assert response.status_code == 200
    return response.content.decode()


def listed(page):
    """The ids of the tasks a list page shows, in order."""
    return re.findall(r'href="/admin/modify/modifytask/([0-9a-f-]{36})/change/', page)[::2]


def test_the_list_shows_each_results_poster_and_the_whole_prompt(admin, member, clip):
    prompt = "Turn the street into a snowy winter night, " * 6  # 258 characters: once cut at 60
    done = make_task(member, S.SUCCEEDED, prompt=prompt.strip(), result=clip())
    running = make_task(member, S.GENERATING, prompt="still generating")
    page = list_page(admin)
    assert f'<img class="task-thumb" src="{done.poster.url}"' in page
    assert done.poster.url.startswith("/media/results/")
    assert admin.get(done.poster.url).status_code == 200  # the app serves it to staff
    assert '<span class="task-thumb task-thumb-empty">Generating</span>' in page
    assert prompt.strip() in page
    assert running.prompt in page


def tasks_for_a_list(count, start=0):
    """``count`` tasks over three members, two keys (and none), the sandbox and the real provider."""
    members = [make_member(f"member{i}") if start == 0 else User.objects.get(username=f"member{i}") for i in range(3)]
    keys = ([make_key("Team key", secret="team-secret-0001"), make_key("Other key", secret="other-secret-0002")] if start == 0
            else list(ApiKey.objects.order_by("pk"))) + [None]
    states = [S.QUEUED, S.GENERATING, S.FAILED, S.SUCCEEDED]
    for i in range(start, start + count):
        make_task(members[i % 3], states[i % 4], prompt=f"task {i}", api_key=keys[i % 3], is_sandbox=bool(i % 2))


@pytest.mark.parametrize("query", ["", "?state__exact=failed", "?q=task", "?provider=real&created_from=2020-01-01",
                                   "?owner__id__exact=1", "?o=3"])
def test_the_list_costs_the_same_queries_for_5_or_100_tasks(admin, query):
    tasks_for_a_list(5)
    with CaptureQueriesContext(connection) as few:
        list_page(admin, query)
    tasks_for_a_list(95, start=5)
    with CaptureQueriesContext(connection) as many:
        page = list_page(admin, query)
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    assert len(many) <= 12, [q["sql"] for q in many.captured_queries]
    assert "total)" not in page  # the whole table is never counted beside the filtered list


def test_the_list_filters_by_member_key_provider_and_dates(admin, member, other):
    key = make_key("Team key", secret="team-secret-0001")
    mine = make_task(member, S.GENERATING, prompt="maria's, on the team key", api_key=key)
    real = make_task(other, S.QUEUED, prompt="ivan's, with kie.ai", is_sandbox=False)
    old = make_task(other, S.SUCCEEDED, prompt="ivan's, from last year", created_at=timezone.now() - timedelta(days=400))
    assert set(listed(list_page(admin))) == {str(t.pk) for t in (mine, real, old)}
    assert listed(list_page(admin, f"?owner__id__exact={member.pk}")) == [str(mine.pk)]
    assert listed(list_page(admin, f"?api_key__id__exact={key.pk}")) == [str(mine.pk)]
    assert set(listed(list_page(admin, "?api_key__isnull=True"))) == {str(real.pk), str(old.pk)}
    assert listed(list_page(admin, "?provider=real")) == [str(real.pk)]
    assert set(listed(list_page(admin, "?provider=sandbox"))) == {str(mine.pk), str(old.pk)}
    today = timezone.localdate()
    assert set(listed(list_page(admin, f"?created_from={today - timedelta(days=1)}"))) == {str(mine.pk), str(real.pk)}
    last_year = old.created_at.date()
    assert listed(list_page(admin, f"?created_from={last_year}&created_to={last_year}")) == [str(old.pk)]
    assert listed(list_page(admin, f"?created_to={today - timedelta(days=2)}&owner__id__exact={other.pk}")) == [str(old.pk)]
    # The filters are named as staff think of them.
    page = list_page(admin)
    for title in ("By state", "By member", "By key", "By provider", "By created"):
        assert title in page


@pytest.mark.parametrize("query, error", [
    ("?created_from=2025-03-10&created_to=2025-03-01", "The end date is before the start date."),
    ("?created_from=yesterday", "From: Enter a valid date."),
])
def test_a_bad_date_range_says_why_and_filters_nothing(admin, member, query, error):
    task = make_task(member, S.GENERATING)
    page = list_page(admin, query)
    assert error in page
    assert listed(page) == [str(task.pk)]


def test_the_date_filter_keeps_the_other_filters(admin, member):
    make_task(member, S.FAILED)
    page = list_page(admin, "?state__exact=failed&created_from=2020-01-01")
    form = page[page.index('class="created-range"'):]
    form = form[: form.index("</form>")]
    assert '<input type="hidden" name="state__exact" value="failed">' in form
    assert 'name="created_from" value="2020-01-01"' in form


# --- A task's page: the actions first, the videos, the history, and the member's view ---------------------


def test_the_task_page_shows_actions_videos_and_history_before_the_fields(admin, member, clip):
    video = clip()
    task = make_task(member, S.SUCCEEDED, upload=video, result=video)
    page = admin.get(change_url(task)).content.decode()
    order = [page.index(marker) for marker in (
        'id="staff-actions-heading"', f'<video src="{task.source_file.url}"', f'<video src="{task.result_file.url}"',
        'id="events-group"', 'class="form-row field-owner')]
    assert order == sorted(order)
    assert f'poster="{task.poster.url}"' in page
    assert f'<a href="/tasks/{task.pk}/">Open as members see it</a>' in page
    for action in ("check", "hide"):
        assert f'action="/tasks/{task.pk}/staff/{action}/?next=/admin/modify/modifytask/{task.pk}/change/"' in page
    assert 'data-action="stop"' not in page and 'data-action="retry"' not in page


def test_a_failed_tasks_page_says_why_first(admin, member):
    task = make_task(member, S.FAILED, error="The provider could not generate this video (bad prompt).")
    page = admin.get(change_url(task)).content.decode()
    assert page.index("Failed: The provider could not generate this video (bad prompt).") < page.index('id="events-group"')
    assert 'data-action="retry"' in page


def test_an_action_from_the_task_page_comes_back_to_it_with_its_message(admin, staff, member):
    task = make_task(member, S.GENERATING)
    page = admin.post(f"/tasks/{task.pk}/staff/stop/?next={change_url(task)}", follow=True)
    assert page.request["PATH_INFO"] == change_url(task)
    assert "Stopped: the task is marked failed and no longer tracked." in page.content.decode()
    task.refresh_from_db()
    assert task.state == S.FAILED
    assert (task.events.last().actor, task.events.last().actor_user) == (Actor.STAFF, staff)


def test_staff_who_may_only_view_tasks_see_no_action_buttons(client, staff, member):
    staff.user_permissions.set(Permission.objects.filter(codename__in=["view_modifytask", "view_taskevent"]))
    client.force_login(staff)
    page = client.get(change_url(make_task(member, S.GENERATING))).content.decode()
    assert "Open as members see it" in page
    assert "data-action=" not in page


# --- Actions on a selection --------------------------------------------------------------------------------


def run_action(admin, action, tasks):
    return admin.post("/admin/modify/modifytask/",
                      {"action": action, "_selected_action": [str(t.pk) for t in tasks]}, follow=True).content.decode()


def test_retrying_a_selection_retries_the_failed_ones(admin, staff, member, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", sent.append)
    failed = [make_task(member, S.FAILED, prompt=f"failed {i}") for i in range(2)]
    running = make_task(member, S.GENERATING)
    with django_capture_on_commit_callbacks(execute=True):
        page = run_action(admin, "retry_failed", [*failed, running])
    assert "Sent 2 task(s) again. 1 skipped: Only a failed task that was not tried again yet can be retried." in page
    for task in failed:
        task.refresh_from_db()
        assert task.retried_as is not None and task.retried_as.owner == member
        assert task.events.last().actor_user == staff
    assert sorted(t.pk for t in sent) == sorted(t.retried_as.pk for t in failed)
    assert running.events.count() == ModifyTask.objects.get(pk=running.pk).events.count()


def test_hiding_and_archiving_again_from_the_list(admin, staff, member, monkeypatch):
    archived = []
    monkeypatch.setattr("modify.enqueue.archive", archived.append)
    shown = make_task(member, S.SUCCEEDED)
    lost = make_task(member, S.FAILED, failed_stage=S.ARCHIVING)
    assert "Hid 1 result(s) from the gallery. 1 skipped" in run_action(admin, "hide_from_gallery", [shown, lost])
    assert "Archiving 1 result(s) again. 1 skipped" in run_action(admin, "archive_again", [shown, lost])
    shown.refresh_from_db()
    lost.refresh_from_db()
    assert shown.shared is False and lost.state == S.ARCHIVING
    assert [t.pk for t in archived] == [lost.pk]
    assert [(e.kind, e.actor, e.actor_user) for e in (shown.events.last(), lost.events.last())] == [
        ("unshared", Actor.STAFF, staff), ("rearchive", Actor.STAFF, staff)]


def test_checking_a_selection_asks_the_sandbox_about_each(app, admin, staff, member):
    from sandbox.models import Account
    from sandbox.models import Task as SandboxTask

    upstream = SandboxTask.objects.create(account=Account.for_key("sandbox-key"), prompt="p", video_url="http://x/a.mp4",
                                          base_url="http://x", source="sandbox/none.mp4")
    asked = make_task(member, S.GENERATING, prompt="in the sandbox", provider_task_id=upstream.task_id)
    queued = make_task(member, S.QUEUED)
    page = run_action(admin, "check_with_provider", [asked, queued])
    assert "“in the sandbox”: The provider says: successFlag 0 (generating)." in page
    assert "Asked the provider about 1 task(s). 1 skipped" in page
    event = asked.events.last()
    assert (event.kind, event.actor, event.actor_user, event.detail) == (
        "checked", Actor.STAFF, staff, "successFlag 0 (generating)")


def test_checking_credits_remembers_them_on_the_key(app, admin):
    key = make_key("Sandbox key", secret="sandbox-key")
    page = admin.post("/admin/modify/apikey/", {"action": "check_credits", "_selected_action": [key.pk]},
                      follow=True).content.decode()
    assert f"Sandbox key (••••-key): 1000 credits left." in page
    key.refresh_from_db()
    assert key.last_credits == 1000 and key.credits_checked_at is not None
    assert "1000" in admin.get("/admin/modify/apikey/").content.decode()


# --- In a browser: nothing cut off at 1280 px -------------------------------------------------------------


@pytest.mark.browser
def test_the_task_list_fits_a_1280_px_screen(live_server, browser, settings, staff, member):
    settings.ALLOWED_HOSTS = ["*"]
    staff.is_superuser = True
    staff.set_password("pw-admin-123")
    staff.save()
    prompt = "Turn the quiet street into a snowy winter night with warm lights in every window " * 3
    make_task(member, S.FAILED, prompt=prompt.strip(), api_key=make_key("A team key with a long label", secret="s-0001"),
              error="The provider could not generate this video (the model gave up on this one).")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/modify/modifytask/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "pw-admin-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")
    fits = page.evaluate("""() => {
        const results = document.querySelector('.results');
        const prompt = document.querySelector('td.field-prompt_text');
        const box = prompt.getBoundingClientRect();
        return {page: document.documentElement.scrollWidth <= window.innerWidth,
                table: results.scrollWidth <= results.clientWidth,
                prompt: box.right <= window.innerWidth && box.width >= 200, text: prompt.innerText};
    }""")
    context.close()
    assert fits["page"] and fits["table"] and fits["prompt"], fits
    assert fits["text"] == prompt.strip()
