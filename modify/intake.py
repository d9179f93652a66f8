"""New tasks from a member's request: a checked form, a retry of a failed task, a remix.

The request path never calls the provider: it stores the source, inserts the
task ``queued`` with its "created" event, and enqueues its sending once the
transaction commits. A source copied for a task that is then not created
(an error, a quota reached meanwhile, or a second click that lost the race)
is deleted again.

A new task is created with the key its member chose (``api_key``), after
its member's quota is checked once more inside the creating transaction,
with the member's row locked: of two submissions racing past the form's
check, the second sees the first and is refused.
"""

import contextlib
import os
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.files import File
from django.db import transaction

from modify import backend, enqueue, failures
from modify.downloads import safe_url
from modify.models import ModifyTask
from modify.states import Actor
from team import quotas


class _LostRace(Exception):
    """Another request made this retry first."""


class SourceGone(Exception):
    """The failed task's uploaded source is no longer in the archive, so it cannot be sent again."""


def accept(owner, prompt, *, upload=None, url="", watermark="", duration=None, remix_of=None, api_key=None):
    """Save a validated request as ``queued``, spending ``api_key`` (None: the owner's default key,
    picked when it is sent); its sending is enqueued once committed.

    Raises ``team.quotas.QuotaExceeded`` (and stores nothing) if the owner reached a limit.
    """
    if remix_of is not None and not upload and not url:
        with remix_of.result_file.open("rb") as remixed:
            return accept(owner, prompt, upload=remixed, watermark=watermark, duration=remix_of.result_duration,
                          remix_of=remix_of, api_key=api_key)
    task = _new_task(owner, prompt, upload=upload, url=url, watermark=watermark, duration=duration, remix_of=remix_of,
                     api_key=api_key)
    with _discarded_on_error(task), transaction.atomic():
        _check_quota(owner)
        _create(task, owner)
    return task


def _check_quota(owner):
    """One member's submissions one at a time: the counts the check reads cannot change under it."""
    list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True))
    quotas.check(owner)


def retry(task, by):
    """A failed task once more, as a new task with the same source, prompt and watermark.

    Once only: of a double click (or eight), one request makes the retry and the
    others find it; none leaves a copy of the source behind.
    """
    if task.retried_as_id:
        return task.retried_as
    again = {"watermark": task.watermark, "duration": task.source_duration, "remix_of": task.remix_of}
    if task.source_kind == ModifyTask.Source.URL:
        new = _new_task(task.owner, task.prompt, url=task.source_url, **again)
    else:
        if not task.source_file or not task.source_file.storage.exists(task.source_file.name):
            raise SourceGone(failures.sentence("source_gone"))
        with task.source_file.open("rb") as source:
            new = _new_task(task.owner, task.prompt, upload=File(source, name=task.source_name or "source.mp4"), **again)
    try:
        own = by == task.owner  # a member's own retry is a new submission; staff's is oversight
        with _discarded_on_error(new), transaction.atomic():
            if own:
                _check_quota(task.owner)
            actor = Actor.MEMBER if own else Actor.STAFF
            _create(new, by, retry_of=task, actor=actor)
            if not task.link_retry(new, by, actor=actor):
                raise _LostRace
    except _LostRace:
        task.refresh_from_db()
        return task.retried_as
    return new


def _new_task(owner, prompt, *, upload=None, url="", watermark="", duration=None, remix_of=None, api_key=None):
    """An unsaved task, its uploaded source already in storage."""
    task = ModifyTask(
        owner=owner,
        api_key=api_key,
        prompt=prompt,
        watermark=watermark,
        source_kind=ModifyTask.Source.UPLOAD if upload else ModifyTask.Source.URL,
        source_url=url,
        source_name=os.path.basename(upload.name if upload else urlsplit(url).path)[:255],
        source_duration=duration,
        is_sandbox=backend.uses_sandbox(),
        remix_of=remix_of,
    )
    if upload:
        # Stored under a fixed name: the user's file name is only shown, never trusted as a path.
        task.source_file.save(f"source{_extension(task.source_name)}", upload, save=False)
    return task


def _create(task, by, retry_of=None, actor=Actor.MEMBER):
    if retry_of is not None:
        detail = f"retry of task {retry_of.pk}"
    elif task.remix_of_id:
        detail = f"remix of task {task.remix_of_id}"
    elif task.source_kind == ModifyTask.Source.URL:
        detail = f"from {safe_url(task.source_url)}"
    else:
        detail = f"from an upload, {task.source_name}"
    task.create(actor=actor, by=by, detail=detail)
    transaction.on_commit(lambda: enqueue.send_to_provider(task))


@contextlib.contextmanager
def _discarded_on_error(task):
    """Delete a new task's stored source if the task is not created after all."""
    try:
        yield
    except BaseException:
        if task.source_file:
            task.source_file.delete(save=False)
        raise


def _extension(name):
    extension = os.path.splitext(name)[1].lower()
    return extension if extension in (".mp4", ".mov", ".avi") else ".mp4"
