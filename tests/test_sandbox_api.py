"""The sandbox answers the upstream contract endpoint by endpoint, over real HTTP."""

import base64
import importlib

import pytest
import requests
from django.test import override_settings
from django.urls import Resolver404, clear_url_caches, resolve

import lumaweb.urls
from sandbox.models import Account, Task

from tests.conftest import SANDBOX_AUTH as AUTH
from tests.conftest import SANDBOX_KEY as KEY
from tests.conftest import upload_clip


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/api/v1/modify/generate"),
        ("get", "/api/v1/modify/record-info?taskId=x"),
        ("get", "/api/v1/chat/credit"),
        ("post", "/api/v1/common/download-url"),
        ("post", "/api/file-stream-upload"),
        ("post", "/api/file-url-upload"),
        ("post", "/api/file-base64-upload"),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic abc"}])
def test_every_endpoint_rejects_missing_or_wrong_keys(api, method, path, headers):
    response = getattr(requests, method)(f"{api}{path}", headers=headers)
    body = response.json()
    assert body["code"] == 401
    assert "API key" in body["msg"]
    assert body["data"] is None


def test_credit_answers_the_envelope_with_the_balance(api, settings):
    settings.SANDBOX_INITIAL_CREDITS = 77
    body = requests.get(f"{api}/api/v1/chat/credit", headers=AUTH).json()
    assert body == {"code": 200, "msg": "success", "data": 77}


def test_stream_upload_serves_the_file_back(api, clip):
    path = clip(seconds=1)
    with open(path, "rb") as fh:
        body = requests.post(
            f"{api}/api/file-stream-upload",
            headers=AUTH,
            files={"file": ("holiday.mp4", fh)},
            data={"uploadPath": "videos/team", "fileName": "beach.mp4"},
        ).json()
    assert body["success"] is True and body["code"] == 200
    data = body["data"]
    assert set(data) == {"fileName", "filePath", "downloadUrl", "fileSize", "mimeType", "uploadedAt"}
    assert data["fileName"] == "beach.mp4"
    assert data["filePath"] == "videos/team/beach.mp4"
    assert data["mimeType"] == "video/mp4"
    assert data["fileSize"] == path.stat().st_size
    assert requests.get(data["downloadUrl"]).content == path.read_bytes()


def test_url_upload_copies_a_public_file(api, clip):
    original = upload_clip(api, clip(seconds=1))
    body = requests.post(
        f"{api}/api/file-url-upload", headers=AUTH, json={"fileUrl": original, "uploadPath": "copies"}
    ).json()
    assert body["code"] == 200, body
    assert requests.get(body["data"]["downloadUrl"]).content == requests.get(original).content


def test_base64_upload_accepts_plain_and_data_urls(api):
    payload = b"\x00\x01hello video bytes"
    plain = requests.post(
        f"{api}/api/file-base64-upload",
        headers=AUTH,
        json={"base64Data": base64.b64encode(payload).decode(), "uploadPath": "b64", "fileName": "x.bin"},
    ).json()
    data_url = requests.post(
        f"{api}/api/file-base64-upload",
        headers=AUTH,
        json={"base64Data": "data:video/mp4;base64," + base64.b64encode(payload).decode(), "uploadPath": "b64"},
    ).json()
    assert requests.get(plain["data"]["downloadUrl"]).content == payload
    assert data_url["data"]["mimeType"] == "video/mp4"


@pytest.mark.parametrize(
    "endpoint, body, message",
    [
        ("file-base64-upload", {"base64Data": "%%%not base64", "uploadPath": "x"}, "not valid base64"),
        ("file-base64-upload", {"base64Data": "aGk="}, "uploadPath is required"),
        ("file-url-upload", {"fileUrl": "ftp://example.com/a.mp4", "uploadPath": "x"}, "http or https"),
        ("file-url-upload", {"fileUrl": "http://127.0.0.1:9/nothing.mp4", "uploadPath": "x"}, "not reachable"),
    ],
)
def test_bad_uploads_get_422_with_a_clear_message(api, endpoint, body, message):
    answer = requests.post(f"{api}/api/{endpoint}", headers=AUTH, json=body).json()
    assert answer["code"] == 422 and answer["success"] is False
    assert message in answer["msg"]


def test_stream_upload_without_a_file_is_422(api):
    answer = requests.post(f"{api}/api/file-stream-upload", headers=AUTH, data={"uploadPath": "x"}).json()
    assert answer["code"] == 422 and "file is required" in answer["msg"]


def test_uploads_expire(api, clip, settings):
    url = upload_clip(api, clip(seconds=1))
    assert requests.get(url).status_code == 200
    settings.SANDBOX_UPLOAD_TTL = 0
    assert requests.get(url).status_code == 404


@pytest.mark.parametrize(
    "body, message",
    [
        ({"videoUrl": "http://x/a.mp4"}, "prompt"),
        ({"prompt": "Make it snow", "videoUrl": ""}, "videoUrl is required"),
        ({"prompt": "Make it snow", "videoUrl": "file:///etc/passwd"}, "http or https"),
        ({"prompt": "Make it snow", "videoUrl": "http://127.0.0.1:9/gone.mp4"}, "not reachable"),
        ({"prompt": "Сделай снег", "videoUrl": "http://x/a.mp4"}, "English"),
        ({"prompt": "Make it snow", "videoUrl": "http://x/a.mp4", "callBackUrl": "nope"}, "callBackUrl"),
    ],
)
def test_generate_validates_like_the_real_service(api, body, message):
    answer = requests.post(f"{api}/api/v1/modify/generate", headers=AUTH, json=body).json()
    assert answer["code"] == 422, answer
    assert message in answer["msg"]
    assert not Task.objects.exists()


def test_generate_rejects_a_url_that_is_not_a_video(api):
    text_url = requests.post(
        f"{api}/api/file-base64-upload",
        headers=AUTH,
        json={"base64Data": base64.b64encode(b"just some text").decode(), "uploadPath": "x", "fileName": "a.mp4"},
    ).json()["data"]["downloadUrl"]
    answer = requests.post(
        f"{api}/api/v1/modify/generate", headers=AUTH, json={"prompt": "Make it snow", "videoUrl": text_url}
    ).json()
    assert answer["code"] == 422 and "MP4, MOV or AVI" in answer["msg"]


def test_generate_rejects_videos_longer_than_10_seconds(api, clip):
    url = upload_clip(api, clip(seconds=11, width=64, height=48, fps=10))
    answer = requests.post(
        f"{api}/api/v1/modify/generate", headers=AUTH, json={"prompt": "Make it snow", "videoUrl": url}
    ).json()
    assert answer["code"] == 422 and "10 s" in answer["msg"]
    assert Account.for_key(KEY).credits == 1000


def test_generate_rejects_videos_larger_than_the_limit(api, clip, settings):
    url = upload_clip(api, clip(seconds=1))
    settings.LUMA_MAX_VIDEO_BYTES = 1000
    answer = requests.post(
        f"{api}/api/v1/modify/generate", headers=AUTH, json={"prompt": "Make it snow", "videoUrl": url}
    ).json()
    assert answer["code"] == 422 and "larger than" in answer["msg"]


def test_generate_spends_credits_and_answers_402_when_out(api, clip, settings):
    settings.SANDBOX_INITIAL_CREDITS = 15
    settings.SANDBOX_TASK_COST = 10
    url = upload_clip(api, clip(seconds=1))
    first = requests.post(
        f"{api}/api/v1/modify/generate", headers=AUTH, json={"prompt": "Make it snow", "videoUrl": url}
    ).json()
    assert first["code"] == 200 and len(first["data"]["taskId"]) == 32
    int(first["data"]["taskId"], 16)
    second = requests.post(
        f"{api}/api/v1/modify/generate", headers=AUTH, json={"prompt": "Make it snow", "videoUrl": url}
    ).json()
    assert second["code"] == 402 and "credits" in second["msg"].lower()
    assert requests.get(f"{api}/api/v1/chat/credit", headers=AUTH).json()["data"] == 5


def test_record_info_reports_a_task_in_flight(api, clip):
    url = upload_clip(api, clip(seconds=1))
    task_id = requests.post(
        f"{api}/api/v1/modify/generate",
        headers=AUTH,
        json={"prompt": "Make it snow", "videoUrl": url, "callBackUrl": "http://127.0.0.1:9/cb", "watermark": "ACME"},
    ).json()["data"]["taskId"]
    data = requests.get(f"{api}/api/v1/modify/record-info", headers=AUTH, params={"taskId": task_id}).json()["data"]
    assert data["taskId"] == task_id
    assert data["successFlag"] == 0
    assert data["response"] is None and data["completeTime"] is None
    assert isinstance(data["createTime"], int)
    import json

    assert json.loads(data["paramJson"]) == {
        "callBackUrl": "http://127.0.0.1:9/cb",
        "prompt": "Make it snow",
        "videoUrl": url,
        "waterMark": "ACME",
    }


def test_record_info_of_an_unknown_task_is_404(api):
    answer = requests.get(f"{api}/api/v1/modify/record-info", headers=AUTH, params={"taskId": "0" * 32}).json()
    assert answer["code"] == 404 and "not found" in answer["msg"]


def test_download_url_only_accepts_files_the_sandbox_generated(api, clip):
    own = upload_clip(api, clip(seconds=1))
    fresh = requests.post(f"{api}/api/v1/common/download-url", headers=AUTH, json={"url": own}).json()
    assert fresh["code"] == 200
    assert fresh["data"].startswith(own + "?token=")
    assert requests.get(fresh["data"]).status_code == 200
    forged = fresh["data"][:-4] + "abcd"
    assert requests.get(forged).status_code == 403
    foreign = requests.post(
        f"{api}/api/v1/common/download-url", headers=AUTH, json={"url": "https://example.com/x.mp4"}
    ).json()
    assert foreign["code"] == 422 and "generated by this service" in foreign["msg"]


@pytest.mark.parametrize("fault, code", [("rate_limit:2", 429), ("server_error:1", 500), ("maintenance:1", 455)])
def test_request_faults_answer_their_code_then_recover(api, inject_faults, fault, code):
    inject_faults(fault)
    count = int(fault.split(":")[1])
    codes = [requests.get(f"{api}/api/v1/chat/credit", headers=AUTH).json()["code"] for _ in range(count + 1)]
    assert codes == [code] * count + [200]


def test_malformed_json_is_422_not_a_traceback(api):
    response = requests.post(f"{api}/api/v1/modify/generate", headers={**AUTH, "Content-Type": "application/json"}, data=b"{oops")
    assert response.status_code == 200
    assert response.json()["code"] == 422 and "not valid JSON" in response.json()["msg"]


def test_a_body_over_djangos_size_limit_is_the_422_envelope_not_an_html_400(api, settings):
    body = {"base64Data": "A" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "uploadPath": "x"}
    response = requests.post(f"{api}/api/file-base64-upload", headers=AUTH, json=body)
    assert response.status_code == 200
    assert response.json() == {
        "code": 422,
        "msg": "The request body is larger than 10 MB: send big files with file-stream-upload.",
        "data": None,
        "success": False,
    }


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("multipart/form-data", b"--x\r\n"),
        ("application/x-www-form-urlencoded; charset=latin-1", b"uploadPath=x"),
    ],
)
def test_a_request_django_cannot_parse_is_the_422_envelope(api, content_type, data):
    headers = {**AUTH, "Content-Type": content_type}
    response = requests.post(f"{api}/api/file-stream-upload", headers=headers, data=data)
    assert response.status_code == 200
    assert response.json()["code"] == 422 and "could not be parsed" in response.json()["msg"]


def test_the_sandbox_is_not_reachable_when_disabled(api, settings):
    settings.SANDBOX_ENABLED = False
    assert requests.get(f"{api}/api/v1/chat/credit", headers=AUTH).status_code == 404


@pytest.fixture
def urls_without_sandbox():
    """lumaweb.urls as it is built when SANDBOX_ENABLED is false; rebuilt as before afterwards."""

    def rebuild():
        importlib.reload(lumaweb.urls)
        clear_url_caches()

    try:
        with override_settings(SANDBOX_ENABLED=False):
            rebuild()
            yield
    finally:
        rebuild()


def test_the_sandbox_is_not_even_mounted_when_disabled(urls_without_sandbox):
    with pytest.raises(Resolver404):
        resolve("/sandbox/api/v1/chat/credit")
    assert resolve("/admin/").namespace == "admin"


@pytest.mark.parametrize(
    "endpoint, body, message",
    [
        ("v1/modify/generate", {"prompt": "snow", "videoUrl": "http://[oops/a.mp4"}, "videoUrl is not a valid URL"),
        ("v1/modify/generate", {"prompt": "snow", "videoUrl": "http://x/" + "a" * 2001}, "longer than 2000"),
        ("v1/modify/generate", {"prompt": "snow", "videoUrl": "http://x/a.mp4", "callBackUrl": "http://[x"}, "callBackUrl is not a valid URL"),
        ("v1/common/download-url", {"url": "http://[oops"}, "url is not a valid URL"),
        ("file-url-upload", {"fileUrl": "http://[oops", "uploadPath": "x"}, "fileUrl is not a valid URL"),
        ("file-base64-upload", {"base64Data": "aGk=", "uploadPath": "x" * 256}, "uploadPath is longer than 255"),
    ],
)
def test_malformed_urls_and_overlong_fields_get_422(api, endpoint, body, message):
    answer = requests.post(f"{api}/api/{endpoint}", headers=AUTH, json=body).json()
    assert answer["code"] == 422 and message in answer["msg"], answer


def test_a_non_ascii_key_is_refused_not_a_crash(api):
    response = requests.get(f"{api}/api/v1/chat/credit", headers={"Authorization": "Bearer ключ".encode()})
    assert response.status_code == 200 and response.json()["code"] == 401
