"""The product's main job over real HTTP: studio → django-q2 → sandbox → callback or poll → archive."""

import pytest
from django.test import Client

from modify.jobs import sweep
from modify.models import ModifyTask
from modify.video_probe import probe
from sandbox.models import Task as SandboxTask
from tests.conftest import wait_for, wait_for_state
from tests.factories import backdate, make_member

pytestmark = pytest.mark.e2e


@pytest.fixture
def member(db):
    return make_member("maria", password="pw-maria-123")


@pytest.fixture
def browser_client(member):
    client = Client()
    client.force_login(member)
    return client


def submit_upload(client, path, prompt="a snowy winter night", **extra):
    with open(path, "rb") as fh:
        response = client.post("/tasks/", {"video": fh, "prompt": prompt, **extra})
    assert response.status_code == 302, response.content.decode()[:2000]
    return ModifyTask.objects.latest("created_at")


def assert_archived(task, source_duration):
    assert task.state == ModifyTask.State.SUCCEEDED, (task.state, task.error_message)
    assert task.is_sandbox
    info = probe(task.result_file.path)
    assert info.codec == "h264"
    assert abs(info.duration - source_duration) < 0.1
    assert task.result_duration == pytest.approx(info.duration)
    with open(task.poster.path, "rb") as fh:
        assert fh.read(3) == b"\xff\xd8\xff"
    assert task.submitting_at <= task.generating_at <= task.archiving_at <= task.finished_at


def submit_source(client, e2e, kind, path, prompt, **extra):
    """Submit ``path`` from the studio, as a file upload or as a public URL to it."""
    if kind == "upload":
        return submit_upload(client, path, prompt, **extra)
    from modify.provider import LumaClient

    public_url = LumaClient("sandbox-key", upload_base=f"{e2e.url}/sandbox").upload_file(path, "e2e").download_url
    response = client.post("/tasks/", {"video_url": public_url, "prompt": prompt, **extra})
    assert response.status_code == 302, response.content.decode()[:2000]
    return ModifyTask.objects.get(source_url=public_url)


@pytest.mark.parametrize("kind", ["upload", "url"])
def test_reaches_succeeded_through_the_signed_callback(e2e, browser_client, clip, kind):
    source = clip(seconds=2)
    task = submit_source(browser_client, e2e, kind, source, "a snowy winter night", watermark="ACME")
    assert task.state == ModifyTask.State.QUEUED
    assert task.source_kind == kind
    wait_for_state(task, ModifyTask.State.SUCCEEDED, timeout=90)
    assert task.callback_received_at is not None
    assert_archived(task, probe(source).duration)
    if kind == "upload":
        assert task.provider_video_url.startswith(f"{e2e.url}/sandbox/files/uploads/")
    else:
        assert task.provider_video_url == task.source_url and task.source_file  # kept, so "before" plays
    assert SandboxTask.objects.get(task_id=task.provider_task_id).watermark == "ACME"
    # Its history, in order: who did what.
    history = [(e.kind, e.from_state, e.to_state, e.actor) for e in task.events.all()]
    expected = [("created", "", "queued", "member"), ("claim", "queued", "submitting", "system")]
    if kind == "url":
        expected.append(("source_kept", "submitting", "submitting", "system"))
    expected += [("generate_sent", "submitting", "unconfirmed", "system"),
                 ("accepted", "unconfirmed", "generating", "system"),
                 ("callback_accepted", "generating", "generating", "provider"),
                 ("poll", "generating", "generating", "provider"),
                 ("result_found", "generating", "archiving", "system"),
                 ("archived", "archiving", "succeeded", "system")]
    assert history == expected
    assert task.events.get(kind="created").actor_user == task.owner
    assert task.events.get(kind="accepted").detail == task.provider_task_id
    assert task.events.get(kind="callback_accepted").detail == "first delivery"
    assert task.callback_deadline is None
    assert "successFlag 1" in task.events.get(kind="poll").detail


@pytest.mark.parametrize("kind", ["upload", "url"])
def test_reaches_succeeded_by_polling_when_callbacks_cannot_arrive(e2e, browser_client, clip, settings, kind):
    """Callbacks undeliverable (successFlag 4): the schedule's polls finalize it."""
    settings.SANDBOX_FAULTS = "callback_fail"
    settings.LUMA_POLL_FIRST_SECONDS = 0
    source = clip(seconds=1.5)
    task = submit_source(browser_client, e2e, kind, source, "film noir")
    wait_for_state(task, ModifyTask.State.GENERATING)
    sandbox_task = SandboxTask.objects.get(task_id=task.provider_task_id)
    wait_for(lambda: (sandbox_task.refresh_from_db() or sandbox_task.success_flag == 4), what="flag 4")
    backdate(task, next_poll_at=None)
    sweep()
    wait_for_state(task, ModifyTask.State.SUCCEEDED, timeout=30)
    assert task.callback_received_at is None
    assert task.poll_count >= 1
    assert_archived(task, probe(source).duration)


def test_failed_generation_shows_its_reason(e2e, browser_client, clip, settings):
    settings.SANDBOX_FAULTS = "generation_fail"
    task = submit_upload(browser_client, clip(seconds=1), prompt="make it neon")
    wait_for_state(task, ModifyTask.State.FAILED, timeout=60)
    assert task.failed_stage == ModifyTask.State.GENERATING
    assert task.error_code == 501
    assert "Try a different prompt or video" in task.error_message
    page = browser_client.get(f"/tasks/{task.pk}/").content.decode()
    assert "could not generate this video" in page


def test_duplicate_callbacks_finalize_once(e2e, browser_client, clip, settings):
    settings.SANDBOX_FAULTS = "callback_duplicate:5"
    task = submit_upload(browser_client, clip(seconds=1), prompt="sunset")
    wait_for_state(task, ModifyTask.State.SUCCEEDED, timeout=90)
    wait_for(lambda: SandboxTask.objects.get(task_id=task.provider_task_id).callbacks_sent == 5, what="5 callbacks")
    finished_at, result = task.finished_at, task.result_file.name
    task.refresh_from_db()
    assert (task.finished_at, task.result_file.name) == (finished_at, result)
    assert len(list(task.result_file.storage.listdir(result.rsplit("/", 1)[0])[1])) == 2  # result + poster


def test_early_callback_before_generate_returns_is_finalized(e2e, browser_client, clip, settings):
    settings.SANDBOX_FAULTS = "callback_early"
    task = submit_upload(browser_client, clip(seconds=1), prompt="underwater")
    wait_for_state(task, ModifyTask.State.SUCCEEDED, timeout=90)
    # generate had gone out (unconfirmed) when the callback named the task; its late answer,
    # the same id, changed nothing.
    history = [(e.kind, e.from_state, e.to_state, e.actor) for e in task.events.all()]
    assert history[:5] == [("created", "", "queued", "member"), ("claim", "queued", "submitting", "system"),
                           ("generate_sent", "submitting", "unconfirmed", "system"),
                           ("adopted", "unconfirmed", "generating", "provider"),
                           ("callback_accepted", "generating", "generating", "provider")]
    assert history[-2:] == [("result_found", "generating", "archiving", "system"),
                            ("archived", "archiving", "succeeded", "system")]
    kinds = [kind for kind, *_ in history]
    assert "accepted" not in kinds and "late_answer" not in kinds
    assert task.events.get(kind="adopted").detail == task.provider_task_id
