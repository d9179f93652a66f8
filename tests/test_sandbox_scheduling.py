"""sandbox.schedules on real clusters: the sandbox's tasks wait out their minimum time in their own
queue, so the app's jobs never queue behind them, and a task completes at its due time, not before."""

import time

import pytest
from django.test import Client
from django.utils import timezone

from modify.models import ModifyTask
from modify.provider import LumaClient
from sandbox.models import Task
from tests.conftest import SANDBOX_KEY, wait_for
from tests.factories import make_member

pytestmark = pytest.mark.e2e

MIN_SECONDS = 3


@pytest.fixture
def sandbox_client(e2e, settings):
    settings.SANDBOX_MIN_SECONDS = MIN_SECONDS
    base = f"{e2e.url}/sandbox"
    return LumaClient(SANDBOX_KEY, api_base=base, upload_base=base, timeout=30)


def test_an_app_task_is_sent_at_once_while_sandbox_tasks_wait(sandbox_client, clip):
    video_url = sandbox_client.upload_file(clip(seconds=1), "tests").download_url
    waiting = [sandbox_client.generate(f"a snowy night {n}", video_url) for n in range(4)]
    client = Client()
    client.force_login(make_member("maria"))
    with open(clip(seconds=1), "rb") as fh:
        started = time.monotonic()
        assert client.post("/tasks/", {"video": fh, "prompt": "a sunny day"}).status_code == 302
    task = ModifyTask.objects.get()

    # Sending it (a job on the app's cluster: upload, then generate) is not behind the four.
    wait_for(lambda: task.refresh_from_db() or task.provider_task_id, timeout=30, interval=0.05, what="the app's job")
    took, sent_at = time.monotonic() - started, timezone.now()
    assert took < 2.5
    assert sent_at < Task.objects.get(task_id=waiting[0]).due_at  # before any sandbox task could end
    assert all(sandbox_client.record_info(task_id).is_pending for task_id in waiting)


def test_a_task_completes_soon_after_its_minimum_time_and_not_before(sandbox_client, clip, callback_receiver):
    video_url = sandbox_client.upload_file(clip(seconds=1), "tests").download_url
    task_id = sandbox_client.generate("a snowy night", video_url, callback_url=callback_receiver.url)
    task = Task.objects.get(task_id=task_id)
    wait_for(lambda: task.refresh_from_db() or task.callbacks_sent or task.success_flag, interval=0.05, what="completion")
    _, callback = callback_receiver.received.get(timeout=5)
    info = sandbox_client.record_info(task_id)
    assert info.is_success and callback["data"]["resultUrls"] == info.result_urls

    took = (task.completed_at - task.created_at).total_seconds()
    assert MIN_SECONDS <= took < MIN_SECONDS + 2, took
