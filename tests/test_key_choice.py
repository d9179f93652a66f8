"""Which key a task spends: the studio offers "Key" when more than one is open to the member (their
own active keys, then the team's), defaults to their newest own key with credits left, else the
team's newest; refuses a key that ran out (saying who can top it up) or one not open to them; the
task is created with the chosen key, and sending spends that key, unless it was revoked meanwhile:
then the task fails, saying so, without a call to the provider. Tasks already sent keep their key."""

import html
import re
from types import SimpleNamespace

import pytest
from django.core.files import File
from django.utils import timezone

from modify import backend, intake, sending
from modify.forms import TaskForm
from modify.models import ApiKey, ModifyTask
from modify.states import Actor
from tests.factories import make_key, make_staff, make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
URL = "https://example.com/clip.mp4"
NOT_OPEN = "That key is not open to you (it may have been revoked): choose one of the keys listed."


@pytest.fixture(autouse=True)
def ten_credits_a_task(settings):
    settings.LUMA_CREDITS_PER_TASK = 10
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # the request path must not reach a provider


@pytest.fixture
def sent(monkeypatch):
    """The tasks handed to ``modify.enqueue.send_to_provider`` (nothing is really enqueued)."""
    tasks = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", tasks.append)
    return tasks


def choices(form):
    """The keys offered, as ``(key, label)``, in order; None when the form offers no choice."""
    if "key" not in form.fields:
        return None
    return [(ApiKey.objects.get(pk=value.value), label) for value, label in form.fields["key"].choices]


def form_errors(page):
    """Every error shown on the studio's form, in order."""
    form = page.split('id="task-form"')[1].split("</form>")[0]
    return [html.unescape(error) for error in re.findall(r'<div class="error" role="alert">(.*?)</div>', form, re.S)]


def post(client, htmx=False, **fields):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post("/tasks/", {"video_url": URL, "prompt": "a snowy winter night", **fields}, **headers)


# --- What is offered -------------------------------------------------------------------------------------


def test_no_choice_with_one_key_or_none(signed_in, member):
    assert choices(TaskForm(user=member)) is None  # the environment's (or the sandbox's) key
    make_key("Team")
    assert choices(TaskForm(user=member)) is None
    assert 'name="key"' not in signed_in.get("/").content.decode()


def test_own_keys_come_first_then_the_teams_newest_first(member, staff):
    team_old, team_new = make_key("Team old"), make_key("Team new")
    own_old, own_new = make_key("Mine old", owner=member), make_key("Mine new", owner=member)
    make_key("Mine revoked", owner=member, is_active=False)
    make_key("Team revoked", is_active=False)
    offered = choices(TaskForm(user=member))
    assert [key for key, _ in offered] == [own_new, own_old, team_new, team_old]
    assert offered[0][1] == f"Mine new (yours, {own_new.masked})"
    assert offered[2][1] == "Team new (team)"  # a team key is never shown, not even its last four


def test_a_member_sees_no_key_of_another_member(signed_in, member, other):
    make_key("Team")
    make_key("Maria's", owner=member)
    make_key("Ivan's", owner=other)
    make_key("Ivan's spare", owner=other)
    assert [key.label for key, _ in choices(TaskForm(user=member))] == ["Maria's", "Team"]
    page = signed_in.get("/").content.decode()
    assert 'name="key"' in page and "Maria&#x27;s" in page
    assert "Ivan" not in page


def test_credits_are_shown_and_a_key_that_ran_out_says_so(member):
    make_key("Team", last_credits=5)
    make_key("Mine", owner=member, last_credits=120)
    assert [label for _, label in choices(TaskForm(user=member))] == [
        f"Mine (yours, {ApiKey.objects.get(label='Mine').masked}, 120 credits)", "Team (team, out of credits)"]


# --- The default -------------------------------------------------------------------------------------------


def test_the_default_is_the_newest_own_key(signed_in, member):
    make_key("Team")
    make_key("Mine old", owner=member)
    newest = make_key("Mine new", owner=member)
    assert TaskForm(user=member).fields["key"].initial == newest
    page = signed_in.get("/").content.decode()
    assert re.search(rf'<option value="{newest.pk}" selected>', page)


def test_without_an_own_key_the_default_is_the_teams_newest(member, other):
    make_key("Team old")
    newest = make_key("Team new")
    make_key("Ivan's", owner=other)
    assert TaskForm(user=member).fields["key"].initial == newest


def test_the_default_passes_over_a_key_that_ran_out(member):
    team = make_key("Team", last_credits=900)
    make_key("Mine", owner=member, last_credits=3)
    assert TaskForm(user=member).fields["key"].initial == team
    assert backend.key_for(member)[0] == team  # nor is it spent by a task made without a key


def test_a_task_sent_without_the_choice_spends_the_default(signed_in, member, sent):
    newest = make_key("Mine new", owner=member)
    make_key("Team")
    assert post(signed_in).status_code == 302  # a client that does not send "key"
    assert ModifyTask.objects.get().api_key == newest


# --- Choosing ---------------------------------------------------------------------------------------------------


def test_the_chosen_key_is_stored_on_the_new_task(signed_in, member, sent, django_capture_on_commit_callbacks):
    make_key("Mine", owner=member)
    team = make_key("Team")
    with django_capture_on_commit_callbacks(execute=True):
        assert post(signed_in, key=team.pk).status_code == 302
    task = ModifyTask.objects.get()
    assert task.api_key == team and sent == [task]


def test_the_only_key_is_stored_on_the_new_task(signed_in, member, sent):
    team = make_key("Team")
    assert post(signed_in).status_code == 302
    assert ModifyTask.objects.get().api_key == team


def test_without_any_key_the_task_has_none(signed_in, sent):
    assert post(signed_in).status_code == 302
    assert ModifyTask.objects.get().api_key is None


@pytest.mark.parametrize("whose", ["another member's", "revoked", "unknown"])
def test_a_key_not_open_to_the_member_is_refused(signed_in, member, other, sent, whose):
    make_key("Mine", owner=member)
    make_key("Team")
    forged = {"another member's": lambda: make_key("Ivan's", owner=other).pk,
              "revoked": lambda: make_key("Mine revoked", owner=member, is_active=False).pk,
              "unknown": lambda: 999999}[whose]()
    response = post(signed_in, key=forged)
    assert response.status_code == 422
    assert form_errors(response.content.decode()) == [NOT_OPEN]
    assert not ModifyTask.objects.exists() and sent == []


def test_a_forged_key_is_refused_even_when_no_choice_is_offered(signed_in, member, other, sent):
    make_key("Team")
    response = post(signed_in, htmx=True, key=make_key("Ivan's", owner=other).pk)
    assert response.status_code == 200
    assert form_errors(response.content.decode()) == [NOT_OPEN]
    assert not ModifyTask.objects.exists() and sent == []


# --- Out of credits -----------------------------------------------------------------------------------------


@pytest.fixture
def staff_to_ask(db):
    make_staff("sam")
    make_staff("tess", first_name="Tess", last_name="Admin")
    make_staff("old", is_active=False)


def test_a_chosen_key_that_ran_out_is_refused_naming_who_to_ask(signed_in, member, sent, staff_to_ask):
    make_key("Mine", owner=member, last_credits=200)
    team = make_key("Team", last_credits=9)  # less than one task's 10
    response = post(signed_in, key=team.pk)
    assert response.status_code == 422
    assert form_errors(response.content.decode()) == [
        "The key “Team” has run out of credits; ask staff (sam, Tess Admin) to top it up."]
    assert not ModifyTask.objects.exists() and sent == []


def test_the_only_key_having_run_out_is_refused_too(signed_in, member, sent, staff_to_ask):
    make_key("Mine", owner=member, last_credits=0)
    response = post(signed_in, htmx=True)
    assert response.status_code == 200
    assert form_errors(response.content.decode()) == [
        "The key “Mine” has run out of credits; ask staff (sam, Tess Admin) to top it up."]
    assert not ModifyTask.objects.exists() and sent == []


def test_a_key_with_one_tasks_worth_or_unknown_credits_may_be_spent(signed_in, member, sent):
    make_key("Team", last_credits=None)  # never asked yet
    exact = make_key("Mine", owner=member, last_credits=10)
    assert post(signed_in, key=exact.pk).status_code == 302
    assert ModifyTask.objects.get().api_key == exact


# --- Sending with the chosen key ----------------------------------------------------------------------------


class FakeProvider:
    """Stands in for ``backend.client``: remembers which secret each client was made with and what was asked."""

    def __init__(self):
        self.secrets, self.calls = [], []

    def __call__(self, secret):
        self.secrets.append(secret)
        return self

    def upload_file(self, fh, path, name):
        self.calls.append("upload")
        return SimpleNamespace(download_url=f"https://files.example.com/{name}")

    def generate(self, prompt, video_url, callback_url=None, watermark=None):
        self.calls.append("generate")
        return "provider-task-1"


@pytest.fixture
def provider(monkeypatch):
    fake = FakeProvider()
    monkeypatch.setattr(backend, "client", fake)
    return fake


def test_sending_spends_the_chosen_key_not_the_default(member, clip, provider, sent):
    chosen = make_key("Mine old", owner=member)
    make_key("Mine new", owner=member)
    with open(clip(seconds=1), "rb") as fh:
        task = intake.accept(member, "a snowy winter night", upload=File(fh, name="clip.mp4"), api_key=chosen)
    task = sending.send_to_provider(task.pk)
    assert task.state == S.GENERATING
    assert provider.secrets == [chosen.secret] and provider.calls == ["upload", "generate"]
    assert task.api_key == chosen


def test_a_key_revoked_before_sending_fails_the_task_without_calling_the_provider(member, provider, sent):
    chosen = make_key("Mine", owner=member)
    make_key("Team")
    task = intake.accept(member, "a snowy winter night", url=URL, api_key=chosen)
    ApiKey.objects.filter(pk=chosen.pk).update(is_active=False, revoked_at=timezone.now())
    task = sending.send_to_provider(task.pk)
    assert task.state == S.FAILED and task.failed_stage == S.SUBMITTING
    assert task.error_message == (
        "The key “Mine” was revoked before this task was sent; choose another key and submit it again.")
    assert task.failure_key == "key_revoked"
    assert provider.secrets == [] and provider.calls == []
    fail = task.events.get(kind="fail")
    assert (fail.actor, fail.detail) == (Actor.SYSTEM, task.error_message)
    assert chosen.secret not in fail.detail


def test_a_task_already_sent_keeps_polling_with_its_revoked_key(member, provider):
    key = make_key("Mine", owner=member)
    task = make_task(member, S.GENERATING, api_key=key)
    ApiKey.objects.filter(pk=key.pk).update(is_active=False, revoked_at=timezone.now())
    make_key("Team")
    task.refresh_from_db()
    backend.client_for(task)
    assert provider.secrets == [key.secret]
