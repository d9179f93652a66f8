"""The sandbox's file host over real HTTP: what a client's upload is named, how it is served
from the app's own origin, and which file a download-url link opens."""

import base64

import pytest
import requests

import sandbox.views
from tests.conftest import SANDBOX_AUTH as AUTH
from tests.conftest import upload_clip

PAGE = b"<html><script>alert(document.cookie)</script></html>"


def upload_base64(api, content, **fields):
    body = {"base64Data": base64.b64encode(content).decode(), "uploadPath": "files", **fields}
    return requests.post(f"{api}/api/file-base64-upload", headers=AUTH, json=body).json()


def upload_stream(api, content, name):
    return requests.post(
        f"{api}/api/file-stream-upload", headers=AUTH, files={"file": (name, content)}, data={"uploadPath": "files"}
    ).json()


def upload_from_url(api, content, name):
    source = upload_base64(api, content, fileName="source.bin")["data"]["downloadUrl"]
    body = {"fileUrl": source, "uploadPath": "files", "fileName": name}
    return requests.post(f"{api}/api/file-url-upload", headers=AUTH, json=body).json()


def upload_named_base64(api, content, name):
    return upload_base64(api, content, fileName=name)


@pytest.mark.parametrize("upload", [upload_named_base64, upload_stream, upload_from_url])
def test_an_uploaded_page_is_a_sandboxed_attachment_never_html(api, upload):
    answer = upload(api, PAGE, "evil.html")
    assert answer["code"] == 200, answer
    response = requests.get(answer["data"]["downloadUrl"])
    assert response.content == PAGE
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"


def test_images_keep_their_type_but_are_attachments(api):
    url = upload_base64(api, b"\x89PNG\r\n\x1a\n", fileName="still.png")["data"]["downloadUrl"]
    response = requests.get(url)
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["Content-Security-Policy"] == "sandbox"


def test_videos_play_inline_but_are_still_sandboxed(api, clip):
    response = requests.get(upload_clip(api, clip(seconds=1)))
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Content-Disposition"].startswith("inline")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"


@pytest.mark.parametrize(
    "fields, name",
    [
        ({"fileName": "???"}, "upload.bin"),
        ({"fileName": "???", "base64Data": "data:video/mp4;base64,aGk="}, "upload.mp4"),
        ({"fileName": "???.mov"}, "upload.mov"),
        ({"fileName": "../../etc/my clip.mp4"}, "my_clip.mp4"),
        ({"fileName": "a" * 300 + ".mp4"}, "a" * 100 + ".mp4"),
        ({}, "upload.bin"),
    ],
)
def test_unusable_file_names_fall_back_to_a_safe_one(api, fields, name):
    answer = upload_base64(api, b"hi", **fields)
    assert answer["code"] == 200, answer
    assert answer["data"]["fileName"] == name
    assert answer["data"]["downloadUrl"].endswith(f"/{name}")
    assert requests.get(answer["data"]["downloadUrl"]).content == b"hi"


def test_a_stream_upload_named_only_with_symbols_gets_an_extension_from_its_type(api):
    answer = requests.post(
        f"{api}/api/file-stream-upload",
        headers=AUTH,
        files={"file": ("???", b"data", "video/mp4")},
        data={"uploadPath": "files"},
    ).json()
    assert answer["code"] == 200, answer
    assert answer["data"]["fileName"] == "upload.mp4"


@pytest.mark.parametrize("endpoint", ["file-base64-upload", "file-url-upload"])
@pytest.mark.parametrize("file_name", [123, ["a.mp4"], {"name": "a.mp4"}])
def test_a_file_name_that_is_not_a_string_is_422(api, endpoint, file_name):
    body = {"base64Data": "aGk=", "fileUrl": "http://127.0.0.1:9/a.mp4", "uploadPath": "x", "fileName": file_name}
    answer = requests.post(f"{api}/api/{endpoint}", headers=AUTH, json=body).json()
    assert answer["code"] == 422 and answer["success"] is False
    assert answer["msg"] == "fileName must be a string."


def test_a_download_link_opens_only_the_file_it_was_made_for(api):
    first = upload_base64(api, b"first", fileName="a.mp4")["data"]["downloadUrl"]
    second = upload_base64(api, b"second", fileName="b.mp4")["data"]["downloadUrl"]
    link = requests.post(f"{api}/api/v1/common/download-url", headers=AUTH, json={"url": first}).json()["data"]
    token = link.partition("?")[2]
    assert requests.get(link).content == b"first"
    assert requests.get(f"{second}?{token}").status_code == 403


def test_a_download_link_stops_working_after_its_lifetime(api, monkeypatch):
    url = upload_base64(api, b"data", fileName="a.mp4")["data"]["downloadUrl"]
    link = requests.post(f"{api}/api/v1/common/download-url", headers=AUTH, json={"url": url}).json()["data"]
    monkeypatch.setattr(sandbox.views, "DOWNLOAD_URL_SECONDS", -1)  # every link is now too old
    response = requests.get(link)
    assert response.status_code == 403 and b"expired" in response.content
