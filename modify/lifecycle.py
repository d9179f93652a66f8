"""The task lifecycle: submit, poll and finalize, as plain functions.

django-q2 jobs (``modify.jobs``) and the command line call these; each step
claims its task with a transition (a conditional UPDATE) first, so that any
number of workers, callbacks and polls can run at once and a task still
changes once. A provider error becomes either a retry (rate limits,
maintenance, 5xx, network) or a ``failed`` state with a message a person can
act on; nothing accepted is ever left without a terminal state.
"""

import logging
import os
import random
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from modify import archive, backend, provider
from modify.downloads import DownloadError, download
from modify.media import MediaError, temp_path, validate_video
from modify.logfilters import redact
from modify.models import ModifyTask

log = logging.getLogger(__name__)
# A provider's Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER = 600
# Fetching a URL source: per read, and in all (well within django-q2's job timeout).
SOURCE_READ_TIMEOUT = 30
SOURCE_FETCH_SECONDS = 180


def generation_failed(reason):
    return f"The provider could not generate this video ({reason or 'no reason given'}). Try a different prompt or video."


FAILURE_MESSAGES = {
    provider.AuthenticationError: "The provider rejected the API key. Ask staff to check the key in the admin.",
    provider.InsufficientCreditsError: "The provider account is out of credits. Ask staff to top it up.",
    provider.ValidationError: "The provider rejected the request: {msg}",
    provider.GenerationFailedError: generation_failed("{msg}"),
    provider.FeatureDisabledError: "The provider has disabled this feature ({msg}).",
    provider.NotFoundError: "The provider no longer knows this task ({msg}).",
}


def explain(error):
    """A sentence for the user, without secrets: provider errors never carry the key, and a
    provider message that echoes our callback URL loses its token here."""
    for kind, template in FAILURE_MESSAGES.items():
        if isinstance(error, kind):
            return redact(template.format(msg=error.message or "no reason given"))
    return redact(f"The provider kept failing: {error}")


def backoff_seconds(attempt, base=30, cap=None):
    """Exponential backoff with up to 20% jitter: 30, 60, 120 ... capped; never below ``base``.

    The jitter spreads many tasks' polls out; it only ever adds, so a task is
    never polled faster than the provider asks (every 30 s at most).
    """
    cap = cap or settings.LUMA_POLL_MAX_INTERVAL_SECONDS
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return delay + random.uniform(0, delay * 0.2)


def callback_url(task):
    if not settings.PUBLIC_BASE_URL:
        return None
    return settings.PUBLIC_BASE_URL + reverse("callback", args=[task.callback_token])


def accept(owner, prompt, *, upload=None, url="", watermark="", duration=None, remix_of=None):
    """Save a validated request as ``queued`` and enqueue its submission once committed."""
    from modify.jobs import enqueue_submit

    if remix_of is not None and not upload and not url:
        with remix_of.result_file.open("rb") as remixed:
            return accept(owner, prompt, upload=remixed, watermark=watermark, duration=remix_of.result_duration,
                          remix_of=remix_of)
    task = ModifyTask(
        owner=owner,
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
    task.save()
    transaction.on_commit(lambda: enqueue_submit(task))
    return task


@transaction.atomic
def resubmit(task):
    """A failed task once more, as a new task with the same source, prompt and watermark.

    Once only: a double click (or a resent form) finds the retry already made.
    """
    if task.retried_as_id:
        return task.retried_as
    again = {"watermark": task.watermark, "duration": task.source_duration, "remix_of": task.remix_of}
    if task.source_kind == ModifyTask.Source.URL:
        retry = accept(task.owner, task.prompt, url=task.source_url, **again)
    else:
        with task.source_file.open("rb") as source:
            retry = accept(task.owner, task.prompt, upload=File(source, name=task.source_name or "source.mp4"), **again)
    if not ModifyTask.objects.filter(pk=task.pk, retried_as__isnull=True).update(retried_as=retry):
        transaction.set_rollback(True)  # another request retried it first
        task.refresh_from_db()
        return task.retried_as
    return retry


def _extension(name):
    extension = os.path.splitext(name)[1].lower()
    return extension if extension in (".mp4", ".mov", ".avi") else ".mp4"


def submit(task_id):
    """Claim a queued task, make its video public if needed, and create the provider task.

    1. claim (queued → submitting) or stop: another worker has it, or its retry is not due;
    2. a URL source is fetched and checked like an upload, before any credit is spent;
    3. an upload goes through the provider's file upload API for a public URL,
       under a name unique to the task (upstream, equal names overwrite);
    4. generate, with a callback URL on this app when it has a public address;
    5. record the provider's task id (→ generating). A callback may have done
       that already (it can arrive before generate answers): then nothing is left.
    """
    task = ModifyTask.objects.filter(pk=task_id).select_related("owner").first()
    if task is None or not task.claim_for_submission():
        return task
    try:
        api_key, secret = backend.key_for(task.owner)
        client = backend.client(secret)
        _keep_url_source(task)
        video_url = _public_video_url(task, client)
        ModifyTask.objects.filter(pk=task.pk).update(api_key=api_key, provider_video_url=video_url)
    except (DownloadError, MediaError) as error:
        # A source host that failed for now is asked again, as the provider is; one that
        # refused, or a file that is no usable video, fails the task.
        _retry_or_fail(task, getattr(error, "retryable", False), str(error), f"The video URL cannot be used: {error}")
        return task
    except backend.ConfigurationError as error:
        task.fail(str(error))
        return task
    except provider.ProviderError as error:
        _submission_failed(task, error, may_have_created=False)
        return task
    except Exception:
        task.fail("Submitting the task failed unexpectedly; staff can see the details in the logs.")
        raise
    try:
        provider_task_id = client.generate(
            task.prompt, video_url, callback_url=callback_url(task), watermark=task.watermark or None
        )
    except provider.ProviderError as error:
        _submission_failed(task, error, may_have_created=_may_have_created(error))
        return task
    except Exception:
        task.fail("Submitting the task failed unexpectedly; staff can see the details in the logs.")
        raise
    _record_provider_task(task, provider_task_id)
    if api_key is not None:
        type(api_key).objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return task


def _keep_url_source(task):
    """Copy a URL source home, checked as the form checks an upload (container by content,
    duration, size): a video the provider would refuse fails here, for free, and the
    detail page plays "before" long after the URL has gone. The provider still fetches
    the URL itself. A retried submission keeps the copy it already has."""
    if task.source_kind != ModifyTask.Source.URL or task.source_file:
        return
    with temp_path(".video") as path:
        # kie.ai fetches from the internet: a private address could not work, and must not be probed.
        download(task.source_url, path, max_bytes=settings.LUMA_MAX_VIDEO_BYTES, timeout=SOURCE_READ_TIMEOUT,
                 max_seconds=SOURCE_FETCH_SECONDS, public_only=not task.is_sandbox)
        info = validate_video(path, settings.LUMA_MAX_VIDEO_SECONDS, settings.LUMA_MAX_VIDEO_BYTES)
        with open(path, "rb") as fh:
            task.source_file.save(f"source.{info.container}", File(fh), save=False)
    task.source_duration = info.duration
    ModifyTask.objects.filter(pk=task.pk).update(source_file=task.source_file.name, source_duration=info.duration)


def _public_video_url(task, client):
    if task.source_kind != ModifyTask.Source.UPLOAD:
        return task.source_url
    with task.source_file.open("rb") as fh:
        return client.upload_file(fh, "lumaweb/sources", f"{task.pk}{_extension(task.source_name)}").download_url


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
        won = task.mark_generating(provider_task_id)
    except Exception:
        log.error("task %s: provider task %s was created but could not be recorded", task.pk, provider_task_id)
        raise
    if not won:
        task.refresh_from_db()
        if task.provider_task_id != provider_task_id:
            log.error("task %s: generate answered %s after task %s was recorded", task.pk, provider_task_id, task.provider_task_id)


def _submission_failed(task, error, may_have_created):
    if may_have_created:
        _generate_in_doubt(task)
    else:
        _retry_or_fail(task, error.retryable, f"{error.summary}.", explain(error), error.code,
                       getattr(error, "retry_after", None))


def _retry_or_fail(task, retryable, why, failure, code=None, retry_after=None):
    """Back to the queue, due after a backoff (or the provider's Retry-After), while a
    retryable error has attempts left; else failed with ``failure``."""
    if retryable and task.submit_attempts < settings.LUMA_SUBMIT_MAX_ATTEMPTS:
        delay = min(retry_after or backoff_seconds(task.submit_attempts, base=10), MAX_RETRY_AFTER)
        log.info("task %s: retryable error on submit, again in %.0fs: %s", task.pk, delay, why)
        task.retry_submission(delay, reason=f"Waiting to retry: {why}")
    else:
        task.fail(failure, code=code)


def _generate_in_doubt(task):
    """The request went out but no answer came back: the provider may have created the task.

    Sending it again could bill it twice, so it is not resent. With callbacks,
    the task waits for its callback to learn the id; without, it fails and says why.
    """
    if callback_url(task):
        deadline = timezone.now() + timedelta(seconds=settings.LUMA_MAX_WAIT_SECONDS)
        task.await_callback(deadline, "The provider did not answer in time; waiting for its callback.")
    else:
        task.fail(
            "The provider did not answer in time, so it may have started this task anyway. To avoid paying twice "
            "it was not sent again: check the gallery later, or submit it again."
        )


def adopt_from_callback(task, provider_task_id):
    """A verified callback names the provider task of a task whose generate call has not
    answered (or never will, or is about to be retried): record it."""
    return task.mark_generating(provider_task_id, first_poll_seconds=0, from_queued=True)


def book_poll(task, due_only=False):
    """Give up on a task past its maximum wait, else book its next poll; True when this caller should poll now.

    The booking comes first, so a task whose poll raises has already been
    pushed forward and cannot crash-loop the scheduler. With ``due_only`` (the
    schedule) it is a claim: of two overlapping sweeps, one polls.
    """
    if timezone.now() - _waiting_since(task) > timedelta(seconds=settings.LUMA_MAX_WAIT_SECONDS):
        minutes = settings.LUMA_MAX_WAIT_SECONDS // 60
        if task.archiving_at:
            task.fail(f"The result could not be archived within {minutes} minutes; gave up.")
        else:
            task.fail(f"The provider did not finish within {minutes} minutes; gave up waiting.")
        return False
    next_poll = timezone.now() + timedelta(seconds=backoff_seconds(task.poll_count + 1, settings.LUMA_POLL_FIRST_SECONDS))
    return task.record_poll(next_poll, due_only=due_only)


def _waiting_since(task):
    """A result that was found is given its own time to be archived."""
    return task.archiving_at or task.generating_at or task.created_at


def poll(task, due_only=False):
    """Ask the provider about one generating task, and act on the answer."""
    if not book_poll(task, due_only=due_only):
        return task
    try:
        info = backend.client_for(task).record_info(task.provider_task_id)
    except backend.ConfigurationError as error:
        task.fail(str(error))
        return task
    except provider.ProviderError as error:
        # record-info changes nothing upstream: a garbled answer is worth asking again.
        if error.retryable or isinstance(error, provider.ProtocolError):
            log.info("task %s: provider error on poll (%s), will ask again", task.pk, type(error).__name__)
        else:
            task.fail(explain(error), code=error.code)
        return task
    return settle(task, info)


def finalize(task_id):
    """Finalize after a callback: the callback is only a hint, record-info is the truth."""
    task = ModifyTask.objects.filter(pk=task_id, state=ModifyTask.State.GENERATING).select_related("owner").first()
    return poll(task) if task is not None else None


def settle(task, info):
    """Turn a record-info answer into the next state; archiving runs as its own job."""
    from modify.jobs import enqueue_archive

    if info.is_success:
        if not info.result_urls:
            task.fail("The provider reported success but gave no result file.")
        elif task.start_archiving(info.result_urls[0]):
            enqueue_archive(task)
    elif info.is_failed:
        task.fail(generation_failed(info.error_message), code=info.error_code)
    return task


def archive_result(task_id):
    """Download, probe and store the result of a task claimed ``archiving``."""
    task = ModifyTask.objects.filter(pk=task_id, state=ModifyTask.State.ARCHIVING).select_related("owner", "api_key").first()
    if task is None:
        return None
    try:
        client = backend.client_for(task)
    except backend.ConfigurationError as error:
        task.fail(str(error))
        return task
    return archive.archive(task, client)
