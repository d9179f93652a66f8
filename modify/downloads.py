"""Streaming, size-capped, timed HTTP downloads.

Used by the archiver (provider results expire, so they are copied promptly)
and by the sandbox when it fetches a user's ``videoUrl``. Both fetch URLs
they do not control, so a download must never fill the disk or memory, hang
forever, or leak a signed URL's query string into a user-facing message.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import HTTPError as StreamError
from urllib3.exceptions import LocationValueError
from urllib3.exceptions import TimeoutError as StreamTimeout
from urllib3.util import parse_url

ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
# IPv6 prefixes that carry an IPv4 address to some gateway: NAT64 (64:ff9b::/96, 64:ff9b:1::/48).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def safe_url(url: str) -> str:
    """scheme://host[:port]/path: drops credentials, query string and fragment (they may be secrets)."""
    try:
        parts = urlsplit(url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "an invalid URL"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class DownloadError(Exception):
    """A download failed; ``str()`` is a sentence fit to show a user. ``retryable``: the
    same request may well work later."""

    retryable = False

    def __init__(self, message: str, url: str):
        self.url = safe_url(url)
        super().__init__(message)


class DownloadTooLarge(DownloadError):
    def __init__(self, url: str, max_bytes: int):
        self.max_bytes = max_bytes
        super().__init__(f"The file at {safe_url(url)} is larger than the limit of {max_bytes} bytes.", url)


class DownloadForbidden(DownloadError):
    """The URL (or a redirect from it) leads to this machine or a private network."""

    def __init__(self, url: str):
        super().__init__(f"{safe_url(url)} is on this machine or a private network; give a public URL.", url)


class DownloadUnreachable(DownloadError):
    """Connection error, timeout, or a non-2xx answer (then ``status`` is set)."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        self.status = status
        self.retryable = status is None or status >= 500  # no answer, or a server error: not a refusal
        super().__init__(f"Could not download {safe_url(url)}: {reason}.", url)


def download(url: str, dest: str | os.PathLike | BinaryIO, max_bytes: int, timeout: float = 30.0,
             session: requests.Session | None = None, chunk_size: int = 1 << 16,
             max_seconds: float | None = None, public_only: bool = False) -> int:
    """Download ``url`` into ``dest`` (a path or a writable binary file); return the byte count.

    ``timeout`` bounds connecting and each read, so a silent server fails fast;
    ``max_seconds`` bounds the whole download, so a trickling one does too.
    ``public_only`` refuses a host on this machine or a private network, checked
    again at every redirect: a URL a member typed must not reach inside the app's
    network (the host is resolved twice, so this stops mistakes and probes, not
    a DNS server that answers differently the second time).
    The size is checked against Content-Length before any byte is written and
    again while streaming, because Content-Length may be absent or wrong.
    On failure a ``dest`` given as a path is removed, so no partial file is
    mistaken for a complete one; a file object is left to its owner.
    """
    _check_scheme(url)
    try:
        with _get(url, session or requests, timeout, public_only) as resp:
            if not 200 <= resp.status_code < 300:
                raise DownloadUnreachable(url, f"the server answered HTTP {resp.status_code}", resp.status_code)
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise DownloadTooLarge(url, max_bytes)
            deadline = time.monotonic() + max_seconds if max_seconds else None
            if isinstance(dest, (str, os.PathLike)):
                return _copy_to_path(resp, dest, url, max_bytes, chunk_size, deadline)
            return _copy(resp, dest, url, max_bytes, chunk_size, deadline)
    except (requests.exceptions.InvalidURL, LocationValueError):  # the latter is not a RequestException
        raise DownloadError("The download URL is not a valid URL.", url) from None
    except (requests.RequestException, StreamError) as exc:  # the stream is read raw: urllib3's own errors too
        # Deliberately not str(exc): it repeats the full URL, query string included.
        reason = "the server did not answer in time" if _timed_out(exc) else "the connection failed"
        raise DownloadUnreachable(url, f"{reason} ({type(exc).__name__})") from exc


def _check_scheme(url: str) -> None:
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        raise DownloadError("The download URL is not a valid URL.", url) from None
    if scheme not in ALLOWED_SCHEMES:
        kind = f"{scheme}:" if scheme else "scheme-less"
        raise DownloadError(f"Only http and https URLs can be downloaded, not {kind} URLs.", url)


def _get(url: str, http, timeout: float, public_only: bool) -> requests.Response:
    """The streaming answer for ``url``; with ``public_only`` redirects are followed here, one checked hop at a time."""
    if not public_only:
        return http.get(url, stream=True, timeout=timeout)
    for _ in range(MAX_REDIRECTS + 1):
        _refuse_private(url)
        resp = http.get(url, stream=True, timeout=timeout, allow_redirects=False)
        if not resp.is_redirect:
            return resp
        resp.close()
        url = urljoin(url, resp.headers["Location"])
        _check_scheme(url)
    raise DownloadUnreachable(url, f"it redirects more than {MAX_REDIRECTS} times")


def _refuse_private(url: str) -> None:
    # The host as requests will connect to it: urllib3's parser, not urlsplit, which
    # reads "http://127.0.0.1\@example.com/" as example.com.
    parts = parse_url(url)
    if any(not _is_public(ipaddress.ip_address(address)) for address in _addresses(parts)):
        raise DownloadForbidden(url)


def _is_public(ip) -> bool:
    if not ip.is_global or ip.is_multicast:
        return False
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo or (None, None))[1]
        return not any(ip in net for net in _NAT64) and (embedded is None or _is_public(embedded))
    return True


def _addresses(parts) -> set[str]:
    """Every address the URL's host resolves to (raises when it does not resolve)."""
    host = (parts.host or "").strip("[]")
    port = parts.port or (443 if (parts.scheme or "").lower() == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise requests.ConnectionError(f"cannot resolve {host}") from exc
    return {info[4][0].split("%")[0] for info in infos}


def _timed_out(exc: Exception) -> bool:
    # A read timeout in mid-stream surfaces as ConnectionError(ReadTimeoutError), or raw.
    return isinstance(exc, (requests.Timeout, StreamTimeout)) or any(isinstance(a, StreamTimeout) for a in exc.args)


def _copy_to_path(resp: requests.Response, path: str | os.PathLike, url: str, max_bytes: int,
                  chunk_size: int, deadline: float | None) -> int:
    try:
        with open(path, "wb") as fh:
            return _copy(resp, fh, url, max_bytes, chunk_size, deadline)
    except BaseException:
        _remove(path)
        raise


def _copy(resp: requests.Response, fh: BinaryIO, url: str, max_bytes: int, chunk_size: int,
          deadline: float | None) -> int:
    written = 0
    for chunk in _pieces(resp, chunk_size):
        written += len(chunk)
        if written > max_bytes:
            raise DownloadTooLarge(url, max_bytes)
        if deadline is not None and time.monotonic() > deadline:
            raise DownloadUnreachable(url, "the download is too slow and took too long")
        fh.write(chunk)
    return written


def _pieces(resp: requests.Response, chunk_size: int):
    """The body as it arrives: ``read1`` returns what one socket read brings, where
    ``iter_content`` would wait for a whole chunk, so a trickle meets the deadline too."""
    while piece := resp.raw.read1(chunk_size, decode_content=True):
        yield piece


def _remove(path: str | os.PathLike) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
