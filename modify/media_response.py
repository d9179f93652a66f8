"""Serving archived media with HTTP Range support, so browsers can seek in videos.

Django's FileResponse always sends the whole file; a video element asks for
byte ranges when the user scrubs, and Safari will not play without them.
"""

import mimetypes
import re

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse

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


def serve_media(request, name):
    if ".." in name.split("/") or not default_storage.exists(name):
        raise Http404("No such file.")
    size = default_storage.size(name)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    match = RANGE.match(request.headers.get("Range", "").strip())
    if not match or not any(match.groups()):
        response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        return _private(response)
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
    else:
        start, end = max(size - int(last), 0), size - 1
    if start >= size or start > end:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return _private(response)
    length = end - start + 1
    response = StreamingHttpResponse(
        _iter_range(default_storage.open(name, "rb"), start, length), status=206, content_type=content_type
    )
    response["Content-Length"] = str(length)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    return _private(response)


def _private(response):
    response["Cache-Control"] = "private, max-age=3600"
    return response
