"""Archiving a result: upstream files expire, so every result is copied home.

``archive(task_id)`` runs once a poll has moved the task to ``archiving``:

1. download the result (streaming, size-capped, timed); if the provider's
   URL no longer answers, ask the provider for a fresh download URL, once;
2. check it is a video and probe it;
3. write a poster frame;
4. store both and mark the task ``succeeded``, or ``failed`` with the reason.

A download that failed for now (no answer, a server error) resumes: the task
goes back to ``generating``, due for a poll now, which confirms and archives
it anew, until the maximum wait counted from the first archiving. A worker
that dies here leaves the task ``archiving``; the sweep notices and resumes it.
"""

import logging

from django.conf import settings
from django.core.files import File

from modify import backend, failures, provider
from modify.downloads import DownloadError, download
from modify.models import ModifyTask
from modify.video_probe import MediaError, probe, temp_path, write_poster

log = logging.getLogger(__name__)
DOWNLOAD_TIMEOUT = 60


def archive(task_id):
    task = ModifyTask.objects.filter(pk=task_id, state=ModifyTask.State.ARCHIVING).select_related("owner", "api_key").first()
    if task is None:
        return None
    try:
        client = backend.client_for(task)
        with temp_path(".mp4") as video_path, temp_path(".jpg") as poster_path:
            _download_result(task, client, video_path)
            info = probe(video_path)
            write_poster(video_path, poster_path)
            with open(video_path, "rb") as video, open(poster_path, "rb") as poster:
                task.result_file.save("result.mp4", File(video), save=False)
                task.poster.save("poster.jpg", File(poster), save=False)
    except backend.ConfigurationError as error:
        task.fail(error.sentence)
        return task
    except DownloadError as error:
        if error.retryable:
            task.resume_archiving(reason=str(error))
        else:
            task.fail(failures.sentence("archive_failed", reason=error))
        return task
    except MediaError as error:
        task.fail(failures.sentence("archive_failed", reason=error))
        return task
    except Exception:
        task.fail(failures.sentence("archive_crashed"))
        raise
    stored = {"result_file": task.result_file.name, "poster": task.poster.name}
    if not task.archived(**stored, result_duration=info.duration, result_width=info.width, result_height=info.height,
                         result_size=info.size):
        for name in stored.values():  # staff stopped it meanwhile: keep no orphan files
            task.result_file.storage.delete(name)
    return task


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
