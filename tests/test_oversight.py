"""Staff actions on a task (modify.oversight, POST /tasks/<id>/staff/<action>/): each is a transition or an
event by staff, shown as a message; only staff may run them, only where they apply; the task page and the
admin offer the same buttons."""

import re

import pytest

from modify import oversight
from modify.models import ModifyTask, TaskEvent
from modify.states import Actor
from sandbox.models import Account
from sandbox.models import Task as SandboxTask
from tests.factories import RESULT_URL, make_member, make_task

S = ModifyTask.State


def action_url(task, action, next_url=None):
    return f"/tasks/{task.pk}/staff/{action}/" + (f"?next={next_url}" if next_url else "")


@pytest.fixture
def as_staff(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def enqueued(monkeypatch):
    """What the actions hand to django-q2, as ``(job, task id)`` (nothing is really enqueued)."""
    jobs = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", lambda task: jobs.append(("send", task.pk)))
    monkeypatch.setattr("modify.enqueue.archive", lambda task: jobs.append(("archive", task.pk)))
    monkeypatch.setattr("modify.enqueue.poll", lambda task: jobs.append(("poll", task.pk)))
    return jobs


def shown_messages(response):
    return [str(message) for message in response.context["messages"]] if response.context else []


def post(client, task, action, **kwargs):
    """POST the action, follow the redirect to the page it lands on; that page."""
    return client.post(action_url(task, action, kwargs.pop("next_url", None)), follow=True, **kwargs)


def events(task):
    return list(TaskEvent.objects.filter(task_id=task.pk).order_by("created_at", "id"))


def staff_buttons(html):
    """The staff actions a page offers, as ``[(action, label)]``, in order."""
    return re.findall(r'<button type="submit" class="secondary" data-action="(\w+)">([^<]+)</button>', html)


# --- Check with the provider now: one record-info against the sandbox, over real HTTP ---------------------


def upstream(flag=0, **fields):
    """A task the sandbox knows (as the sandbox key's account), finished with ``flag``."""
    return SandboxTask.objects.create(account=Account.for_key("sandbox-key"), prompt="p", video_url="http://x/a.mp4",
                                      base_url="http://sandbox.example", source="sandbox/none.mp4", success_flag=flag,
                                      **fields)


def test_check_logs_the_providers_answer_as_the_staff_members(app, as_staff, staff, member, enqueued):
    task = make_task(member, S.GENERATING, provider_task_id=upstream(flag=0).task_id)
    polls = task.poll_count
    page = post(as_staff, task, "check")
    assert page.status_code == 200 and page.request["PATH_INFO"] == f"/tasks/{task.pk}/"
    assert shown_messages(page) == ["The provider says: successFlag 0 (generating)."]
    checked = events(task)[-1]
    assert (checked.kind, checked.actor, checked.actor_user) == ("checked", Actor.STAFF, staff)
    assert checked.detail == "successFlag 0 (generating)"
    assert checked.from_state == checked.to_state == S.GENERATING
    task.refresh_from_db()
    assert task.state == S.GENERATING and task.poll_count == polls  # a look, not a booked poll
    assert "Staff asked the provider (by staff, sam): successFlag 0 (generating)" in page.content.decode()  # in the timeline
    assert enqueued == []


def test_check_settles_a_finished_generation_as_a_poll_would(app, as_staff, staff, member, enqueued):
    job = upstream(flag=1)
    task = make_task(member, S.GENERATING, provider_task_id=job.task_id)
    page = post(as_staff, task, "check")
    assert shown_messages(page) == ["The provider says: successFlag 1 (succeeded). The task is now archiving."]
    task.refresh_from_db()
    assert task.state == S.ARCHIVING and task.result_url == job.result_url
    assert [e.kind for e in events(task)][-2:] == ["checked", "result_found"]
    assert enqueued == [("archive", task.pk)]


def test_check_fails_a_generation_the_provider_failed(app, as_staff, member, enqueued):
    task = make_task(member, S.GENERATING,
                     provider_task_id=upstream(flag=3, error_code=501, error_message="the model gave up").task_id)
    page = post(as_staff, task, "check")
    assert shown_messages(page) == [
        "The provider says: successFlag 3 (generation failed), errorCode 501: the model gave up. The task is now failed."]
    task.refresh_from_db()
    assert task.state == S.FAILED and "the model gave up" in task.error_message


def test_check_of_a_finished_task_only_logs_the_answer(app, as_staff, member, enqueued):
    task = make_task(member, S.SUCCEEDED, provider_task_id=upstream(flag=1).task_id)
    page = post(as_staff, task, "check")
    assert shown_messages(page) == ["The provider says: successFlag 1 (succeeded)."]
    task.refresh_from_db()
    assert task.state == S.SUCCEEDED
    assert events(task)[-1].kind == "checked" and enqueued == []


def test_check_of_a_task_the_provider_does_not_know_says_so_and_changes_nothing(app, as_staff, member, enqueued):
    task = make_task(member, S.GENERATING, provider_task_id="f" * 32)
    page = post(as_staff, task, "check")
    [message] = shown_messages(page)
    assert message.startswith("The provider answered with an error: NotFoundError (code 404)")
    assert f"Task {'f' * 32} not found" in message
    task.refresh_from_db()
    assert task.state == S.GENERATING
    assert events(task)[-1].kind == "checked" and events(task)[-1].detail.startswith("NotFoundError (code 404)")


def test_check_is_not_offered_without_a_provider_task_id(as_staff, member):
    task = make_task(member, S.QUEUED)
    before = events(task)
    page = post(as_staff, task, "check")
    assert shown_messages(page) == [
        "Check with the provider now: not done. This task has no provider task id yet, so there is nothing to ask "
        "the provider about."]
    assert events(task) == before


def test_check_never_shows_the_callback_token(app, as_staff, member, enqueued):
    task = make_task(member, S.GENERATING, provider_task_id=upstream(flag=0).task_id)
    page = post(as_staff, task, "check")
    assert task.callback_token not in page.content.decode()


# --- Retry, archive again, stop, hide -----------------------------------------------------------------------


def test_retry_sends_the_members_task_again(as_staff, staff, member, enqueued, django_capture_on_commit_callbacks):
    task = make_task(member, S.FAILED, prompt="a snowy night", watermark="ACME")
    with django_capture_on_commit_callbacks(execute=True):
        page = post(as_staff, task, "retry")
    again = ModifyTask.objects.exclude(pk=task.pk).get()
    assert shown_messages(page) == [f"Sent again as a new task of maria (task {again.pk})."]
    assert (again.owner, again.prompt, again.watermark, again.state) == (member, "a snowy night", "ACME", S.QUEUED)
    assert enqueued == [("send", again.pk)]
    task.refresh_from_db()
    assert task.retried_as == again and task.state == S.FAILED
    retried = events(task)[-1]
    assert (retried.kind, retried.actor, retried.actor_user) == ("retried", Actor.STAFF, staff)
    assert (again.events.get().actor, again.events.get().actor_user) == (Actor.STAFF, staff)
    # Done once: the button is gone, and the member's page links the new attempt.
    assert "retry" not in dict(staff_buttons(page.content.decode()))
    assert f'href="/tasks/{again.pk}/"' in page.content.decode()


def test_retry_of_a_task_whose_upload_left_the_archive_says_so(as_staff, member, enqueued):
    task = make_task(member, S.FAILED, upload=b"movie bytes")
    task.source_file.delete(save=False)
    page = post(as_staff, task, "retry")
    assert shown_messages(page) == [
        "The original video is no longer in the archive, so it cannot be sent again: start a new task with it."]
    assert ModifyTask.objects.count() == 1 and enqueued == []


def test_archive_again_fetches_a_result_that_failed_to_archive(as_staff, staff, member, enqueued):
    task = make_task(member, S.FAILED, failed_stage=S.ARCHIVING, error="The result could not be archived: HTTP 404.")
    assert task.result_url == RESULT_URL
    page = post(as_staff, task, "rearchive")
    assert shown_messages(page) == ["Archiving the result again; the page shows how it went."]
    task.refresh_from_db()
    assert (task.state, task.error_message, task.failed_stage, task.finished_at) == (S.ARCHIVING, "", "", None)
    event = events(task)[-1]
    assert (event.kind, event.from_state, event.to_state, event.actor, event.actor_user) == (
        "rearchive", S.FAILED, S.ARCHIVING, Actor.STAFF, staff)
    assert enqueued == [("archive", task.pk)]


def test_stop_fails_a_live_task_as_stopped_by_staff(as_staff, staff, member, enqueued):
    task = make_task(member, S.GENERATING)
    page = post(as_staff, task, "stop")
    assert shown_messages(page) == ["Stopped: the task is marked failed and no longer tracked."]
    task.refresh_from_db()
    assert (task.state, task.failed_stage, task.error_message) == (S.FAILED, S.GENERATING, "Stopped by staff (sam).")
    assert task.failure_key == "stopped_by_staff"
    event = events(task)[-1]
    assert (event.kind, event.actor, event.actor_user, event.detail) == ("fail", Actor.STAFF, staff, "Stopped by staff (sam).")


def test_hide_takes_a_result_out_of_the_gallery(as_staff, staff, member, enqueued, client):
    task = make_task(member, S.SUCCEEDED, prompt="a shared night")
    page = post(as_staff, task, "hide")
    assert shown_messages(page) == ["Hidden from the gallery."]
    task.refresh_from_db()
    assert task.shared is False
    event = events(task)[-1]
    assert (event.kind, event.actor, event.actor_user) == ("unshared", Actor.STAFF, staff)
    client.force_login(make_member("ivan"))
    assert "a shared night" not in client.get("/gallery/").content.decode()


# --- Only where they apply ----------------------------------------------------------------------------------


@pytest.mark.parametrize("state, action, why", [
    (S.SUCCEEDED, "stop", "The task has already finished, so there is nothing to stop."),
    (S.FAILED, "stop", "The task has already finished, so there is nothing to stop."),
    (S.GENERATING, "retry", "Only a failed task that was not tried again yet can be retried."),
    (S.SUCCEEDED, "retry", "Only a failed task that was not tried again yet can be retried."),
    (S.FAILED, "rearchive", "Only a task whose result failed to archive can be archived again."),  # failed while queued
    (S.SUCCEEDED, "rearchive", "Only a task whose result failed to archive can be archived again."),
    (S.FAILED, "hide", "Only a result shown in the gallery can be hidden."),
    (S.GENERATING, "hide", "Only a result shown in the gallery can be hidden."),
])
def test_an_action_that_does_not_apply_changes_nothing(as_staff, member, enqueued, state, action, why):
    task = make_task(member, state)
    before = (events(task), ModifyTask.objects.count())
    page = post(as_staff, task, action)
    label = oversight.ACTIONS[action].label
    assert shown_messages(page) == [f"{label}: not done. {why}"]
    after = ModifyTask.objects.get(pk=task.pk)
    assert (after.state, after.shared, after.error_message, after.retried_as_id) == (
        task.state, task.shared, task.error_message, task.retried_as_id)
    assert (events(task), ModifyTask.objects.count()) == before and enqueued == []


def test_a_retried_task_cannot_be_retried_again(as_staff, member, enqueued):
    task = make_task(member, S.FAILED)
    post(as_staff, task, "retry")
    page = post(as_staff, task, "retry")
    assert shown_messages(page) == ["Retry: not done. Only a failed task that was not tried again yet can be retried."]
    assert ModifyTask.objects.count() == 2


def test_a_hidden_result_cannot_be_hidden_again(as_staff, member):
    task = make_task(member, S.SUCCEEDED, shared=False)
    count = len(events(task))
    page = post(as_staff, task, "hide")
    assert shown_messages(page) == ["Hide from the gallery: not done. Only a result shown in the gallery can be hidden."]
    assert len(events(task)) == count


def test_an_action_that_lost_a_race_says_the_task_moved_on(staff, member, enqueued):
    task = make_task(member, S.GENERATING)
    stale = ModifyTask.objects.get(pk=task.pk)
    assert task.fail("The provider gave up.")  # meanwhile, elsewhere
    outcome = oversight.stop(stale, staff)
    assert not outcome.ok and outcome.message == "Nothing changed: the task had moved on (it is failed now)."
    task.refresh_from_db()
    assert task.error_message == "The provider gave up."


def test_an_unknown_action_is_not_found(as_staff, member):
    assert as_staff.post(action_url(make_task(member), "delete")).status_code == 404


# --- Who may ------------------------------------------------------------------------------------------------


def test_members_are_refused_and_nothing_changes(signed_in, member):
    task = make_task(member, S.GENERATING)  # even their own task
    count = len(events(task))
    for action in oversight.ACTIONS:
        assert signed_in.post(action_url(task, action)).status_code == 403, action
    task.refresh_from_db()
    assert task.state == S.GENERATING and len(events(task)) == count


def test_anonymous_visitors_are_sent_to_sign_in(client, member):
    task = make_task(member, S.GENERATING)
    response = client.post(action_url(task, "stop"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    task.refresh_from_db()
    assert task.state == S.GENERATING


def test_a_get_is_not_allowed(as_staff, member):
    task = make_task(member, S.GENERATING)
    assert as_staff.get(action_url(task, "stop")).status_code == 405
    task.refresh_from_db()
    assert task.state == S.GENERATING


# --- Where it comes back to ---------------------------------------------------------------------------------


def test_it_comes_back_to_the_admin_page_it_was_sent_from(as_staff, member):
    task = make_task(member, S.GENERATING)
    admin_page = f"/admin/modify/modifytask/{task.pk}/change/"
    response = as_staff.post(action_url(task, "stop", admin_page))
    assert response.status_code == 302 and response["Location"] == admin_page


@pytest.mark.parametrize("elsewhere", ["https://evil.example/", "//evil.example/admin/", "/\\evil.example/"])
def test_it_never_sends_staff_to_another_site(as_staff, member, elsewhere):
    task = make_task(member, S.GENERATING)
    response = as_staff.post(action_url(task, "stop"), {"next": elsewhere})
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"


# --- The Staff section of the task page ---------------------------------------------------------------------


def tasks_in_every_situation(owner):
    return {
        "queued": make_task(owner, S.QUEUED),
        "unconfirmed": make_task(owner, S.UNCONFIRMED),
        "generating": make_task(owner, S.GENERATING),
        "archiving": make_task(owner, S.ARCHIVING),
        "shared result": make_task(owner, S.SUCCEEDED),
        "hidden result": make_task(owner, S.SUCCEEDED, shared=False),
        "failed while sending": make_task(owner, S.FAILED, failed_stage=S.SUBMITTING),
        "failed while archiving": make_task(owner, S.FAILED, failed_stage=S.ARCHIVING),
    }


EXPECTED_BUTTONS = {
    "queued": ["stop"],
    "unconfirmed": ["stop"],
    "generating": ["check", "stop"],
    "archiving": ["check", "stop"],
    "shared result": ["check", "hide"],
    "hidden result": ["check"],
    "failed while sending": ["retry"],
    "failed while archiving": ["check", "retry", "rearchive"],
}


def test_staff_see_the_actions_that_apply_on_the_task_page(as_staff, member):
    for situation, task in tasks_in_every_situation(member).items():
        page = as_staff.get(f"/tasks/{task.pk}/").content.decode()
        assert '<h2 id="staff-heading">Staff</h2>' in page, situation
        buttons = staff_buttons(page)
        assert [name for name, _ in buttons] == EXPECTED_BUTTONS[situation], situation
        # The page's conditions are the domain's: same actions, same labels, same order.
        assert buttons == [(action.name, action.label) for action in oversight.offered(task)], situation
        for name, _ in buttons:
            assert f'action="/tasks/{task.pk}/staff/{name}/"' in page
        assert f'href="/admin/modify/modifytask/{task.pk}/change/"' in page


def test_members_see_no_staff_section(signed_in, member):
    for situation, task in tasks_in_every_situation(member).items():
        page = signed_in.get(f"/tasks/{task.pk}/").content.decode()
        assert "Staff" not in page and "/staff/" not in page and staff_buttons(page) == [], situation
