"""LumaClient against a real local HTTP server that plays the provider."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from modify import provider
from tests.httpserver import local_server
from modify.provider import (
    AuthenticationError, FeatureDisabledError, GenerationFailedError, InsufficientCreditsError,
    LumaClient, MaintenanceError, NotFoundError, ProtocolError, ProviderError, ProviderUnavailable,
    RateLimitError, RecordInfo, ServerError, UploadedFile, ValidationError, error_for,
)

API_KEY = "sk-test-S3CRET-0123456789abcdef"
TASK_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class Canned:
    status: int = 200
    body: dict | bytes = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: object  # email.message.Message: case-insensitive get()
    body: bytes

    def json(self):
        return json.loads(self.body)

    def form(self) -> dict:
        """multipart/form-data fields: name -> (filename, bytes)."""
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        return {part.get_param("name", header="content-disposition"):
                (part.get_filename(), part.get_payload(decode=True)) for part in message.iter_parts()}


class Upstream:
    def __init__(self):
        self.answers: dict[tuple[str, str], Canned] = {}
        self.seen: list[Seen] = []
        self.stop = threading.Event()
        self.url = ""

    def answer(self, method: str, path: str, body: dict | bytes, status: int = 200, **kw) -> None:
        self.answers[(method, path)] = Canned(status, body, **kw)

    @property
    def last(self) -> Seen:
        return self.seen[-1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one(self):
        upstream: Upstream = self.server.upstream
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        upstream.seen.append(Seen(self.command, parts.path, parse_qs(parts.query), self.headers, body))
        canned = upstream.answers.get((self.command, parts.path), Canned(404, b"no route"))
        upstream.stop.wait(canned.delay)
        payload = canned.body if isinstance(canned.body, bytes) else json.dumps(canned.body).encode()
        self.send_response(canned.status)
        headers = {"Content-Type": "application/json", **canned.headers, "Content-Length": len(payload)}
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = handle_one

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    with local_server(Handler, upstream=Upstream()) as server:
        server.upstream.url = server.url
        yield server.upstream
        server.upstream.stop.set()


@pytest.fixture
def client(upstream):
    return LumaClient(API_KEY, api_base=upstream.url, upload_base=upstream.url + "/up", timeout=2.0)


def ok(data, **extra):
    return {"code": 200, "msg": "success", "data": data, **extra}


UPLOADED = {"fileName": "clip.mp4", "filePath": "videos/clip.mp4", "downloadUrl": "https://files.example/clip.mp4",
            "fileSize": 5, "mimeType": "video/mp4", "uploadedAt": "2025-01-01T00:00:00Z"}


def assert_authenticated_json(seen: Seen, method: str, path: str):
    assert (seen.method, seen.path) == (method, path)
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    if method == "POST":
        assert seen.headers["Content-Type"] == "application/json"


# --- request shapes and typed results ---------------------------------------------------

def test_generate_sends_contract_keys_and_returns_task_id(upstream, client):
    upstream.answer("POST", "/api/v1/modify/generate", ok({"taskId": TASK_ID}))
    assert client.generate("make it snow", "https://v.example/a.mp4",
                           callback_url="https://app.example/cb", watermark="wm-1") == TASK_ID
    assert_authenticated_json(upstream.last, "POST", "/api/v1/modify/generate")
    assert upstream.last.json() == {"prompt": "make it snow", "videoUrl": "https://v.example/a.mp4",
                                    "callBackUrl": "https://app.example/cb", "watermark": "wm-1"}


def test_generate_omits_optional_keys(upstream, client):
    upstream.answer("POST", "/api/v1/modify/generate", ok({"taskId": TASK_ID}))
    client.generate("p", "https://v.example/a.mp4")
    assert set(upstream.last.json()) == {"prompt", "videoUrl"}


def record(flag, **overrides):
    data = {"taskId": TASK_ID, "successFlag": flag, "createTime": 1700000000123, "completeTime": None,
            "paramJson": json.dumps({"prompt": "snow", "videoUrl": "https://v.example/a.mp4"}),
            "response": None, "errorCode": None, "errorMessage": None}
    return ok({**data, **overrides})


@pytest.mark.parametrize("flag, pending, success, failed", [
    (0, True, False, False), (1, False, True, False), (2, False, False, True),
    (3, False, False, True), (4, False, True, False),  # 4: only the callback failed
])
def test_record_info_success_flags(upstream, client, flag, pending, success, failed):
    upstream.answer("GET", "/api/v1/modify/record-info", record(flag))
    info = client.record_info(TASK_ID)
    assert_authenticated_json(upstream.last, "GET", "/api/v1/modify/record-info")
    assert upstream.last.query == {"taskId": [TASK_ID]}
    assert (info.success_flag, info.is_pending, info.is_success, info.is_failed) == (flag, pending, success, failed)


def test_record_info_parses_everything(upstream, client):
    upstream.answer("GET", "/api/v1/modify/record-info", record(
        1, completeTime=1700000300000, errorCode=None,
        response={"taskId": TASK_ID, "originUrls": ["https://o/1.mp4"], "resultUrls": ["https://r/1.mp4"]}))
    assert client.record_info(TASK_ID) == RecordInfo(
        task_id=TASK_ID, success_flag=1, params={"prompt": "snow", "videoUrl": "https://v.example/a.mp4"},
        origin_urls=["https://o/1.mp4"], result_urls=["https://r/1.mp4"],
        created_at=datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc),
        completed_at=datetime(2023, 11, 14, 22, 18, 20, tzinfo=timezone.utc),
        error_code=None, error_message=None)


def test_record_info_failure_and_invalid_param_json(upstream, client):
    upstream.answer("GET", "/api/v1/modify/record-info",
                    record(3, paramJson="{not json", errorCode=501, errorMessage="content policy", createTime=None))
    info = client.record_info(TASK_ID)
    assert (info.params, info.origin_urls, info.result_urls, info.created_at) == ({}, [], [], None)
    assert (info.error_code, info.error_message, info.is_failed) == (501, "content policy", True)


def test_credit(upstream, client):
    upstream.answer("GET", "/api/v1/chat/credit", ok(1234))
    assert client.credit() == 1234
    assert_authenticated_json(upstream.last, "GET", "/api/v1/chat/credit")


def test_download_url(upstream, client):
    upstream.answer("POST", "/api/v1/common/download-url", ok("https://files.example/fresh?sig=1"))
    assert client.download_url("https://files.example/result.mp4") == "https://files.example/fresh?sig=1"
    assert_authenticated_json(upstream.last, "POST", "/api/v1/common/download-url")
    assert upstream.last.json() == {"url": "https://files.example/result.mp4"}


def test_upload_file_from_path_streams_multipart(upstream, client, tmp_path):
    upstream.answer("POST", "/up/api/file-stream-upload", ok(UPLOADED, success=True))
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x01video\r\n--bytes" * 1000)
    result = client.upload_file(path, "videos", file_name="renamed.mp4")
    assert result == UploadedFile("clip.mp4", "videos/clip.mp4", "https://files.example/clip.mp4", 5,
                                  "video/mp4", "2025-01-01T00:00:00Z")
    seen = upstream.last
    assert (seen.method, seen.path) == ("POST", "/up/api/file-stream-upload")
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["Transfer-Encoding"] is None and int(seen.headers["Content-Length"]) == len(seen.body)
    form = seen.form()
    assert set(form) == {"file", "uploadPath", "fileName"}
    assert form["file"] == ("renamed.mp4", path.read_bytes())
    assert form["uploadPath"][1] == b"videos" and form["fileName"][1] == b"renamed.mp4"


def test_upload_file_from_file_object_without_name(upstream, client):
    upstream.answer("POST", "/up/api/file-stream-upload", ok(UPLOADED, success=True))
    client.upload_file(io.BytesIO(b"abc"), "videos")
    form = upstream.last.form()
    assert set(form) == {"file", "uploadPath"} and form["file"][1] == b"abc"


def test_upload_from_url(upstream, client):
    upstream.answer("POST", "/up/api/file-url-upload", ok(UPLOADED, success=True))
    assert client.upload_from_url("https://v.example/a.mp4", "videos", "a.mp4").download_url == UPLOADED["downloadUrl"]
    assert_authenticated_json(upstream.last, "POST", "/up/api/file-url-upload")
    assert upstream.last.json() == {"fileUrl": "https://v.example/a.mp4", "uploadPath": "videos", "fileName": "a.mp4"}


@pytest.mark.parametrize("data, sent", [(b"\x00\xffvideo", base64.b64encode(b"\x00\xffvideo").decode()),
                                        ("data:video/mp4;base64,AAAA", "data:video/mp4;base64,AAAA")])
def test_upload_base64(upstream, client, data, sent):
    upstream.answer("POST", "/up/api/file-base64-upload", ok(UPLOADED, success=True))
    assert client.upload_base64(data, "videos").file_size == 5
    assert_authenticated_json(upstream.last, "POST", "/up/api/file-base64-upload")
    assert upstream.last.json() == {"base64Data": sent, "uploadPath": "videos"}


def test_upload_success_false_is_an_error(upstream, client):
    upstream.answer("POST", "/up/api/file-url-upload", {"success": False, "code": 422, "msg": "bad url", "data": None})
    with pytest.raises(ValidationError, match="bad url"):
        client.upload_from_url("ftp://x", "videos")
    upstream.answer("POST", "/up/api/file-url-upload", {"success": False, "code": 200, "msg": "odd", "data": None})
    with pytest.raises(ProtocolError):
        client.upload_from_url("ftp://x", "videos")


# --- errors -----------------------------------------------------------------------------

DOCUMENTED = [(401, AuthenticationError, False), (402, InsufficientCreditsError, False),
              (404, NotFoundError, False), (422, ValidationError, False), (429, RateLimitError, True),
              (455, MaintenanceError, True), (500, ServerError, True), (501, GenerationFailedError, False),
              (505, FeatureDisabledError, False)]


@pytest.mark.parametrize("code, cls, retryable", DOCUMENTED)
@pytest.mark.parametrize("via", ["envelope at HTTP 200", "envelope at same HTTP status", "HTTP status only"])
def test_documented_codes_map_to_classes(upstream, client, code, cls, retryable, via):
    envelope = {"code": code, "msg": f"provider says {code}", "data": None}
    status, body = {"envelope at HTTP 200": (200, envelope), "envelope at same HTTP status": (code, envelope),
                    "HTTP status only": (code, b"<html>error</html>")}[via]
    upstream.answer("POST", "/api/v1/modify/generate", body, status=status)
    with pytest.raises(cls) as caught:
        client.generate("p", "https://v.example/a.mp4")
    exc = caught.value
    assert type(exc) is cls and isinstance(exc, ProviderError)
    assert (exc.code, exc.http_status, exc.retryable) == (code, status, retryable)
    if via != "HTTP status only":
        assert exc.message == f"provider says {code}" and f"provider says {code}" in str(exc)


def test_envelope_code_wins_over_http_status(upstream, client):
    upstream.answer("GET", "/api/v1/chat/credit", {"code": 402, "msg": "no credits", "data": None}, status=500)
    with pytest.raises(InsufficientCreditsError):
        client.credit()


@pytest.mark.parametrize("code, cls, retryable", [(503, ServerError, True), (599, ServerError, True),
                                                  (418, ProviderError, False), (400, ProviderError, False)])
def test_undocumented_codes(upstream, client, code, cls, retryable):
    upstream.answer("GET", "/api/v1/chat/credit", {"code": code, "msg": "?", "data": None})
    with pytest.raises(ProviderError) as caught:
        client.credit()
    assert type(caught.value) is cls and caught.value.retryable is retryable
    assert type(error_for(code, "?")) is cls


def test_unreachable_and_protocol_retryable_flags():
    assert ProviderUnavailable("x").retryable and ProviderUnavailable("x").code is None
    assert ProtocolError("x", http_status=503).retryable and not ProtocolError("x", http_status=200).retryable


@pytest.mark.parametrize("header, expected", [("7", 7.0), ("1.5", 1.5), ("soon", None), (None, None)])
def test_retry_after_seconds(upstream, client, header, expected):
    headers = {"Retry-After": header} if header else {}
    upstream.answer("GET", "/api/v1/chat/credit", {"code": 429, "msg": "slow down", "data": None},
                    status=429, headers=headers)
    with pytest.raises(RateLimitError) as caught:
        client.credit()
    assert caught.value.retry_after == expected


def test_retry_after_http_date(upstream, client):
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    upstream.answer("GET", "/api/v1/chat/credit", {"code": 429, "msg": "x", "data": None}, headers={"Retry-After": when})
    with pytest.raises(RateLimitError) as caught:
        client.credit()
    assert 110 <= caught.value.retry_after <= 120


def test_html_502_from_a_proxy_is_retryable(upstream, client):
    upstream.answer("GET", "/api/v1/chat/credit", b"<html><h1>502 Bad Gateway</h1></html>",
                    status=502, headers={"Content-Type": "text/html"})
    with pytest.raises(ProtocolError) as caught:
        client.credit()
    assert caught.value.retryable and caught.value.http_status == 502 and "502" in str(caught.value)


@pytest.mark.parametrize("body", [b"<html>ok?</html>", {"code": 200, "msg": "success", "data": {"no": "taskId"}},
                                  {"unexpected": True}, [1, 2]])
def test_wrong_shape_at_http_200_is_a_protocol_error(upstream, client, body):
    upstream.answer("POST", "/api/v1/modify/generate", json.dumps(body).encode() if isinstance(body, list) else body)
    with pytest.raises(ProtocolError) as caught:
        client.generate("p", "https://v.example/a.mp4")
    assert not caught.value.retryable


def test_timeout_is_provider_unavailable(upstream):
    upstream.answer("GET", "/api/v1/chat/credit", ok(1), delay=10)
    client = LumaClient(API_KEY, api_base=upstream.url, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as caught:
        client.credit()
    assert time.monotonic() - started < 2.0
    assert caught.value.retryable and caught.value.code is None


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_connection_refused_is_provider_unavailable():
    with pytest.raises(ProviderUnavailable) as caught:
        LumaClient(API_KEY, api_base=closed_port_url(), timeout=2).credit()
    assert caught.value.retryable


@pytest.mark.parametrize("base", ["http://\u2039x\u203a.example", "http://ex\u00e4mple..com"])
def test_a_base_url_that_cannot_be_parsed_is_provider_unavailable_never_sent(base):
    with pytest.raises(ProviderUnavailable) as caught:
        LumaClient(API_KEY, api_base=base, timeout=2).credit()
    assert caught.value.request_sent is False


# --- the key never leaks ----------------------------------------------------------------

def test_api_key_never_in_messages_reprs_or_logs(upstream, client, caplog):
    caplog.set_level(logging.DEBUG)
    upstream.answer("GET", "/api/v1/chat/credit", ok(3))
    # A provider that echoes the credentials back in its message.
    upstream.answer("POST", "/api/v1/modify/generate",
                    {"code": 401, "msg": f"bad key: Bearer {API_KEY}", "data": None})
    client.credit()
    with pytest.raises(AuthenticationError) as auth:
        client.generate("p", "https://v.example/a.mp4")
    with pytest.raises(ProviderUnavailable) as down:
        LumaClient(API_KEY, api_base=closed_port_url(), timeout=1).credit()
    for exc in (auth.value, down.value):
        assert API_KEY not in str(exc) and API_KEY not in repr(exc)
    assert "bad key" in str(auth.value) and "check the key" in str(auth.value)
    assert API_KEY not in repr(client) and "LumaClient" in repr(client)
    assert "GET /api/v1/chat/credit" in caplog.text and "POST /api/v1/modify/generate" in caplog.text
    assert API_KEY not in caplog.text


def test_client_requires_a_key():
    with pytest.raises(ValueError):
        LumaClient("")


def test_module_is_independent_of_django():
    source = open(provider.__file__).read()
    assert "import django" not in source and "from django" not in source
