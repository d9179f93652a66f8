"""Client for the kie.ai "Luma modify video" API (contract: /work/shared/upstream-api.md).

The whole contract lives in this one Django-free module so that the app, the
task workers and the tests all speak to the provider (or to the sandbox, which
answers the same requests) through a single, typed surface.

Errors follow Stripe's client libraries: one exception class per kind of API
error, so callers write ``except InsufficientCreditsError`` instead of
comparing magic numbers, and ask ``exc.retryable`` to decide on a retry.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Callable

import requests
from urllib3.exceptions import LocationValueError

log = logging.getLogger(__name__)


class ProviderError(Exception):
    """Base class: the provider (or the way to it) failed the request.

    ``code`` is the envelope code, ``message`` the provider's ``msg`` and
    ``http_status`` the HTTP status. ``summary`` says what the kind of error
    means in words a user can act on; ``str()`` joins it all in one sentence.
    """

    retryable = False
    summary = "The video provider reported an error"

    def __init__(self, message: str, code: int | None = None, http_status: int | None = None):
        self.message, self.code, self.http_status = message, code, http_status
        facts = [f"{label} {value}" for label, value in (("code", code), ("HTTP", http_status)) if value is not None]
        where = f" ({', '.join(facts)})" if facts else ""
        super().__init__(f"{self.summary}{where}" + (f": {message}" if message else "."))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, http_status={self.http_status!r})"


class AuthenticationError(ProviderError):
    summary = "The kie.ai API key is missing or invalid; check the key"


class InsufficientCreditsError(ProviderError):
    summary = "The kie.ai account is out of credits"


class NotFoundError(ProviderError):
    summary = "The provider does not know this task or resource"


class ValidationError(ProviderError):
    summary = "The provider rejected the request as invalid"


class RateLimitError(ProviderError):
    """Too many requests; ``retry_after`` (seconds) comes from a Retry-After header."""

    retryable = True
    summary = "The provider is rate limiting requests; retry later"

    def __init__(self, message: str, code: int | None = None, http_status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message, code, http_status)
        self.retry_after = retry_after


class MaintenanceError(ProviderError):
    retryable = True
    summary = "The provider is under maintenance; retry later"


class ServerError(ProviderError):
    retryable = True
    summary = "The provider had a server error; retry later"


class GenerationFailedError(ProviderError):
    summary = "The video generation failed; try a different prompt or video"


class FeatureDisabledError(ProviderError):
    summary = "This feature is disabled on the provider"


class ProviderUnavailable(ProviderError):
    """No answer at all: connection refused, DNS failure, timeout.

    ``request_sent`` says whether the provider may have received and acted on
    the request (a read timeout, a connection dropped mid-answer): retrying a
    ``generate`` then could create, and bill, the same task twice.
    """

    retryable = True
    summary = "The video provider could not be reached"

    def __init__(self, message, code=None, http_status=None, request_sent=False):
        super().__init__(message, code, http_status)
        self.request_sent = request_sent


class ProtocolError(ProviderError):
    """The answer is not JSON or not the documented shape.

    Retryable on a 5xx status: that is typically a proxy's HTML error page in
    front of a service that will come back.
    """

    summary = "The video provider sent an answer this client does not understand"

    def __init__(self, message: str, code: int | None = None, http_status: int | None = None):
        super().__init__(message, code, http_status)
        self.retryable = (http_status or 0) >= 500


_BY_CODE: dict[int, type[ProviderError]] = {
    401: AuthenticationError, 402: InsufficientCreditsError, 404: NotFoundError, 422: ValidationError,
    429: RateLimitError, 455: MaintenanceError, 500: ServerError, 501: GenerationFailedError,
    505: FeatureDisabledError,
}


def error_for(code: int, message: str, http_status: int | None = None,
              retry_after: float | None = None) -> ProviderError:
    """The exception for an envelope (or HTTP) error code.

    Undocumented codes >= 500 are server errors (retryable); other unknown
    codes are a plain, non-retryable ProviderError.
    """
    cls = _BY_CODE.get(code) or (ServerError if code >= 500 else ProviderError)
    if cls is RateLimitError:
        return RateLimitError(message, code, http_status, retry_after=retry_after)
    return cls(message, code, http_status)


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait, from either form of Retry-After (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _from_epoch_ms(ms: int | float | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _json_object(text: Any) -> dict:
    """``paramJson`` is a JSON string; an unparsable one must not fail a poll."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _exactly(kind: type, value: Any) -> Any:
    """``value`` if it is exactly of ``kind`` (True is no credit count) and not empty."""
    if type(value) is not kind or value == "":
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class RecordInfo:
    """A task's state as returned by ``record-info``."""

    task_id: str
    success_flag: int
    params: dict
    origin_urls: list
    result_urls: list
    created_at: datetime | None
    completed_at: datetime | None
    error_code: int | None
    error_message: str | None

    @property
    def is_pending(self) -> bool:
        return self.success_flag == 0

    @property
    def is_success(self) -> bool:
        return self.success_flag in (1, 4)  # 4: generated; only the callback delivery failed

    @property
    def is_failed(self) -> bool:
        return self.success_flag in (2, 3)

    @classmethod
    def from_data(cls, data: dict) -> RecordInfo:
        response = data.get("response") or {}
        return cls(
            _exactly(str, data["taskId"]), int(data["successFlag"]), _json_object(data.get("paramJson")),
            list(response.get("originUrls") or []), list(response.get("resultUrls") or []),
            _from_epoch_ms(data.get("createTime")), _from_epoch_ms(data.get("completeTime")),
            _optional_int(data.get("errorCode")), data.get("errorMessage"))


@dataclass(frozen=True)
class UploadedFile:
    """A file on the provider's upload host; ``download_url`` is usable as ``videoUrl``."""

    file_name: str
    file_path: str
    download_url: str
    file_size: int | None
    mime_type: str | None
    uploaded_at: str | None

    @classmethod
    def from_data(cls, data: dict) -> UploadedFile:
        return cls(data["fileName"], data["filePath"], _exactly(str, data["downloadUrl"]),
                   _optional_int(data.get("fileSize")), data.get("mimeType"), data.get("uploadedAt"))


class _MultipartBody:
    """A multipart/form-data body that streams its file part.

    requests' ``files=`` reads the whole file into memory, and videos may be
    500 MB. Being iterable *and* sized makes requests send it piecewise with
    a Content-Length (upload servers often refuse chunked encoding).
    """

    def __init__(self, fields: dict[str, str], fh: BinaryIO, filename: str, chunk_size: int = 1 << 16):
        self.content_type = f"multipart/form-data; boundary={(boundary := uuid.uuid4().hex)}"
        safe_name = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                 for name, value in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="{safe_name}"\r\nContent-Type: application/octet-stream\r\n\r\n')
        self._head, self._tail = "".join(parts).encode(), f"\r\n--{boundary}--\r\n".encode()
        self._fh, self._chunk_size = fh, chunk_size
        start = fh.tell()
        self._file_size = fh.seek(0, os.SEEK_END) - start
        fh.seek(start)

    def __len__(self) -> int:
        return len(self._head) + self._file_size + len(self._tail)

    def __iter__(self):
        yield self._head
        while chunk := self._fh.read(self._chunk_size):
            yield chunk
        yield self._tail


def _may_have_been_sent(exc) -> bool:
    """False only when the request surely never reached the provider."""
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, LocationValueError)):
        return False
    if isinstance(exc, (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError)):
        return True
    return "NewConnectionError" not in repr(exc) and "NameResolutionError" not in repr(exc)


class LumaClient:
    """Typed access to every endpoint of the contract; one instance per API key."""

    def __init__(self, api_key: str, api_base: str = "https://api.kie.ai",
                 upload_base: str = "https://kieai.redpandaai.co", timeout: float = 30.0,
                 session: requests.Session | None = None):
        if not api_key:
            raise ValueError("an API key is required")
        self._api_key, self.timeout = api_key, timeout
        self.api_base, self.upload_base = api_base.rstrip("/"), upload_base.rstrip("/")
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return f"LumaClient(api_base={self.api_base!r}, upload_base={self.upload_base!r}, api_key='***')"

    def generate(self, prompt: str, video_url: str, callback_url: str | None = None,
                 watermark: str | None = None) -> str:
        """Start a modification task; returns its taskId."""
        body = _without_none(prompt=prompt, videoUrl=video_url, callBackUrl=callback_url, watermark=watermark)
        return self._call("POST", self.api_base, "/api/v1/modify/generate",
                          lambda data: _exactly(str, data["taskId"]), json=body)

    def record_info(self, task_id: str) -> RecordInfo:
        return self._call("GET", self.api_base, "/api/v1/modify/record-info", RecordInfo.from_data,
                          params={"taskId": task_id})

    def credit(self) -> int:
        return self._call("GET", self.api_base, "/api/v1/chat/credit", partial(_exactly, int))

    def download_url(self, url: str) -> str:
        """A fresh (20-minute) download URL for a file the provider generated."""
        return self._call("POST", self.api_base, "/api/v1/common/download-url", partial(_exactly, str),
                          json={"url": url})

    def upload_file(self, file: str | os.PathLike | BinaryIO, upload_path: str,
                    file_name: str | None = None) -> UploadedFile:
        """Stream a local file (a path or a seekable binary file object) to the upload host."""
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as fh:
                return self.upload_file(fh, upload_path, file_name)
        body = _MultipartBody(_without_none(uploadPath=upload_path, fileName=file_name), file,
                              file_name or Path(getattr(file, "name", "") or "upload").name)
        return self._call("POST", self.upload_base, "/api/file-stream-upload", UploadedFile.from_data,
                          data=body, headers={"Content-Type": body.content_type})

    def upload_from_url(self, file_url: str, upload_path: str, file_name: str | None = None) -> UploadedFile:
        return self._call("POST", self.upload_base, "/api/file-url-upload", UploadedFile.from_data,
                          json=_without_none(fileUrl=file_url, uploadPath=upload_path, fileName=file_name))

    def upload_base64(self, data: bytes | str, upload_path: str, file_name: str | None = None) -> UploadedFile:
        """Upload inline data: bytes are base64-encoded here, a str (maybe a data: URL) is sent as-is."""
        encoded = base64.b64encode(data).decode("ascii") if isinstance(data, (bytes, bytearray)) else data
        return self._call("POST", self.upload_base, "/api/file-base64-upload", UploadedFile.from_data,
                          json=_without_none(base64Data=encoded, uploadPath=upload_path, fileName=file_name))

    def _redact(self, text: str) -> str:
        """Belt and braces: nothing raised or logged may echo the key back."""
        return text.replace(self._api_key, "***")

    def _call(self, method: str, base: str, path: str, parse: Callable[[Any], Any],
              headers: dict | None = None, **kwargs) -> Any:
        """Send one request, check HTTP status and envelope, return ``parse(data)``."""
        started = time.monotonic()
        log.debug("kie.ai %s %s", method, path)
        try:
            resp = self._session.request(
                method, base + path, timeout=self.timeout,
                headers={"Authorization": f"Bearer {self._api_key}", **(headers or {})}, **kwargs)
        except (requests.RequestException, LocationValueError) as exc:
            log.info("kie.ai %s %s -> unreachable (%s) after %.2fs",
                     method, path, type(exc).__name__, time.monotonic() - started)
            raise ProviderUnavailable(
                self._redact(f"{type(exc).__name__}: {exc}"), request_sent=_may_have_been_sent(exc)
            ) from exc
        status = resp.status_code
        try:
            envelope = resp.json()
        except ValueError:
            envelope = None
        code = envelope.get("code") if isinstance(envelope, dict) else None
        log.info("kie.ai %s %s -> HTTP %s, code %s (%.2fs)", method, path, status, code, time.monotonic() - started)

        retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
        if type(code) is not int:
            # No envelope: a documented HTTP status still says what happened.
            if status in _BY_CODE:
                raise error_for(status, resp.reason or "", status, retry_after)
            kind = resp.headers.get("Content-Type", "no content type")
            raise ProtocolError(f"expected a JSON envelope, got HTTP {status} ({kind})", http_status=status)
        message = self._redact(str(envelope.get("msg") or ""))
        if code != 200:
            raise error_for(code, message, status, retry_after)
        if envelope.get("success") is False:
            raise ProtocolError(f"success is false with code 200: {message}", code, status)
        try:
            return parse(envelope.get("data"))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ProtocolError(self._redact(f"unexpected data for {path}: {exc}"), code, status) from exc


def _without_none(**fields: Any) -> dict:
    """Optional contract fields are left out rather than sent as null."""
    return {name: value for name, value in fields.items() if value is not None}
