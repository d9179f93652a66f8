"""Streaming, size-capped, timed HTTP downloads.

Used by the archiver (provider results expire, so they are copied promptly)
and by the sandbox when it fetches a user's ``videoUrl``. Both fetch URLs
they do not control, so a download must never fill the disk or memory, hang
forever, or leak a signed URL's query string into a user-facing message.
"""

from __future__ import annotations

import os
import time
from typing import BinaryIO
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import LocationValueError
from urllib3.exceptions import TimeoutError as StreamTimeout

ALLOWED_SCHEMES = ("http", "https")


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
    """A download failed; ``str()`` is a sentence fit to show a user."""

    def __init__(self, message: str, url: str):
        self.url = safe_url(url)
        super().__init__(message)


class DownloadTooLarge(DownloadError):
    def __init__(self, url: str, max_bytes: int):
        self.max_bytes = max_bytes
        super().__init__(f"The file at {safe_url(url)} is larger than the limit of {max_bytes} bytes.", url)


class DownloadUnreachable(DownloadError):
    """Connection error, timeout, or a non-2xx answer (then ``status`` is set)."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        self.status = status
        super().__init__(f"Could not download {safe_url(url)}: {reason}.", url)


def download(url: str, dest: str | os.PathLike | BinaryIO, max_bytes: int, timeout: float = 30.0,
             session: requests.Session | None = None, chunk_size: int = 1 << 16,
             max_seconds: float | None = None) -> int:
    """Download ``url`` into ``dest`` (a path or a writable binary file); return the byte count.

    ``timeout`` bounds connecting and each read, so a silent server fails fast;
    ``max_seconds`` bounds the whole download, so a trickling one does too.
    The size is checked against Content-Length before any byte is written and
    again while streaming, because Content-Length may be absent or wrong.
    On failure a ``dest`` given as a path is removed, so no partial file is
    mistaken for a complete one; a file object is left to its owner.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        raise DownloadError("The download URL is not a valid URL.", url) from None
    if scheme not in ALLOWED_SCHEMES:
        kind = f"{scheme}:" if scheme else "scheme-less"
        raise DownloadError(f"Only http and https URLs can be downloaded, not {kind} URLs.", url)
    try:
        with (session or requests).get(url, stream=True, timeout=timeout) as resp:
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
    except requests.RequestException as exc:
        # Deliberately not str(exc): it repeats the full URL, query string included.
        reason = "the server did not answer in time" if _timed_out(exc) else "the connection failed"
        raise DownloadUnreachable(url, f"{reason} ({type(exc).__name__})") from exc


def _timed_out(exc: requests.RequestException) -> bool:
    # A read timeout in mid-stream surfaces as ConnectionError(ReadTimeoutError).
    return isinstance(exc, requests.Timeout) or any(isinstance(a, StreamTimeout) for a in exc.args)


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
    for chunk in resp.iter_content(chunk_size):
        written += len(chunk)
        if written > max_bytes:
            raise DownloadTooLarge(url, max_bytes)
        if deadline is not None and time.monotonic() > deadline:
            raise DownloadUnreachable(url, "the download is too slow and took too long")
        fh.write(chunk)
    return written


def _remove(path: str | os.PathLike) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
