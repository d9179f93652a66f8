"""modify.downloads against a real local HTTP server."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest

from modify import downloads
from tests.httpserver import local_server
from modify.downloads import DownloadError, DownloadForbidden, DownloadTooLarge, DownloadUnreachable, download

PAYLOAD = os.urandom(300_000)


@dataclass
class Canned:
    status: int = 200
    body: bytes = b""
    chunked: bool = False  # no Content-Length: the size is only known while streaming
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # before the status line
    stall: float = 0.0  # after the body, before ending it
    trickle: float = 0.0  # between pieces
    piece: int = 8192  # bytes written at a time


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        files = self.server.files
        canned = files.get(self.path.split("?")[0], Canned(404, b"not found"))
        stop = self.server.stop
        stop.wait(canned.delay)
        self.send_response(canned.status)
        for name, value in canned.headers.items():
            self.send_header(name, str(value))
        if canned.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif "Content-Length" not in canned.headers:
            self.send_header("Content-Length", str(len(canned.body)))
        self.end_headers()
        for start in range(0, len(canned.body), canned.piece):
            piece = canned.body[start:start + canned.piece]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if canned.chunked else piece)
            self.wfile.flush()
            stop.wait(canned.trickle)
        if not canned.chunked:
            return
        stop.wait(canned.stall)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    with local_server(Handler, files={}) as srv:
        yield srv


@pytest.mark.parametrize("chunked", [False, True])
def test_download_to_path(server, tmp_path, chunked):
    server.files["/v.mp4"] = Canned(body=PAYLOAD, chunked=chunked)
    dest = tmp_path / "v.mp4"
    assert download(server.url + "/v.mp4", dest, max_bytes=len(PAYLOAD)) == len(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD


def test_download_to_file_object(server):
    server.files["/v.mp4"] = Canned(body=PAYLOAD)
    buffer = io.BytesIO()
    assert download(server.url + "/v.mp4", buffer, max_bytes=10**6, chunk_size=1000) == len(PAYLOAD)
    assert buffer.getvalue() == PAYLOAD


def test_too_large_by_content_length_is_rejected_before_writing(server, tmp_path):
    server.files["/big.mp4"] = Canned(body=PAYLOAD)
    dest = tmp_path / "big.mp4"
    with pytest.raises(DownloadTooLarge) as caught:
        download(server.url + "/big.mp4", dest, max_bytes=1000)
    assert caught.value.max_bytes == 1000 and "1000 bytes" in str(caught.value)
    assert not dest.exists()


def test_too_large_while_streaming_removes_partial_file(server, tmp_path):
    server.files["/big.mp4"] = Canned(body=PAYLOAD, chunked=True)
    dest = tmp_path / "big.mp4"
    with pytest.raises(DownloadTooLarge):
        download(server.url + "/big.mp4", dest, max_bytes=100_000, chunk_size=4096)
    assert not dest.exists()


def test_lying_content_length_is_still_capped(server, tmp_path):
    server.files["/liar.mp4"] = Canned(body=PAYLOAD, chunked=True, headers={"Content-Length": 10})
    with pytest.raises(DownloadTooLarge):
        download(server.url + "/liar.mp4", tmp_path / "x", max_bytes=100_000)


def test_404_is_unreachable_and_hides_query_secrets(server, tmp_path):
    dest = tmp_path / "missing.mp4"
    with pytest.raises(DownloadUnreachable) as caught:
        download(server.url + "/missing.mp4?X-Signature=TOPSECRET", dest, max_bytes=1000)
    message = str(caught.value)
    assert caught.value.status == 404 and "404" in message
    assert server.url + "/missing.mp4" in message and "TOPSECRET" not in message
    assert not dest.exists()


def test_credentials_in_url_are_not_shown(server, tmp_path):
    url = server.url.replace("http://", "http://user:hunter2@") + "/missing.mp4"
    with pytest.raises(DownloadUnreachable) as caught:
        download(url, tmp_path / "x", max_bytes=1000)
    assert "hunter2" not in str(caught.value) and "user" not in str(caught.value)


def test_slow_server_times_out(server, tmp_path):
    server.files["/slow.mp4"] = Canned(body=PAYLOAD, delay=10)
    started = time.monotonic()
    with pytest.raises(DownloadUnreachable, match="in time"):
        download(server.url + "/slow.mp4", tmp_path / "slow.mp4", max_bytes=10**6, timeout=0.3)
    assert time.monotonic() - started < 2


def test_stall_mid_stream_times_out_and_removes_partial_file(server, tmp_path):
    server.files["/stall.mp4"] = Canned(body=PAYLOAD, chunked=True, stall=10)
    dest = tmp_path / "stall.mp4"
    with pytest.raises(DownloadUnreachable, match="in time"):
        download(server.url + "/stall.mp4", dest, max_bytes=10**6, timeout=0.3)
    assert not dest.exists()


def test_connection_refused(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x.mp4"
    with pytest.raises(DownloadUnreachable, match="connection failed"):
        download(url, tmp_path / "x", max_bytes=1000, timeout=1)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/v.mp4", "/relative/v.mp4",
                                 "javascript:alert(1)"])
def test_only_http_and_https(tmp_path, url):
    with pytest.raises(DownloadError, match="Only http and https") as caught:
        download(url, tmp_path / "x", max_bytes=1000)
    assert type(caught.value) is DownloadError
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("url", ["http://\u2039x\u203a.example/v.mp4", "http://ex\u00e4mple..com/v.mp4"])
def test_a_host_that_cannot_be_parsed_is_a_download_error(tmp_path, url):
    with pytest.raises(DownloadError, match="not a valid URL"):
        download(url, tmp_path / "x", max_bytes=1000, timeout=1)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("chunked", [False, True])
def test_a_trickling_download_stops_at_its_time_budget(server, tmp_path, chunked):
    """Each piece comes well within the read timeout, but the whole would take a minute;
    with or without Content-Length, the download does not wait for a whole chunk."""
    server.files["/trickle.mp4"] = Canned(body=PAYLOAD[:300], chunked=chunked, trickle=0.2, piece=1)
    dest = tmp_path / "trickle.mp4"
    started = time.monotonic()
    with pytest.raises(DownloadUnreachable, match="too slow"):
        download(server.url + "/trickle.mp4", dest, max_bytes=10**6, timeout=1, max_seconds=0.5)
    assert time.monotonic() - started < 1.5
    assert not dest.exists()


def test_public_only_refuses_this_machine(server, tmp_path):
    server.files["/v.mp4"] = Canned(body=PAYLOAD)
    for url in (server.url + "/v.mp4", server.url.replace("127.0.0.1", "localhost") + "/v.mp4"):
        with pytest.raises(DownloadForbidden, match="on this machine or a private network"):
            download(url, tmp_path / "x", max_bytes=10**6, public_only=True)
    assert not (tmp_path / "x").exists()
    assert download(server.url + "/v.mp4", tmp_path / "x", max_bytes=10**6) == len(PAYLOAD)  # the default allows it


def test_public_only_checks_every_redirect(server, tmp_path, monkeypatch):
    """127.0.0.1 plays a public host here; its redirect to localhost is caught at the second hop."""
    real = downloads._addresses
    monkeypatch.setattr(downloads, "_addresses", lambda parts: {"93.184.216.34"} if parts.hostname == "127.0.0.1" else real(parts))
    inside = server.url.replace("127.0.0.1", "localhost") + "/v.mp4"
    server.files["/v.mp4"] = Canned(body=PAYLOAD)
    server.files["/public.mp4"] = Canned(status=302, headers={"Location": inside})
    server.files["/hop.mp4"] = Canned(status=301, headers={"Location": "/v.mp4"})
    assert download(server.url + "/hop.mp4", tmp_path / "ok", max_bytes=10**6, public_only=True) == len(PAYLOAD)
    with pytest.raises(DownloadForbidden) as caught:
        download(server.url + "/public.mp4", tmp_path / "x", max_bytes=10**6, public_only=True)
    assert "localhost" in str(caught.value)
    server.files["/loop.mp4"] = Canned(status=302, headers={"Location": "/loop.mp4"})
    with pytest.raises(DownloadUnreachable, match="redirects more than 5 times"):
        download(server.url + "/loop.mp4", tmp_path / "x", max_bytes=10**6, public_only=True)


def test_public_only_with_a_host_that_does_not_resolve(tmp_path):
    with pytest.raises(DownloadUnreachable, match="connection failed"):
        download("http://no-such-host.invalid/v.mp4", tmp_path / "x", max_bytes=1000, public_only=True)


def test_public_only_reads_the_host_as_requests_connects_to_it(server, tmp_path):
    """urlsplit reads this host as example.com; requests connects to 127.0.0.1."""
    server.files["/v.mp4"] = Canned(body=PAYLOAD)
    sneaky = server.url + "\\@example.com/v.mp4"
    with pytest.raises(DownloadForbidden):
        download(sneaky, tmp_path / "x", max_bytes=10**6, public_only=True)


@pytest.mark.parametrize(
    "address, public",
    [
        ("93.184.216.34", True), ("2606:2800:220:1::1", True),
        ("127.0.0.1", False), ("10.1.2.3", False), ("169.254.169.254", False), ("0.0.0.0", False), ("224.0.0.1", False),
        ("::1", False), ("fe80::1", False), ("::ffff:127.0.0.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ],
)
def test_what_counts_as_public(address, public):
    import ipaddress

    assert downloads._is_public(ipaddress.ip_address(address)) is public
