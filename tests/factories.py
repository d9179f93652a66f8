"""Members, staff and tasks in any state, built the way the app builds them.

``make_task`` creates a task as the studio does (with its "created" event)
and drives it through the real transitions to the state asked for, so its
fields and its event log are what the lifecycle would have left. Nothing is
enqueued: tests run the steps they test themselves. ``backdate`` moves a
task's clock back, as if time had passed. ``make_key`` stores a provider API
key, its secret encrypted as the admin and the keys page store it.
"""

import os
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from modify.models import ApiKey, ModifyTask
from modify.states import Actor
from modify.video_probe import temp_path, write_poster

S = ModifyTask.State
SOURCE_URL = "https://example.com/clip.mp4"
RESULT_URL = "https://files.example.com/result.mp4"
# On the way to each state, the state before it.
_PATH = {S.SUBMITTING: S.QUEUED, S.UNCONFIRMED: S.SUBMITTING, S.GENERATING: S.UNCONFIRMED,
         S.ARCHIVING: S.GENERATING, S.SUCCEEDED: S.ARCHIVING}


def make_member(username="maria", **fields):
    return get_user_model().objects.create_user(username, **fields)


def make_staff(username="sam", **fields):
    return get_user_model().objects.create_user(username, is_staff=True, **fields)


def make_key(label="Team key", *, owner=None, secret=None, is_active=True, last_credits=None,
             credits_checked_at=None, created_by=None, revoked_at=None):
    """A stored ``ApiKey`` named ``label``: ``owner``'s own, or the team's when ``owner`` is None.

    ``secret``: the plaintext key, set through ``ApiKey.secret`` so it is
    encrypted and ``last4`` is its ending; by default a fake one made from
    the label ("Team key" -> "kie-secret-of-team-key"). ``is_active=False``
    makes a revoked key, revoked ``revoked_at`` (now unless given).
    ``last_credits``: the credits left as last asked, checked
    ``credits_checked_at`` (now unless given; never when not asked).
    ``created_by``: who added it (nobody unless given).
    """
    now = timezone.now()
    if not is_active and revoked_at is None:
        revoked_at = now
    if last_credits is not None and credits_checked_at is None:
        credits_checked_at = now
    key = ApiKey(label=label, owner=owner, is_active=is_active, last_credits=last_credits,
                 credits_checked_at=credits_checked_at, created_by=created_by, revoked_at=revoked_at)
    key.secret = f"kie-secret-of-{label.lower().replace(' ', '-')}" if secret is None else secret
    key.save()
    return key


def make_task(owner, state=S.QUEUED, *, prompt="a snowy winter night", upload=None, url=SOURCE_URL,
              kept_source=None, provider_task_id=None, api_key=None, result=None, failed_stage=S.QUEUED,
              error="The provider gave up.", error_code=None, is_sandbox=True, **fields):
    """A task of ``owner`` in ``state``.

    ``upload``: a video path (or bytes) stored as the source instead of ``url``
    (named ``source_name``, "clip.mp4" unless given). ``kept_source``: for a URL
    task past ``submitting``, the video the sending job fetched and kept.
    ``api_key``: the key generate was called with. ``result``: for a succeeded
    task, the video stored as its result, with a poster frame made from it;
    otherwise small placeholder files. A failed task fails from
    ``failed_stage`` with ``error`` and ``error_code``. Other ``fields`` are
    plain task data (``shared``, ``watermark``, ``created_at`` ...).
    """
    task = ModifyTask(owner=owner, prompt=prompt, is_sandbox=is_sandbox, **fields)
    if upload is not None:
        task.source_kind, task.source_name = ModifyTask.Source.UPLOAD, task.source_name or "clip.mp4"
        content = upload if isinstance(upload, bytes) else open(upload, "rb").read()
        task.source_file.save(f"source{os.path.splitext(task.source_name)[1] or '.mp4'}", ContentFile(content), save=False)
    else:
        task.source_kind, task.source_url = ModifyTask.Source.URL, url
    task.create(actor=Actor.MEMBER, by=owner, detail="made by a test factory")
    steps = {"provider_task_id": provider_task_id or uuid.uuid4().hex, "api_key": api_key, "result": result,
             "kept_source": kept_source}
    _drive(task, failed_stage if state == S.FAILED else state, **steps)
    if state == S.FAILED:
        assert task.fail(error, code=error_code)
    return task


def _drive(task, state, *, provider_task_id, api_key, result, kept_source):
    if state == S.QUEUED:
        return
    _drive(task, _PATH[state], provider_task_id=provider_task_id, api_key=api_key, result=result,
           kept_source=kept_source)
    video_url = task.source_url or f"https://files.example.com/uploads/{task.pk}.mp4"
    moved = {
        S.SUBMITTING: lambda: task.claim() and (kept_source is None or _keep(task, kept_source)),
        S.UNCONFIRMED: lambda: task.generate_sent(timezone.now() + timedelta(hours=1), api_key, video_url),
        S.GENERATING: lambda: task.accepted(provider_task_id),
        S.ARCHIVING: lambda: task.result_found(RESULT_URL),
        S.SUCCEEDED: lambda: task.archived(**_archive_files(task, result)),
    }[state]()
    assert moved, f"could not move task {task.pk} to {state}"


def _keep(task, video):
    task.source_file.save("source.mp4", ContentFile(open(video, "rb").read()), save=False)
    return task.keep_source(task.source_file.name, 2.0)


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
