"""Fetching and checking a ``videoUrl`` the way the real service does, before any credit is spent."""

import contextlib

from django.conf import settings

from modify.downloads import DownloadError, DownloadTooLarge, download
from modify.video_probe import MediaError, temp_path, validate_video
from sandbox.envelope import ApiError

FETCH_TIMEOUT = 15
# The whole fetch, so that generate answers within a client's usual 30 s timeout.
FETCH_MAX_SECONDS = 20


@contextlib.contextmanager
def fetched_video(url):
    """Yield ``(path, container)`` of the video at the http(s) ``url``, downloaded and
    validated; ApiError(422) otherwise."""
    with temp_path(".video") as path:
        try:
            download(url, path, max_bytes=settings.LUMA_MAX_VIDEO_BYTES, timeout=FETCH_TIMEOUT, max_seconds=FETCH_MAX_SECONDS)
        except DownloadTooLarge:
            limit = settings.LUMA_MAX_VIDEO_BYTES // (1024 * 1024)
            raise ApiError(422, f"The video at videoUrl is larger than {limit} MB.") from None
        except DownloadError as error:
            raise ApiError(422, f"videoUrl is not reachable: {error}") from None
        try:
            info = validate_video(path, settings.LUMA_MAX_VIDEO_SECONDS, settings.LUMA_MAX_VIDEO_BYTES)
        except MediaError as error:
            raise ApiError(422, f"videoUrl: {error}") from None
        yield path, info.container
