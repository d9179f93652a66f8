"""Archived media (sources, results, posters), only to signed-in members who may see the task."""

import os
import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseRedirect
from django.views.decorators.http import require_safe

from modify import storage
from modify.byte_ranges import serve_media
from modify.models import ModifyTask


@login_required
@require_safe
def media(request, path):
    """Archived media, only to signed-in members who may see the task it belongs to.

    Files on this machine are served here, with byte ranges; files in a bucket
    through a redirect to a short-lived presigned URL, made only after the
    check (the bucket serves the bytes, and the ranges, itself). ``?download``
    asks for an attachment, named as the member knows the file.
    """
    task = ModifyTask.objects.visible_to(request.user).filter(pk=_task_id_in(path)).first()
    if task is None or path not in (task.source_file.name, task.result_file.name, task.poster.name):
        raise Http404("No such file.")
    download_name = _download_name(task, path) if "download" in request.GET else None
    url = storage.presigned_url(path, download_name=download_name)
    if url is None:
        return serve_media(request, path, download_name=download_name)
    response = HttpResponseRedirect(url)
    # Never kept by a cache: the signed URL expires, and the next viewer may not be allowed.
    response["Cache-Control"] = "private, no-store"
    return response


def _task_id_in(path):
    """Media paths are ``sources|results/YYYY/MM/<task id>/<name>`` (see models)."""
    parts = path.split("/")
    if len(parts) != 5 or parts[0] not in ("sources", "results"):
        raise Http404("No such file.")
    try:
        return uuid.UUID(parts[3])
    except ValueError:
        raise Http404("No such file.") from None


def _download_name(task, path):
    """The member's own file name for an uploaded source; the stored name otherwise."""
    if path == task.source_file.name and task.source_name:
        return task.source_name
    return os.path.basename(path)
