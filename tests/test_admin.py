"""The admin, as staff use it: API keys are write-only secrets, tasks can be overseen and stopped."""

import pytest
from django.utils import timezone

from modify.models import ApiKey, ModifyTask

pytestmark = pytest.mark.django_db
SECRET = "kie-3f9a1c0d7be24e55a1c9d2f0e8b7a6c5"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff(admin_client):
    return admin_client


def make_key(label, secret, owner=None, is_active=True):
    key = ApiKey(label=label, owner=owner, is_active=is_active)
    key.secret = secret
    key.save()
    return key


def make_task(owner, state, prompt, **fields):
    return ModifyTask.objects.create(
        owner=owner, prompt=prompt, source_kind="url", source_url="https://example.com/a.mp4", state=state, **fields
    )


# --- API keys ----------------------------------------------------------------------------------------


def test_a_new_key_is_stored_encrypted(staff):
    response = staff.post(
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
def test_saving_a_key_warns_when_it_would_go_to_the_sandbox(staff, settings, sandbox):
    settings.SANDBOX_ENABLED = sandbox
    settings.LUMA_API_BASE = ""
    response = staff.post(
        "/admin/modify/apikey/add/", {"label": "Team key", "owner": "", "is_active": "on", "new_secret": SECRET},
        follow=True,
    )
    assert ("this key is sent there, not to kie.ai" in response.content.decode()) is sandbox


def test_a_new_key_needs_its_secret(staff):
    response = staff.post("/admin/modify/apikey/add/", {"label": "Team key", "owner": "", "is_active": "on"})
    assert response.status_code == 200
    assert "A new key needs its secret." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_admin_pages_show_only_the_last_four_characters(staff, member):
    key = make_key("Maria's key", SECRET, owner=member)
    pages = {
        "changelist": staff.get("/admin/modify/apikey/"),
        "change": staff.get(f"/admin/modify/apikey/{key.pk}/change/"),
        "add": staff.get("/admin/modify/apikey/add/"),
        "delete": staff.get(f"/admin/modify/apikey/{key.pk}/delete/"),
        "history": staff.get(f"/admin/modify/apikey/{key.pk}/history/"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        page = response.content.decode()
        assert SECRET not in page, name
        assert SECRET[:-4] not in page, name
        assert key.secret_encrypted not in page, name
    assert f"••••{SECRET[-4:]}" in pages["changelist"].content.decode()
    assert f"••••{SECRET[-4:]}" in pages["change"].content.decode()


def test_editing_without_a_new_secret_keeps_the_old_one(staff):
    key = make_key("Team key", SECRET)
    response = staff.post(
        f"/admin/modify/apikey/{key.pk}/change/", {"label": "Team key (2025)", "owner": "", "is_active": "on", "new_secret": ""}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    key.refresh_from_db()
    assert key.label == "Team key (2025)"
    assert key.secret == SECRET
    assert key.last4 == SECRET[-4:]


def test_editing_with_a_new_secret_replaces_it(staff):
    key = make_key("Team key", SECRET)
    staff.post(
        f"/admin/modify/apikey/{key.pk}/change/", {"label": "Team key", "owner": "", "is_active": "on", "new_secret": "kie-new-secret-9876"}
    )
    key.refresh_from_db()
    assert key.secret == "kie-new-secret-9876"
    assert key.masked == "••••9876"


def test_for_user_prefers_the_users_own_active_key(member, django_user_model):
    someone_else = django_user_model.objects.create_user("ivan")
    team = make_key("Team", "team-secret-0001")
    assert ApiKey.for_user(member) == team
    make_key("Ivan's", "ivan-secret-0002", owner=someone_else)
    assert ApiKey.for_user(member) == team
    own = make_key("Maria's", "maria-secret-0003", owner=member)
    assert ApiKey.for_user(member) == own
    assert ApiKey.for_user(someone_else).label == "Ivan's"


def test_for_user_ignores_inactive_keys(member):
    make_key("Maria's old", "maria-secret-0001", owner=member, is_active=False)
    assert ApiKey.for_user(member) is None
    make_key("Team old", "team-secret-0002", is_active=False)
    assert ApiKey.for_user(member) is None
    team = make_key("Team", "team-secret-0003")
    assert ApiKey.for_user(member) == team


# --- Tasks -------------------------------------------------------------------------------------------


def test_the_task_changelist_loads_and_filters_by_state(staff, member):
    make_task(member, ModifyTask.State.FAILED, "the one that failed", finished_at=timezone.now())
    make_task(member, ModifyTask.State.SUCCEEDED, "the one that worked", finished_at=timezone.now())
    make_task(member, ModifyTask.State.GENERATING, "the one still running")
    everything = staff.get("/admin/modify/modifytask/").content.decode()
    for prompt in ("the one that failed", "the one that worked", "the one still running"):
        assert prompt in everything
    response = staff.get("/admin/modify/modifytask/?state__exact=failed")
    assert response.status_code == 200
    page = response.content.decode()
    assert "the one that failed" in page
    assert "the one that worked" not in page and "the one still running" not in page


def test_the_task_pages_never_show_the_callback_token(staff, member):
    task = make_task(member, ModifyTask.State.GENERATING, "a snowy winter night", provider_task_id="p" * 32)
    changelist = staff.get("/admin/modify/modifytask/")
    change = staff.get(f"/admin/modify/modifytask/{task.pk}/change/")
    assert changelist.status_code == change.status_code == 200
    assert "a snowy winter night" in changelist.content.decode()
    assert "p" * 32 in change.content.decode()  # the page does show the task's facts...
    for response in (changelist, change):
        assert task.callback_token not in response.content.decode()  # ...but never the token


def test_saving_a_task_in_the_admin_keeps_its_callback_token(staff, member):
    task = make_task(member, ModifyTask.State.SUCCEEDED, "a snowy winter night", finished_at=timezone.now())
    token = task.callback_token
    response = staff.post(f"/admin/modify/modifytask/{task.pk}/change/", {"shared": ""})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.shared is False
    assert task.callback_token == token


def test_stopping_tasks_fails_the_running_ones_and_leaves_finished_ones_alone(staff, member):
    queued = make_task(member, ModifyTask.State.QUEUED, "queued")
    generating = make_task(member, ModifyTask.State.GENERATING, "generating")
    done = make_task(member, ModifyTask.State.SUCCEEDED, "done", finished_at=timezone.now())
    response = staff.post(
        "/admin/modify/modifytask/",
        {"action": "mark_failed", "_selected_action": [str(t.pk) for t in (queued, generating, done)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Stopped 2 task(s)." in response.content.decode()
    for task, stage in ((queued, "queued"), (generating, "generating")):
        task.refresh_from_db()
        assert task.state == ModifyTask.State.FAILED
        assert task.failed_stage == stage
        assert task.error_message == "Stopped by staff (admin)."
        assert task.finished_at is not None
    before = done.finished_at
    done.refresh_from_db()
    assert done.state == ModifyTask.State.SUCCEEDED
    assert done.error_message == "" and done.finished_at == before


def test_tasks_cannot_be_added_by_hand(staff):
    assert staff.get("/admin/modify/modifytask/add/").status_code == 403


def test_members_without_staff_rights_cannot_reach_the_admin(client, member):
    client.force_login(member)
    response = client.get("/admin/modify/apikey/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_user_list_shows_each_members_tasks(staff, member):
    make_task(member, ModifyTask.State.SUCCEEDED, "one")
    make_task(member, ModifyTask.State.SUCCEEDED, "two")
    make_task(member, ModifyTask.State.FAILED, "three")
    page = staff.get("/admin/auth/user/?q=maria").content.decode()
    row = page[page.index(">maria<"):]
    row = row[: row.index("</tr>")]
    assert [cell.split(">")[-1] for cell in row.split("</td>")[:-1]][-3:] == ["3", "2", "1"]
