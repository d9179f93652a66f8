"""sandbox.jobs: a task rendered at once whose outcome waits in the queue (not in a worker) until
its minimum time; and when the transform crashes in a way nobody planned for, the task must
still end (flag 3, refunded, called back) instead of generating forever."""

import logging
import time
from datetime import timedelta

import pytest
import requests
from django.core.files.storage import default_storage

import sandbox.jobs
import sandbox.schedules
from sandbox.models import Account, Task
from tests.conftest import SANDBOX_AUTH as AUTH
from tests.conftest import SANDBOX_KEY as KEY
from tests.conftest import upload_clip


@pytest.fixture
def queued_task(api, clip, callback_receiver, monkeypatch):
    """A task created through the real generate endpoint, its job left for the test to run."""
    monkeypatch.setattr(sandbox.schedules, "enqueue_generate", lambda task_id: None)
    video_url = upload_clip(api, clip(seconds=1))
    body = {"prompt": "Make it snow", "videoUrl": video_url, "callBackUrl": callback_receiver.url}
    answer = requests.post(f"{api}/api/v1/modify/generate", headers=AUTH, json=body).json()
    assert answer["code"] == 200, answer
    return answer["data"]["taskId"]


def test_a_crash_in_the_transform_fails_the_task_with_a_refund_and_a_callback(
    api, queued_task, callback_receiver, monkeypatch, caplog, settings
):
    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sandbox.jobs, "transform_video", crash)
    with caplog.at_level(logging.ERROR, logger="sandbox.jobs"):
        sandbox.jobs.generate(queued_task)

    task = Task.objects.get(task_id=queued_task)
    assert task.success_flag == Task.Flag.GENERATE_FAILED
    assert task.error_code == 501
    assert task.error_message == "Generation failed: internal error in the sandbox."
    assert Account.for_key(KEY).credits == settings.SANDBOX_INITIAL_CREDITS
    _, callback = callback_receiver.received.get(timeout=5)
    assert callback["code"] == 500 and callback["msg"] == task.error_message
    assert callback["data"]["taskId"] == queued_task and "resultUrls" not in callback["data"]
    assert "disk on fire" in caplog.text and callback_receiver.url not in caplog.text
    info = requests.get(f"{api}/api/v1/modify/record-info", headers=AUTH, params={"taskId": queued_task}).json()
    assert info["data"]["successFlag"] == 3


def test_a_callback_url_that_cannot_be_parsed_reports_flag_4(api, clip, monkeypatch):
    monkeypatch.setattr(sandbox.schedules, "enqueue_generate", lambda task_id: None)
    body = {"prompt": "Make it snow", "videoUrl": upload_clip(api, clip(seconds=1)),
            "callBackUrl": "http://\u2039x\u203a.example/cb"}
    task_id = requests.post(f"{api}/api/v1/modify/generate", headers=AUTH, json=body).json()["data"]["taskId"]
    sandbox.jobs.generate(task_id)
    task = Task.objects.get(task_id=task_id)
    assert task.success_flag == Task.Flag.CALLBACK_FAILED and task.callbacks_sent == 1


def _held_release(task_id):
    """The release package ``generate`` left in the sandbox's queue: (locked until, its args)."""
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    package = OrmQ.objects.get(key=sandbox.schedules.SANDBOX_CLUSTER)
    task = SignedPackage.loads(package.payload)
    assert task["func"] == "sandbox.jobs.release" and task["args"][0] == task_id
    return package.lock, task["args"]


def test_generate_renders_at_once_and_leaves_the_minimum_time_to_the_queue(
    api, clip, callback_receiver, monkeypatch, settings
):
    """No worker waits out SANDBOX_MIN_SECONDS: the job renders, queues the release for the due
    time and returns; the task looks in flight until the release runs."""
    settings.SANDBOX_MIN_SECONDS = 3
    monkeypatch.setattr(sandbox.schedules, "enqueue_generate", lambda task_id: None)
    body = {"prompt": "Make it snow", "videoUrl": upload_clip(api, clip(seconds=1)), "callBackUrl": callback_receiver.url}
    task_id = requests.post(f"{api}/api/v1/modify/generate", headers=AUTH, json=body).json()["data"]["taskId"]

    started = time.monotonic()
    sandbox.jobs.generate(task_id)
    assert time.monotonic() - started < 3

    task = Task.objects.get(task_id=task_id)
    locked_until, args = _held_release(task_id)
    assert locked_until == task.due_at >= task.created_at + timedelta(seconds=3)
    assert task.success_flag == Task.Flag.GENERATING and not task.result
    assert default_storage.exists(args[1]["result"])  # rendered already, not published
    info = requests.get(f"{api}/api/v1/modify/record-info", headers=AUTH, params={"taskId": task_id}).json()["data"]
    assert info["successFlag"] == 0 and info["response"] is None and info["completeTime"] is None
    assert callback_receiver.received.empty()

    sandbox.jobs.release(*args)  # as the sandbox's cluster does once the lock has passed
    _, callback = callback_receiver.received.get(timeout=5)
    assert callback["code"] == 200 and callback["data"]["taskId"] == task_id
    info = requests.get(f"{api}/api/v1/modify/record-info", headers=AUTH, params={"taskId": task_id}).json()["data"]
    assert info["successFlag"] == 1 and info["response"]["resultUrls"] == callback["data"]["resultUrls"]
    assert requests.get(info["response"]["resultUrls"][0]).headers["Content-Type"] == "video/mp4"


def test_a_failure_is_held_too_and_refunded_once_when_released(api, clip, callback_receiver, monkeypatch, settings):
    settings.SANDBOX_MIN_SECONDS = 3
    settings.SANDBOX_FAULTS = "generation_fail"
    monkeypatch.setattr(sandbox.schedules, "enqueue_generate", lambda task_id: None)
    body = {"prompt": "Make it snow", "videoUrl": upload_clip(api, clip(seconds=1)), "callBackUrl": callback_receiver.url}
    task_id = requests.post(f"{api}/api/v1/modify/generate", headers=AUTH, json=body).json()["data"]["taskId"]
    sandbox.jobs.generate(task_id)
    spent = settings.SANDBOX_INITIAL_CREDITS - settings.SANDBOX_TASK_COST
    assert Account.for_key(KEY).credits == spent  # not refunded while it looks in flight
    assert Task.objects.get(task_id=task_id).success_flag == Task.Flag.GENERATING

    _, args = _held_release(task_id)
    sandbox.jobs.release(*args)
    sandbox.jobs.release(*args)  # a second delivery of the package changes nothing
    task = Task.objects.get(task_id=task_id)
    assert task.success_flag == Task.Flag.GENERATE_FAILED and task.callbacks_sent == 1
    assert Account.for_key(KEY).credits == settings.SANDBOX_INITIAL_CREDITS
    _, callback = callback_receiver.received.get(timeout=5)
    assert callback["code"] == 500
    assert callback_receiver.received.empty()
