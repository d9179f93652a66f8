"""The admin, as staff use it: API keys are write-only secrets, tasks can be overseen and stopped,
and what staff do to a task lands in its history as theirs."""

import re

import pytest
from django.contrib.auth.models import Permission

from modify.models import ApiKey, ModifyTask
from modify.states import LIVE, Actor
from tests.factories import make_member, make_task

pytestmark = pytest.mark.django_db
SECRET = "kie-3f9a1c0d7be24e55a1c9d2f0e8b7a6c5"
S = ModifyTask.State


@pytest.fixture
def admin(client, staff):
    """A test client signed in as ``staff`` (sam), who may manage tasks, API keys and members."""
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["modify", "auth"]))
    client.force_login(staff)
    return client


def make_key(label, secret, owner=None, is_active=True):
    key = ApiKey(label=label, owner=owner, is_active=is_active)
    key.secret = secret
    key.save()
    return key


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


def test_a_new_key_is_stored_encrypted(admin):
    response = admin.post(
        "/admin/modify/apikey/add/", {"label": "Team key", "owner": "", "is_active": "on", "new_secret": f"  {SECRET} "}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    key = ApiKey.objects.get()
    assert SECRET not in key.secret_encrypted
    assert SECRET[:12] not in key.secret_encrypted
    assert key.secret == SECRET
    assert key.last4 == SECRET[-4:]
    assert key.owner is None and key.is_active


@pytest.mark.parametrize("sandbox", [True, False])
def test_saving_a_key_warns_when_it_would_go_to_the_sandbox(admin, settings, sandbox):
    settings.SANDBOX_ENABLED = sandbox
    settings.LUMA_API_BASE = ""
    response = admin.post(
        "/admin/modify/apikey/add/", {"label": "Team key", "owner": "", "is_active": "on", "new_secret": SECRET},
        follow=True,
    )
    assert ("this key is sent there, not to kie.ai" in response.content.decode()) is sandbox


def test_a_new_key_needs_its_secret(admin):
    response = admin.post("/admin/modify/apikey/add/", {"label": "Team key", "owner": "", "is_active": "on"})
    assert response.status_code == 200
    assert "A new key needs its secret." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_admin_pages_show_only_the_last_four_characters(admin, member):
    key = make_key("Maria's key", SECRET, owner=member)
    pages = {
        "changelist": admin.get("/admin/modify/apikey/"),
        "change": admin.get(f"/admin/modify/apikey/{key.pk}/change/"),
        "add": admin.get("/admin/modify/apikey/add/"),
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


def test_editing_without_a_new_secret_keeps_the_old_one(admin):
    key = make_key("Team key", SECRET)
    response = admin.post(
        f"/admin/modify/apikey/{key.pk}/change/", {"label": "Team key (2025)", "owner": "", "is_active": "on", "new_secret": ""}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    key.refresh_from_db()
    assert key.label == "Team key (2025)"
    assert key.secret == SECRET
    assert key.last4 == SECRET[-4:]


def test_editing_with_a_new_secret_replaces_it(admin):
    key = make_key("Team key", SECRET)
    admin.post(
        f"/admin/modify/apikey/{key.pk}/change/", {"label": "Team key", "owner": "", "is_active": "on", "new_secret": "kie-new-secret-9876"}
    )
    key.refresh_from_db()
    assert key.secret == "kie-new-secret-9876"
    assert key.masked == "••••9876"


def test_for_user_prefers_the_users_own_active_key(member, other):
    team = make_key("Team", "team-secret-0001")
    assert ApiKey.for_user(member) == team
    make_key("Ivan's", "ivan-secret-0002", owner=other)
    assert ApiKey.for_user(member) == team
    own = make_key("Maria's", "maria-secret-0003", owner=member)
    assert ApiKey.for_user(member) == own
    assert ApiKey.for_user(other).label == "Ivan's"


def test_for_user_ignores_inactive_keys(member):
    make_key("Maria's old", "maria-secret-0001", owner=member, is_active=False)
    assert ApiKey.for_user(member) is None
    make_key("Team old", "team-secret-0002", is_active=False)
    assert ApiKey.for_user(member) is None
    team = make_key("Team", "team-secret-0003")
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
    key = make_key("Maria's key", SECRET, owner=member)
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
    assert f"Maria&#x27;s key (…{SECRET[-4:]})" in page  # ...and which key it spends...
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
