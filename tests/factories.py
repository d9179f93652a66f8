"""Members, staff and tasks in any state, built the way the app builds them.

``make_task`` creates a task as the studio does (with its "created" event)
and drives it through the real transitions to the state asked for, so its
fields and its event log are what the lifecycle would have left. Nothing is
enqueued: tests run the steps they test themselves. ``backdate`` moves a
task's clock back, as if time had passed.
"""

import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from modify.models import ModifyTask
from modify.states import Actor
from modify.video_probe import temp_path, write_poster

S = ModifyTask.State
SOURCE_URL = "https://example.com/clip.mp4"
RESULT_URL = "https://files.example.com/result.mp4"
# On the way to each state, the state before it.
_PATH = {S.SUBMITTING: S.QUEUED, S.UNCONFIRMED: S.SUBMITTING, S.GENERATING: S.SUBMITTING,
         S.ARCHIVING: S.GENERATING, S.SUCCEEDED: S.ARCHIVING}


def make_member(username="maria", **fields):
    return get_user_model().objects.create_user(username, **fields)


def make_staff(username="sam", **fields):
    return get_user_model().objects.create_user(username, is_staff=True, **fields)


def make_task(owner, state=S.QUEUED, *, prompt="a snowy winter night", upload=None, url=SOURCE_URL,
              provider_task_id=None, result=None, failed_stage=S.QUEUED, error="The provider gave up.",
              error_code=None, is_sandbox=True, **fields):
    """A task of ``owner`` in ``state``.

    ``upload``: a video path (or bytes) stored as the source instead of ``url``.
    ``result``: for a succeeded task, the video path stored as its result,
    with a poster frame made from it; otherwise small placeholder files.
    A failed task fails from ``failed_stage`` with ``error`` and ``error_code``.
    Other ``fields`` are plain task data (``shared``, ``watermark``, ``created_at`` ...).
    """
    task = ModifyTask(owner=owner, prompt=prompt, is_sandbox=is_sandbox, **fields)
    if upload is not None:
        task.source_kind, task.source_name = ModifyTask.Source.UPLOAD, "clip.mp4"
        content = upload if isinstance(upload, bytes) else open(upload, "rb").read()
        task.source_file.save("source.mp4", ContentFile(content), save=False)
    else:
        task.source_kind, task.source_url = ModifyTask.Source.URL, url
    task.create(actor=Actor.MEMBER, by=owner, detail="made by a test factory")
    if state == S.FAILED:
        _drive(task, failed_stage, provider_task_id, result)
        assert task.fail(error, code=error_code)
    else:
        _drive(task, state, provider_task_id, result)
    return task


def _drive(task, state, provider_task_id, result):
    if state == S.QUEUED:
        return
    _drive(task, _PATH[state], provider_task_id, result)
    video_url = task.source_url or f"https://files.example.com/uploads/{task.pk}.mp4"
    moved = {
        S.SUBMITTING: lambda: task.claim(),
        S.UNCONFIRMED: lambda: task.no_answer(timezone.now() + timedelta(hours=1), None, video_url,
                                              "waiting for its callback"),
        S.GENERATING: lambda: task.accepted(provider_task_id or uuid.uuid4().hex, None, video_url),
        S.ARCHIVING: lambda: task.result_found(RESULT_URL),
        S.SUCCEEDED: lambda: task.archived(**_archive_files(task, result)),
    }[state]()
    assert moved, f"could not move task {task.pk} to {state}"


def _archive_files(task, result):
    if result is None:
        video, poster, facts = b"not really a video", b"not really a poster", {}
    else:
        video = open(result, "rb").read()
        with temp_path(".jpg") as poster_path:
            width, height = write_poster(result, poster_path)
            poster = open(poster_path, "rb").read()
        facts = {"result_width": width, "result_height": height, "result_duration": 2.0}
    task.result_file.save("result.mp4", ContentFile(video), save=False)
    task.poster.save("poster.jpg", ContentFile(poster), save=False)
    return {"result_file": task.result_file.name, "poster": task.poster.name, "result_size": len(video), **facts}


def backdate(task, **moments):
    """Set lifecycle timestamps (``generating_at=...``) as if time had passed; test-only."""
    ModifyTask.objects.filter(pk=task.pk).update(**moments)
    task.refresh_from_db()
    return task
