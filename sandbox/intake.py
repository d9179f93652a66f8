"""Fetching and checking a ``videoUrl`` the way the real service does, before any credit is spent."""

import contextlib
import os
import tempfile

from django.conf import settings

from modify.downloads import DownloadError, DownloadTooLarge, download
from modify.media import MediaError, check_limits, probe, sniff_container
from sandbox.envelope import ApiError

FETCH_TIMEOUT = 15


@contextlib.contextmanager
def fetched_video(url):
    """Yield ``(path, container)`` of the downloaded, validated video; ApiError(422) otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise ApiError(422, "videoUrl is required.")
    if not url.startswith(("http://", "https://")):
        raise ApiError(422, "videoUrl must be an http or https URL.")
    fd, path = tempfile.mkstemp(prefix="sandbox-intake-", suffix=".video")
    os.close(fd)
    try:
        try:
            download(url, path, max_bytes=settings.LUMA_MAX_VIDEO_BYTES, timeout=FETCH_TIMEOUT)
        except DownloadTooLarge:
            limit = settings.LUMA_MAX_VIDEO_BYTES // (1024 * 1024)
            raise ApiError(422, f"The video at videoUrl is larger than {limit} MB.") from None
        except DownloadError as error:
            raise ApiError(422, f"videoUrl is not reachable: {error}") from None
        with open(path, "rb") as fh:
            container = sniff_container(fh.read(64))
        if container is None:
            raise ApiError(422, "videoUrl does not point to an MP4, MOV or AVI video.")
        try:
            check_limits(probe(path), settings.LUMA_MAX_VIDEO_SECONDS, settings.LUMA_MAX_VIDEO_BYTES)
        except MediaError as error:
            raise ApiError(422, str(error)) from None
        yield path, container
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
