"""One whole run of the contract over real HTTP: the client against the sandbox on a live
server, generation on a real django-q2 cluster, the signed callback to a real receiver."""

import json

import av
import numpy as np
import pytest
import requests

from modify import webhooks
from modify.video_probe import probe
from modify.provider import LumaClient
from tests.conftest import E2E_HMAC_KEY, wait_for

pytestmark = pytest.mark.e2e


def sampled_frames(path, count=5):
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24").astype(np.int16) for frame in container.decode(video=0)]
    step = max(len(frames) // count, 1)
    return frames[::step][:count]


def test_upload_generate_signed_callback_result_and_expiry(e2e, clip, callback_receiver, tmp_path, settings):
    source = clip(seconds=2.0, width=320, height=240, fps=24)
    client = LumaClient("sandbox-key", api_base=f"{e2e.url}/sandbox", upload_base=f"{e2e.url}/sandbox", timeout=30)

    uploaded = client.upload_file(source, "e2e", "source.mp4")
    credits_before = client.credit()
    task_id = client.generate(
        "a snowy winter night", uploaded.download_url, callback_url=callback_receiver.url, watermark="LUMA"
    )
    assert client.credit() == credits_before - settings.SANDBOX_TASK_COST

    headers, body = callback_receiver.received.get(timeout=90)
    assert body["code"] == 200
    assert body["data"]["taskId"] == task_id
    assert json.loads(body["data"]["promptJson"])["prompt"] == "a snowy winter night"
    assert webhooks.signature_problem(
        E2E_HMAC_KEY, task_id, headers["X-Webhook-Timestamp"], headers["X-Webhook-Signature"], 60
    ) is None

    info = wait_for(lambda: (i := client.record_info(task_id)).is_success and i, what="record-info success")
    assert info.success_flag == 1
    assert info.result_urls == body["data"]["resultUrls"]
    assert info.completed_at is not None

    served = requests.get(info.result_urls[0], timeout=30)
    assert served.headers["Content-Type"] == "video/mp4"
    assert served.headers["Content-Disposition"] == f'inline; filename="{task_id}.mp4"'
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"] == "sandbox"
    result = tmp_path / "result.mp4"
    result.write_bytes(served.content)
    before, after = probe(source), probe(result)
    assert after.container == "mp4" and after.codec == "h264"
    assert abs(after.duration - before.duration) <= 1 / 24 + 0.01
    differences = [np.abs(a - b).mean() for a, b in zip(sampled_frames(source), sampled_frames(result))]
    assert min(differences) > 8, differences

    fresh = client.download_url(info.result_urls[0])
    assert requests.get(fresh, timeout=30).status_code == 200

    settings.SANDBOX_RESULT_TTL = 0
    assert requests.get(info.result_urls[0], timeout=30).status_code == 404
    assert requests.get(fresh, timeout=30).status_code == 404


@pytest.mark.parametrize(
    "fault, flag, code, message",
    [("generation_fail", 3, 501, "Generation failed"), ("create_fail", 2, 500, "Create task failed")],
)
def test_failed_tasks_refund_and_report_their_flag(e2e, clip, callback_receiver, inject_faults, fault, flag, code, message):
    inject_faults(fault)
    client = LumaClient("sandbox-key", api_base=f"{e2e.url}/sandbox", upload_base=f"{e2e.url}/sandbox")
    url = client.upload_file(clip(seconds=1), "e2e").download_url
    credits_before = client.credit()
    task_id = client.generate("make it neon", url, callback_url=callback_receiver.url)

    _, body = callback_receiver.received.get(timeout=60)
    assert body["code"] == 500 and "resultUrls" not in body["data"] and message in body["msg"]
    info = client.record_info(task_id)
    assert info.success_flag == flag and info.is_failed
    assert info.error_code == code and message in info.error_message
    assert client.credit() == credits_before


def test_undeliverable_callback_reports_flag_4(e2e, clip):
    client = LumaClient("sandbox-key", api_base=f"{e2e.url}/sandbox", upload_base=f"{e2e.url}/sandbox")
    url = client.upload_file(clip(seconds=1), "e2e").download_url
    task_id = client.generate("sunset", url, callback_url="http://127.0.0.1:9/unreachable")
    info = wait_for(lambda: (i := client.record_info(task_id)).success_flag != 0 and i, timeout=90, what="task end")
    assert info.success_flag == 4 and info.is_success
    assert info.result_urls


def test_duplicate_callbacks_are_delivered_as_configured(e2e, clip, callback_receiver, settings):
    settings.SANDBOX_FAULTS = "callback_duplicate:3"
    client = LumaClient("sandbox-key", api_base=f"{e2e.url}/sandbox", upload_base=f"{e2e.url}/sandbox")
    url = client.upload_file(clip(seconds=1), "e2e").download_url
    task_id = client.generate("forest", url, callback_url=callback_receiver.url)
    bodies = [callback_receiver.received.get(timeout=90)[1] for _ in range(3)]
    assert {b["data"]["taskId"] for b in bodies} == {task_id}
