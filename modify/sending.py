"""Sending a queued task to the provider: the job behind ``jobs.send_to_provider``.

1. claim (queued → submitting) or stop: another worker has it, or its retry is not due;
   the key is the one the member chose (``backend.key_to_send``): if staff
   revoked it meanwhile, the task fails here and spends nothing;
2. a URL source is fetched and checked like an upload, before any credit is
   spent, and kept (a retried sending will not fetch it again);
3. an upload goes through the provider's file upload API for a public URL,
   under a name unique to the task (upstream, equal names overwrite);
4. a slot of the provider's rate limit (``modify.limiter``), shared by every
   worker: with none free, the task goes back to the queue (``wait_for_slot``:
   its attempt given back, its upload's URL kept), due when its turn comes,
   and says so; it is not sent to be refused;
5. ``generate_sent`` (→ unconfirmed), then generate, with a callback URL on
   this app when it has a public address: from the moment it goes out, the
   provider may have created (and billed) the task;
6. record the provider's task id (→ generating). A callback may have done
   that already (it can arrive before generate answers): then nothing is left.

A task waiting for a slot is enqueued again at its turn by a timer thread of
the worker that refused it (``_Waker``), and by the sweep should that worker
have ended first.

An error that may pass (rate limits, maintenance, 5xx, an unreachable host)
sends the task back to the queue with a backoff; any other fails it with a
sentence from ``modify.failures``. A generate call that got no answer is
never resent (it may have been billed): the task stays ``unconfirmed`` and
waits for its callback, as it does when the worker dies mid-call.
"""

import heapq
import logging
import os
import random
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.files import File
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from modify import backend, enqueue, failures, limiter, provider
from modify.timing import MAX_RETRY_AFTER, backoff_seconds, worker_gave_up_after
from modify.downloads import DownloadError, download
from modify.models import ModifyTask
from modify.states import Actor
from modify.video_probe import MediaError, temp_path, validate_video

log = logging.getLogger(__name__)
# Fetching a URL source: per read, and in all (well within django-q2's job timeout).
SOURCE_READ_TIMEOUT = 30
SOURCE_FETCH_SECONDS = 180
# A refused slot whose turn is this close is waited for here, rather than by a round trip through the queue.
SLOT_WAIT_IN_PLACE = 0.5
# Added to a slot's turn, so that workers on several hosts do not all come back at the same instant.
SLOT_JITTER = 0.25


class _NoSlot(Exception):
    """No slot of the provider's limits is free now: the task waits its turn in the queue."""

    def __init__(self, wait, reason, note, video_url=""):
        super().__init__(reason)
        self.wait, self.reason, self.note, self.video_url = wait, reason, note, video_url


def callback_url(task):
    if not settings.PUBLIC_BASE_URL:
        return None
    return settings.PUBLIC_BASE_URL + reverse("callback", args=[task.callback_token])


def send_to_provider(task_id):
    task = ModifyTask.objects.filter(pk=task_id).select_related("owner").first()
    if task is None:
        return task
    waited = task.status_note == _slot_note()  # back at its turn in the line
    if not task.claim():
        return task
    try:
        api_key, secret = backend.key_to_send(task)
        client = backend.client(secret)
        limit_key = limiter.key_for(api_key, secret)
        if not _keep_url_source(task):
            task.refresh_from_db()
            return task  # staff stopped it meanwhile
        video_url = _public_video_url(task, client, limit_key)
        _take_generate_slot(task, limit_key, waited, video_url)
    except _NoSlot as busy:
        _wait_for_slot(task, busy)
        return task
    except (DownloadError, MediaError) as error:
        # A source host that failed for now is asked again, as the provider is; one that
        # refused, or a file that is no usable video, fails the task.
        _retry_or_fail(task, getattr(error, "retryable", False), str(error),
                       failures.sentence("source_unusable", reason=error))
        return task
    except backend.ConfigurationError as error:
        task.fail(error.sentence)
        return task
    except provider.ProviderError as error:
        _retry_or_fail(task, error.retryable, failures.retry_reason(error), failures.for_provider_error(error), error.code,
                       getattr(error, "retry_after", None))
        return task
    except Exception:
        task.fail(failures.sentence("send_crashed"))
        raise
    if not task.generate_sent(_callback_deadline(task), api_key, video_url):
        task.refresh_from_db()
        return task  # stopped by staff, or named by an early callback, meanwhile: spend no credit
    _generate(task, client, video_url)
    if api_key is not None:
        api_key.mark_used()
    return task


def _callback_deadline(task):
    """How long an unconfirmed task waits to hear its id: with callbacks, as long as the provider
    may take; without, until its worker is surely gone (a live one settles it long before)."""
    wait = timedelta(seconds=settings.LUMA_MAX_WAIT_SECONDS) if callback_url(task) else worker_gave_up_after()
    return timezone.now() + wait


def _generate(task, client, video_url):
    try:
        provider_task_id = client.generate(
            task.prompt, video_url, callback_url=callback_url(task), watermark=task.watermark or None
        )
    except provider.ProviderError as error:
        if _may_have_created(error):
            _await_callback(task)
        else:
            _retry_or_fail(task, error.retryable, failures.retry_reason(error), failures.for_provider_error(error), error.code,
                           getattr(error, "retry_after", None))
        return
    except Exception:
        task.fail(failures.sentence("send_crashed"))
        raise
    _record_provider_task(task, provider_task_id)


def _keep_url_source(task):
    """Copy a URL source home, checked as the form checks an upload (container by content,
    duration, size): a video the provider would refuse fails here, for free, and the
    detail page plays "before" long after the URL has gone. The provider still fetches
    the URL itself. False when the task was stopped meanwhile (the copy is then deleted)."""
    if task.source_kind != ModifyTask.Source.URL or task.source_file:
        return True
    with temp_path(".video") as path:
        # kie.ai fetches from the internet: a private address could not work, and must not be probed.
        download(task.source_url, path, max_bytes=settings.LUMA_MAX_VIDEO_BYTES, timeout=SOURCE_READ_TIMEOUT,
                 max_seconds=SOURCE_FETCH_SECONDS, public_only=not task.is_sandbox)
        info = validate_video(path, settings.LUMA_MAX_VIDEO_SECONDS, settings.LUMA_MAX_VIDEO_BYTES)
        with open(path, "rb") as fh:
            task.source_file.save(f"source.{info.container}", File(fh), save=False)
    stored = task.source_file.name
    if task.keep_source(stored, info.duration):
        return True
    task.source_file.storage.delete(stored)
    return False


def _public_video_url(task, client, limit_key):
    """The URL the provider fetches the source from: a URL source's own; an upload's, made public
    through the provider's upload API (one of the key's upload slots), or kept from an earlier attempt."""
    if task.source_kind != ModifyTask.Source.UPLOAD:
        return task.source_url
    if kept := _kept_upload(task):
        return kept
    with limiter.upload_slot(limit_key) as slot:
        if not slot.granted:
            note = failures.sentence("waiting_for_upload_slot", limit=settings.LUMA_UPLOAD_CONCURRENCY)
            raise _NoSlot(slot.wait, f"no upload slot free; asking again in {slot.wait:.1f} s", note)
        with task.source_file.open("rb") as fh:
            extension = os.path.splitext(task.source_file.name)[1] or ".mp4"
            return client.upload_file(fh, "lumaweb/sources", f"{task.pk}{extension}").download_url


def _kept_upload(task):
    """The URL an earlier attempt uploaded the source to, while it surely still exists: the provider
    deletes uploads after 3 days, and a task's upload is never older than the task, so one of a task
    younger than ``LUMA_UPLOAD_REUSE_SECONDS`` is reused; an older task uploads again."""
    young = timezone.now() - task.created_at < timedelta(seconds=settings.LUMA_UPLOAD_REUSE_SECONDS)
    return task.provider_video_url if young else ""


def _slot_note():
    window = f"{settings.LUMA_RATE_WINDOW_SECONDS:g}"
    return failures.sentence("waiting_for_slot", limit=settings.LUMA_RATE_LIMIT, window=window)


def _take_generate_slot(task, limit_key, waited, video_url):
    """Take a slot of the key's generate limit, or raise ``_NoSlot`` with this task's turn.

    A turn only a moment away (``SLOT_WAIT_IN_PLACE``) is waited for here."""
    slot = limiter.take_generate(limit_key, waited)
    if not slot.granted and slot.wait <= SLOT_WAIT_IN_PLACE:
        time.sleep(slot.wait)
        slot = limiter.take_generate(limit_key, waited=True)
    if not slot.granted:
        kept = video_url if task.source_kind == ModifyTask.Source.UPLOAD else ""
        raise _NoSlot(slot.wait, f"the rate limit's next slot is in {slot.wait:.1f} s", _slot_note(), kept)


def _wait_for_slot(task, busy):
    """Back to the queue until its turn (plus jitter), its attempt given back, saying what it waits for."""
    delay = busy.wait + random.uniform(0, SLOT_JITTER)
    if task.wait_for_slot(delay, busy.reason, busy.note, busy.video_url):
        log.info("task %s: waiting %.1fs for a slot: %s", task.pk, delay, busy.reason)
        _waker.at(delay, task.pk)
    else:
        task.refresh_from_db()  # stopped by staff, or named by an early callback, meanwhile


def wake(task_id):
    """Enqueue the sending of a task waiting for a slot, now that its turn has come; how many
    seconds early this is, should the turn not have come yet (0: done, or nothing to do)."""
    task = ModifyTask.objects.filter(pk=task_id, state=ModifyTask.State.QUEUED).first()
    if task is None or task.next_submit_at is None:
        return 0
    now = timezone.now()
    if task.next_submit_at > now:
        return (task.next_submit_at - now).total_seconds()
    if task.enqueued_at is not None and task.enqueued_at >= task.next_submit_at:
        return 0  # the sweep has enqueued it since
    if task.requeue(now, "its turn for a slot came"):
        enqueue.send_to_provider(task)
    return 0


class _Waker:
    """Enqueues tasks waiting for a slot at their turn, from one timer thread per worker process
    (the worker goes on with other jobs meanwhile). Best effort: should the process end first, the
    sweep enqueues the task once it is due, as it does any due retry."""

    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked worker has no thread of its own yet

    def _reset(self):
        self._due, self._ready, self._thread = [], threading.Condition(), None

    def at(self, delay, task_id):
        with self._ready:
            heapq.heappush(self._due, (time.monotonic() + delay, str(task_id)))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lumaweb-slot-waker", daemon=True)
                self._thread.start()
            self._ready.notify()

    def _run(self):
        while True:
            with self._ready:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._ready.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, task_id = heapq.heappop(self._due)
            try:
                early = wake(task_id)
            except Exception:
                log.exception("task %s: could not enqueue it at its turn for a slot; the sweep will", task_id)
                early = 0
            finally:
                connections.close_all()  # this thread's own connections
            if early:
                self.at(early, task_id)


_waker = _Waker()


def _may_have_created(error):
    """Whether a failed generate may still have created (and billed) the task upstream: no
    answer to a sent request, a gateway's error page in front of the provider, or a success
    whose body we could not read."""
    if isinstance(error, provider.ProviderUnavailable):
        return error.request_sent
    return isinstance(error, provider.ProtocolError) and (error.http_status == 200 or (error.http_status or 0) >= 500)


def _record_provider_task(task, provider_task_id):
    """Record the id before anything else can fail: it is the only handle on a paid task."""
    try:
        won = task.accepted(provider_task_id)
    except Exception:
        log.error("task %s: provider task %s was created but could not be recorded", task.pk, provider_task_id)
        raise
    if not won:
        task.refresh_from_db()
        if task.provider_task_id != provider_task_id:
            # Stopped, or named otherwise, meanwhile: the paid provider task is kept on record.
            log.error("task %s (%s): generate answered %s too late", task.pk, task.state, provider_task_id)
            task.record("late_answer", actor=Actor.PROVIDER, detail=provider_task_id)


def _retry_or_fail(task, retryable, why, failure, code=None, retry_after=None):
    """Back to the queue, due after a backoff (or the provider's Retry-After), while a
    retryable error has attempts left; else failed with ``failure``."""
    if retryable and task.submit_attempts < settings.LUMA_SUBMIT_MAX_ATTEMPTS:
        delay = min(retry_after or backoff_seconds(task.submit_attempts, base=10), MAX_RETRY_AFTER)
        log.info("task %s: retryable error on submit, again in %.0fs: %s", task.pk, delay, why)
        task.retry_later(delay, why, failures.sentence("waiting_to_retry", reason=why))
    else:
        task.fail(failure, code=code)


def _await_callback(task):
    """The request went out but no answer came back: the provider may have created the task.

    Sending it again could bill it twice, so it is not resent. With callbacks,
    the task waits (until its deadline) for its callback to learn the id;
    without, it fails and says why.
    """
    if callback_url(task):
        task.no_answer(failures.sentence("awaiting_callback"))
    else:
        task.fail(failures.sentence("unanswered_no_callback"))
