"""sandbox.jobs.generate when the transform crashes in a way nobody planned for: the task
must still end (flag 3, refunded, called back) instead of generating forever."""

import logging

import pytest
import requests

import sandbox.jobs
import sandbox.views
from sandbox.models import Account, Task
from tests.conftest import SANDBOX_AUTH as AUTH
from tests.conftest import SANDBOX_KEY as KEY
from tests.conftest import upload_clip


@pytest.fixture
def queued_task(api, clip, callback_receiver, monkeypatch):
    """A task created through the real generate endpoint, its job left for the test to run."""
    monkeypatch.setattr(sandbox.views, "async_task", lambda *args, **kwargs: None)
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
    monkeypatch.setattr(sandbox.views, "async_task", lambda *args, **kwargs: None)
    body = {"prompt": "Make it snow", "videoUrl": upload_clip(api, clip(seconds=1)),
            "callBackUrl": "http://\u2039x\u203a.example/cb"}
    task_id = requests.post(f"{api}/api/v1/modify/generate", headers=AUTH, json=body).json()["data"]["taskId"]
    sandbox.jobs.generate(task_id)
    task = Task.objects.get(task_id=task_id)
    assert task.success_flag == Task.Flag.CALLBACK_FAILED and task.callbacks_sent == 1
