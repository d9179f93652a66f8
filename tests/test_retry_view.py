"""POST /tasks/<id>/retry/: a failed task of mine goes again as a new task, same source and prompt."""

import pytest
from django.core.files.base import ContentFile

from modify.models import ModifyTask

pytestmark = pytest.mark.django_db


def failed_task(owner, **fields):
    return ModifyTask.objects.create(
        owner=owner, prompt="a snowy night", watermark="ACME", state=ModifyTask.State.FAILED,
        error_message="The provider kept failing.", **fields,
    )


def test_a_failed_upload_is_submitted_again_with_the_same_file(signed_in, member):
    task = failed_task(member, source_kind="upload", source_name="beach.mov", source_duration=2.0)
    task.source_file.save("source.mov", ContentFile(b"movie bytes"))
    response = signed_in.post(f"/tasks/{task.pk}/retry/")
    assert response.status_code == 302 and response["Location"] == "/"
    again = ModifyTask.objects.exclude(pk=task.pk).get()
    assert again.state == ModifyTask.State.QUEUED
    assert (again.prompt, again.watermark, again.source_name) == ("a snowy night", "ACME", "beach.mov")
    assert again.source_file.name.endswith("source.mov") and again.source_file.read() == b"movie bytes"
    task.refresh_from_db()
    assert task.state == ModifyTask.State.FAILED  # the old one stays as it was


def test_a_failed_url_task_is_submitted_again_with_the_same_url(signed_in, member):
    task = failed_task(member, source_kind="url", source_url="https://example.com/a.mp4")
    signed_in.post(f"/tasks/{task.pk}/retry/")
    assert ModifyTask.objects.exclude(pk=task.pk).get().source_url == "https://example.com/a.mp4"


def test_only_my_failed_tasks_can_be_retried(signed_in, member, other):
    theirs = failed_task(other, source_kind="url", source_url="https://example.com/a.mp4")
    running = ModifyTask.objects.create(owner=member, prompt="p", source_kind="url", state=ModifyTask.State.GENERATING)
    assert signed_in.post(f"/tasks/{theirs.pk}/retry/").status_code == 404
    assert signed_in.post(f"/tasks/{running.pk}/retry/").status_code == 404
    assert signed_in.get(f"/tasks/{theirs.pk}/retry/").status_code == 405
    assert ModifyTask.objects.count() == 2


def test_the_failed_card_and_page_offer_to_try_again(signed_in, member):
    task = failed_task(member, source_kind="url", source_url="https://example.com/a.mp4")
    assert f'action="/tasks/{task.pk}/retry/"' in signed_in.get("/").content.decode()
    assert f'action="/tasks/{task.pk}/retry/"' in signed_in.get(f"/tasks/{task.pk}/").content.decode()


def test_trying_again_twice_makes_one_new_task(signed_in, member):
    task = failed_task(member, source_kind="url", source_url="https://example.com/a.mp4")
    signed_in.post(f"/tasks/{task.pk}/retry/")
    signed_in.post(f"/tasks/{task.pk}/retry/")
    assert ModifyTask.objects.count() == 2
    task.refresh_from_db()
    page = signed_in.get(f"/tasks/{task.pk}/").content.decode()
    assert f'href="/tasks/{task.retried_as_id}/"' in page and "retry/" not in page
