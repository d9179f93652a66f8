"""Archived media (sources, results, posters), only to signed-in members who may see the task."""

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.views.decorators.http import require_safe

from modify.byte_ranges import serve_media
from modify.models import ModifyTask


@login_required
@require_safe
def media(request, path):
    """Archived media, only to signed-in members who may see the task it belongs to."""
    task = ModifyTask.objects.visible_to(request.user).filter(pk=_task_id_in(path)).first()
    if task is None or path not in (task.source_file.name, task.result_file.name, task.poster.name):
        raise Http404("No such file.")
    return serve_media(request, path)


def _task_id_in(path):
    """Media paths are ``sources|results/YYYY/MM/<task id>/<name>`` (see models)."""
    parts = path.split("/")
    if len(parts) != 5 or parts[0] not in ("sources", "results"):
        raise Http404("No such file.")
    try:
        return uuid.UUID(parts[3])
    except ValueError:
        raise Http404("No such file.") from None
