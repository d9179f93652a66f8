"""POST /tasks/<id>/retry/: a failed task of mine goes again as a new task, same source and prompt.

Once only: the failed task links its new attempt ("See the new attempt") and logs one
"retried" event, however many clicks arrive at once."""

import contextlib
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from modify import intake
from modify.models import ModifyTask
from modify.states import Actor
from tests.factories import make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State


@pytest.fixture
def sent(monkeypatch):
    """The tasks handed to ``modify.enqueue.send_to_provider`` (nothing is really enqueued)."""
    tasks = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", tasks.append)
    return tasks


def failed_task(owner, **fields):
    return make_task(owner, S.FAILED, prompt="a snowy night", watermark="ACME", error="The provider kept failing.",
                     **fields)


def failed_upload(owner, content=b"movie bytes", name="beach.mov"):
    """A failed task whose uploaded source the member had named ``name``."""
    return failed_task(owner, upload=content, source_duration=2.0, source_name=name)


def test_a_failed_upload_is_submitted_again_with_the_same_file(signed_in, member, sent, django_capture_on_commit_callbacks):
    task = failed_upload(member)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/tasks/{task.pk}/retry/")
    assert response.status_code == 302 and response["Location"] == "/"
    again = ModifyTask.objects.exclude(pk=task.pk).get()
    assert again.state == S.QUEUED
    assert (again.prompt, again.watermark, again.source_name) == ("a snowy night", "ACME", "beach.mov")
    assert again.source_kind == ModifyTask.Source.UPLOAD and again.source_duration == 2.0
    assert again.source_file.name.endswith("source.mov") and again.source_file.read() == b"movie bytes"
    assert again.source_file.name != task.source_file.name  # its own copy
    assert [t.pk for t in sent] == [again.pk]  # its sending is enqueued once committed
    created = again.events.get()
    assert (created.kind, created.actor, created.actor_user) == ("created", Actor.MEMBER, member)
    assert created.detail == f"retry of task {task.pk}"
    task.refresh_from_db()
    assert task.state == S.FAILED  # the old one stays as it was
    assert task.retried_as == again
    retried = task.events.get(kind="retried")
    assert (retried.actor, retried.actor_user, retried.detail) == (Actor.MEMBER, member, f"as task {again.pk}")


def test_a_failed_url_task_is_submitted_again_with_the_same_url(signed_in, member):
    task = failed_task(member, url="https://example.com/a.mp4")
    signed_in.post(f"/tasks/{task.pk}/retry/")
    again = ModifyTask.objects.exclude(pk=task.pk).get()
    assert (again.source_kind, again.source_url) == (ModifyTask.Source.URL, "https://example.com/a.mp4")
    assert not again.source_file


def test_only_my_failed_tasks_can_be_retried(signed_in, member, other):
    theirs = failed_task(other, url="https://example.com/a.mp4")
    running = make_task(member, S.GENERATING)
    assert signed_in.post(f"/tasks/{theirs.pk}/retry/").status_code == 404
    assert signed_in.post(f"/tasks/{running.pk}/retry/").status_code == 404
    assert signed_in.get(f"/tasks/{theirs.pk}/retry/").status_code == 405
    assert ModifyTask.objects.count() == 2
    assert not theirs.events.filter(kind="retried").exists()


def test_the_failed_card_and_page_offer_to_try_again(signed_in, member):
    task = failed_task(member, url="https://example.com/a.mp4")
    assert f'action="/tasks/{task.pk}/retry/"' in signed_in.get("/").content.decode()
    assert f'action="/tasks/{task.pk}/retry/"' in signed_in.get(f"/tasks/{task.pk}/").content.decode()


def test_once_retried_card_and_page_link_the_new_attempt(signed_in, member):
    task = failed_task(member, url="https://example.com/a.mp4")
    again = intake.retry(task, by=member)
    card = signed_in.get(f"/tasks/{task.pk}/status/").content.decode()
    page = signed_in.get(f"/tasks/{task.pk}/").content.decode()
    assert f'<a class="note" href="/tasks/{again.pk}/">See the new attempt</a>' in card
    assert f'<a class="button" href="/tasks/{again.pk}/">See the new attempt</a>' in page
    for html in (card, page):
        assert "/retry/" not in html and "Try again" not in html
    studio = signed_in.get("/").content.decode()
    assert f'href="/tasks/{again.pk}/">See the new attempt</a>' in studio and f"/tasks/{task.pk}/retry/" not in studio
    assert "Tried again as a new task: as task" in page  # the timeline says so too


def test_trying_again_twice_makes_one_new_task(signed_in, member):
    task = failed_task(member, url="https://example.com/a.mp4")
    signed_in.post(f"/tasks/{task.pk}/retry/")
    assert signed_in.post(f"/tasks/{task.pk}/retry/").status_code == 302
    assert ModifyTask.objects.count() == 2
    task.refresh_from_db()
    assert task.events.filter(kind="retried").count() == 1
    page = signed_in.get(f"/tasks/{task.pk}/").content.decode()
    assert f'href="/tasks/{task.retried_as_id}/"' in page and "retry/" not in page


def test_retry_in_code_twice_returns_the_same_new_task(member):
    task = failed_task(member, url="https://example.com/a.mp4")
    first = intake.retry(task, by=member)
    assert intake.retry(task, by=member) == first
    assert intake.retry(ModifyTask.objects.get(pk=task.pk), by=member) == first  # a stale copy finds it too
    assert ModifyTask.objects.count() == 2


def source_files():
    root = Path(settings.MEDIA_ROOT) / "sources"
    return {str(path.relative_to(settings.MEDIA_ROOT)) for path in root.rglob("*") if path.is_file()}


@pytest.mark.django_db(transaction=True)
def test_eight_simultaneous_clicks_make_one_retry_and_leave_no_orphan_files(member, sent, monkeypatch):
    task = failed_upload(member, content=b"movie bytes " * 1000)
    before = source_files()
    clicks = 8
    # Widen the race: a click that copies the source waits (a little) for the other clicks to
    # have copied theirs too, so that every run has losers whose copies must be deleted again.
    storage = ModifyTask._meta.get_field("source_file").storage
    copied = threading.Barrier(clicks)
    copies, save = [], storage.save

    def save_then_wait(name, content, *args, **kwargs):
        stored = save(name, content, *args, **kwargs)
        copies.append(stored)
        with contextlib.suppress(threading.BrokenBarrierError):
            copied.wait(timeout=5)
        return stored

    monkeypatch.setattr(storage, "save", save_then_wait)
    clients = []
    for _ in range(clicks):
        client = Client(raise_request_exception=False)
        client.force_login(member)
        clients.append(client)
    start = threading.Barrier(clicks)
    answers = [None] * clicks

    def click(n):
        try:
            start.wait()
            response = clients[n].post(f"/tasks/{task.pk}/retry/")
            answers[n] = (response.status_code, response.get("Location"))
        except Exception as error:  # recorded, so the assertion below shows it
            answers[n] = repr(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(n,)) for n in range(clicks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    assert answers == [(302, "/")] * clicks  # every click is sent back to the studio: no 500
    again = ModifyTask.objects.exclude(pk=task.pk).get()  # exactly one new task
    task.refresh_from_db()
    assert task.retried_as_id == again.pk
    assert task.events.filter(kind="retried").count() == 1
    assert [t.pk for t in sent] == [again.pk]  # sent once
    # One copy of the source, the new task's; the losers' copies were deleted again.
    assert source_files() - before == {again.source_file.name}, f"{len(copies)} clicks copied the source"
    assert source_files() >= before
    with again.source_file.open("rb") as copy:
        assert copy.read() == b"movie bytes " * 1000


def test_a_failed_upload_whose_source_left_the_archive_says_so(signed_in, member, sent):
    task = failed_upload(member)
    task.source_file.storage.delete(task.source_file.name)
    response = signed_in.post(f"/tasks/{task.pk}/retry/", follow=True)
    assert response.status_code == 200 and response.redirect_chain[-1][0] == f"/tasks/{task.pk}/"
    assert "The original video is no longer in the archive" in response.content.decode()
    assert ModifyTask.objects.count() == 1 and not sent
    assert not task.events.filter(kind="retried").exists()


def test_a_members_own_retry_counts_against_their_quota(signed_in, member, sent):
    from team.models import Quota

    task = failed_upload(member)
    Quota.objects.create(member=member, tasks_per_day=1)  # the failed task was today's one
    response = signed_in.post(f"/tasks/{task.pk}/retry/", follow=True)
    assert "limit of 1 task per day" in response.content.decode()
    assert ModifyTask.objects.count() == 1 and not sent and not task.events.filter(kind="retried").exists()
