"""Bad input to the sandbox gets the documented 422 (or 404) envelope and a clear msg, never
a 500 or an HTML page, and costs no credits."""

import json

import pytest
import requests

from sandbox.models import Account, Task
from tests.conftest import SANDBOX_AUTH as AUTH
from tests.conftest import SANDBOX_KEY as KEY
from tests.conftest import upload_clip

JSON = {**AUTH, "Content-Type": "application/json"}
BAD_HOST = "http://\u2039x\u203a.example/clip.mp4"  # a host urllib3 cannot even parse


def post_raw(api, endpoint, raw):
    response = requests.post(f"{api}/api/{endpoint}", headers=JSON, data=raw.encode())
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.json()


@pytest.mark.parametrize("field", ["prompt", "watermark", "callBackUrl"])
def test_a_lone_surrogate_is_refused_before_any_credit_is_spent(api, clip, field):
    video_url = upload_clip(api, clip(seconds=1))
    body = {"prompt": "night", "videoUrl": video_url, "callBackUrl": "http://127.0.0.1:9/cb"}
    body[field] = body.get(field, "x") + "\\ud800"
    before = requests.get(f"{api}/api/v1/chat/credit", headers=AUTH).json()["data"]
    # json.dumps would escape the backslash: write the JSON by hand so the escape reaches the server.
    raw = json.dumps(body).replace("\\\\ud800", "\\ud800")
    answer = post_raw(api, "v1/modify/generate", raw)
    assert answer["code"] == 422 and "not valid Unicode" in answer["msg"], answer
    assert requests.get(f"{api}/api/v1/chat/credit", headers=AUTH).json()["data"] == before
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "endpoint, raw",
    [
        ("file-url-upload", '{"fileUrl": "http://x/a.mp4", "uploadPath": "v\\ud800"}'),
        ("file-base64-upload", '{"base64Data": "aGk=", "uploadPath": "v\\ud800"}'),
        ("v1/common/download-url", '{"url": "http://x/files/results/\\ud800.mp4"}'),
    ],
)
def test_lone_surrogates_elsewhere_are_refused(api, endpoint, raw):
    answer = post_raw(api, endpoint, raw)
    assert answer["code"] == 422 and "not valid Unicode" in answer["msg"], answer


@pytest.mark.parametrize(
    "endpoint, body",
    [
        ("v1/modify/generate", {"prompt": "night\u0000", "videoUrl": "http://x/a.mp4"}),
        ("v1/modify/generate", {"prompt": "night", "videoUrl": "http://x/a.mp4", "watermark": "\u0000"}),
        ("file-base64-upload", {"base64Data": "aGk=", "uploadPath": "v\u0000"}),
    ],
)
def test_a_nul_character_is_refused(api, endpoint, body):
    """PostgreSQL cannot store NUL in text: it must be a 422 before any query, not a 500 there."""
    answer = requests.post(f"{api}/api/{endpoint}", headers=AUTH, json=body).json()
    assert answer["code"] == 422 and "NUL character" in answer["msg"], answer


@pytest.mark.parametrize("endpoint", ["v1/modify/generate", "v1/common/download-url", "file-url-upload"])
def test_deeply_nested_json_is_refused(api, endpoint):
    answer = post_raw(api, endpoint, "[" * 100_000 + "]" * 100_000)
    assert answer["code"] == 422 and "nested too deeply" in answer["msg"], answer


def test_a_video_url_whose_host_cannot_be_parsed_is_unreachable_not_a_crash(api):
    answer = requests.post(
        f"{api}/api/v1/modify/generate", headers=AUTH, json={"prompt": "night", "videoUrl": BAD_HOST}
    ).json()
    assert answer["code"] == 422 and "videoUrl is not reachable" in answer["msg"], answer
    answer = requests.post(f"{api}/api/file-url-upload", headers=AUTH, json={"fileUrl": BAD_HOST, "uploadPath": "v"}).json()
    assert answer["code"] == 422 and "fileUrl is not reachable" in answer["msg"], answer


@pytest.mark.parametrize(
    "endpoint, body, message",
    [
        ("v1/modify/generate", {"prompt": 5, "videoUrl": "http://x/a.mp4"}, "prompt must be a string, not int"),
        ("v1/modify/generate", {"prompt": "night", "videoUrl": ["http://x/a.mp4"]}, "videoUrl must be a string, not list"),
        ("v1/modify/generate", {"prompt": "night", "videoUrl": "http://x/a.mp4", "watermark": 0}, "watermark must be a string"),
        ("v1/modify/generate", {"prompt": "night", "videoUrl": "http://x/a.mp4", "callBackUrl": False}, "callBackUrl must be a string"),
        ("v1/modify/generate", {"prompt": "night"}, "videoUrl is required"),
        ("v1/common/download-url", {"url": 5}, "url must be a string"),
        ("file-url-upload", {"fileUrl": "http://x/a.mp4", "uploadPath": 5}, "uploadPath must be a string"),
        ("file-base64-upload", {"base64Data": 5, "uploadPath": "v"}, "base64Data must be a string"),
    ],
)
def test_wrong_types_are_named_not_taken_for_missing(api, settings, endpoint, body, message):
    answer = requests.post(f"{api}/api/{endpoint}", headers=AUTH, json=body).json()
    assert answer["code"] == 422 and message in answer["msg"], answer
    assert Account.for_key(KEY).credits == settings.SANDBOX_INITIAL_CREDITS


@pytest.mark.parametrize("data", ["", "data:,", "data:video/mp4;base64,"])
def test_an_empty_base64_upload_is_refused(api, data):
    answer = requests.post(f"{api}/api/file-base64-upload", headers=AUTH, json={"base64Data": data, "uploadPath": "v"}).json()
    assert answer["code"] == 422 and answer["success"] is False, answer
    assert "required" in answer["msg"] or "empty" in answer["msg"]


def test_an_empty_stream_upload_is_refused(api):
    answer = requests.post(
        f"{api}/api/file-stream-upload", headers=AUTH, files={"file": ("clip.mp4", b"")}, data={"uploadPath": "v"}
    ).json()
    assert answer["code"] == 422 and "empty" in answer["msg"], answer


def test_a_small_url_upload_reports_its_real_size(api):
    small = requests.post(
        f"{api}/api/file-base64-upload", headers=AUTH, json={"base64Data": "aGVsbG8h", "uploadPath": "v", "fileName": "a.txt"}
    ).json()["data"]
    copy = requests.post(
        f"{api}/api/file-url-upload", headers=AUTH, json={"fileUrl": small["downloadUrl"], "uploadPath": "v"}
    ).json()
    assert copy["code"] == 200, copy
    assert copy["data"]["fileSize"] == 6 == len(requests.get(copy["data"]["downloadUrl"]).content)


@pytest.mark.parametrize("path", ["api/v1/modify/generate/", "api/v2/anything", "nope"])
def test_an_unknown_endpoint_is_a_json_404(api, path):
    response = requests.post(f"{api}/{path}", headers=AUTH, json={})
    assert response.status_code == 404
    assert response.json()["code"] == 404 and "No such endpoint" in response.json()["msg"]


def test_param_json_gives_the_request_back_as_sent(api, clip):
    video_url = upload_clip(api, clip(seconds=1))
    task_id = requests.post(
        f"{api}/api/v1/modify/generate", headers=AUTH, json={"prompt": "  neon city  ", "videoUrl": video_url}
    ).json()["data"]["taskId"]
    data = requests.get(f"{api}/api/v1/modify/record-info", headers=AUTH, params={"taskId": task_id}).json()["data"]
    assert json.loads(data["paramJson"]) == {"callBackUrl": "", "prompt": "  neon city  ", "videoUrl": video_url, "waterMark": ""}
