"""Archiving a result: upstream files expire, so every result is copied home.

``archive(task, client)`` runs once the task is claimed ``archiving``:

1. download the result (streaming, size-capped, timed); if the provider's
   URL no longer answers, ask the provider for a fresh download URL, once;
2. check it is a video and probe it;
3. write a poster frame;
4. store both and mark the task ``succeeded``, or ``failed`` with the reason.
"""

import logging

from django.conf import settings
from django.core.files import File

from modify import provider
from modify.downloads import DownloadError, download
from modify.media import MediaError, probe, temp_path, write_poster

log = logging.getLogger(__name__)
DOWNLOAD_TIMEOUT = 60


def _download_result(task, client, path):
    try:
        download(task.result_url, path, max_bytes=settings.LUMA_MAX_RESULT_BYTES, timeout=DOWNLOAD_TIMEOUT)
    except DownloadError as first_error:
        log.info("task %s: result URL failed (%s), asking for a fresh one", task.pk, first_error)
        try:
            fresh = client.download_url(task.result_url)
        except provider.ProviderError:
            raise first_error from None
        download(fresh, path, max_bytes=settings.LUMA_MAX_RESULT_BYTES, timeout=DOWNLOAD_TIMEOUT)


def archive(task, client):
    try:
        with temp_path(".mp4") as video_path, temp_path(".jpg") as poster_path:
            _download_result(task, client, video_path)
            info = probe(video_path)
            write_poster(video_path, poster_path)
            with open(video_path, "rb") as video, open(poster_path, "rb") as poster:
                task.result_file.save("result.mp4", File(video), save=False)
                task.poster.save("poster.jpg", File(poster), save=False)
    except (DownloadError, MediaError) as error:
        task.fail(f"The result could not be archived: {error}")
        return task
    except Exception:
        task.fail("Archiving the result failed unexpectedly; staff can see the details in the logs.")
        raise
    task.succeed(
        result_file=task.result_file.name,
        poster=task.poster.name,
        result_duration=info.duration,
        result_width=info.width,
        result_height=info.height,
        result_size=info.size,
    )
    return task
