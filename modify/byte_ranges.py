"""Serving archived media with HTTP Range support, so browsers can seek in videos.

Django's FileResponse always sends the whole file; a video element asks for
byte ranges when the user scrubs, and Safari will not play without them.
"""

import mimetypes
import re

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def _iter_range(fh, start, length):
    fh.seek(start)
    remaining = length
    try:
        while remaining > 0:
            chunk = fh.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        fh.close()


def _open(name):
    if ".." in name.split("/"):
        raise Http404("No such file.")
    try:
        return default_storage.open(name, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise Http404("No such file.") from None


def _byte_range(header, size):
    """``(start, end)`` asked for by a Range header; None to send the whole file (RFC 9110:
    a malformed or reversed range is ignored); ``(size, size)`` when unsatisfiable."""
    match = RANGE.match(header.strip())
    if not match or not any(match.groups()):
        return None
    first, last = match.groups()
    if first and last and int(last) < int(first):
        return None
    if not first:
        return max(size - int(last), 0), size - 1
    if int(first) >= size:
        return size, size
    return int(first), min(int(last) if last else size - 1, size - 1)


def serve_media(request, name, download_name=None):
    """``name`` from the default storage, whole or the byte range asked for; with
    ``download_name``, as an attachment of that name."""
    fh = _open(name)
    size = fh.size
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    byte_range = _byte_range(request.headers.get("Range", ""), size)
    if byte_range is None:
        response = FileResponse(fh, content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        return _private(response, download_name)
    start, end = byte_range
    if start >= size:
        fh.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return _private(response, download_name)
    length = end - start + 1
    response = StreamingHttpResponse(_iter_range(fh, start, length), status=206, content_type=content_type)
    response["Content-Length"] = str(length)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    return _private(response, download_name)


def _private(response, download_name=None):
    response["Cache-Control"] = "private, max-age=3600"
    if download_name:
        response["Content-Disposition"] = content_disposition_header(True, download_name)
    return response
