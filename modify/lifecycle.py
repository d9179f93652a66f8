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
from django.db import transaction
from django.urls import reverse
from django.utils.text import get_valid_filename
from django.utils import timezone

from modify import archive, backend, provider
from modify.models import ModifyTask

log = logging.getLogger(__name__)

FAILURE_MESSAGES = {
    provider.AuthenticationError: "The provider rejected the API key. Ask staff to check the key in the admin.",
    provider.InsufficientCreditsError: "The provider account is out of credits. Ask staff to top it up.",
    provider.ValidationError: "The provider rejected the request: {msg}",
    provider.GenerationFailedError: "The provider could not generate this video ({msg}). Try a different prompt or video.",
    provider.FeatureDisabledError: "The provider has disabled this feature ({msg}).",
    provider.NotFoundError: "The provider no longer knows this task ({msg}).",
}


def explain(error):
    """A sentence for the user; never contains a secret (provider errors never do)."""
    for kind, template in FAILURE_MESSAGES.items():
        if isinstance(error, kind):
            return template.format(msg=error.message or "no reason given")
    return f"The provider kept failing: {error}"


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
        task.source_file.save(get_valid_filename(task.source_name) or "source.mp4", upload, save=False)
    task.save()
    transaction.on_commit(lambda: enqueue_submit(task))
    return task


def submit(task_id):
    """Claim a queued task, make its video public if needed, and create the provider task.

    1. claim (queued → submitting) or stop: another worker has it;
    2. an upload goes through the provider's file upload API for a public URL;
    3. generate, with a callback URL on this app when it has a public address;
    4. record the provider's task id (→ generating); if the callback already
       arrived while we waited, finalize now.
    """
    task = ModifyTask.objects.filter(pk=task_id).first()
    if task is None or not task.claim_for_submission():
        return task
    try:
        api_key, secret = backend.key_for(task.owner)
        client = backend.client(secret)
        if task.source_kind == ModifyTask.Source.UPLOAD:
            with task.source_file.open("rb") as fh:
                video_url = client.upload_file(fh, "lumaweb/sources", task.source_name or "source.mp4").download_url
        else:
            video_url = task.source_url
        provider_task_id = client.generate(
            task.prompt, video_url, callback_url=callback_url(task), watermark=task.watermark or None
        )
    except provider.ProviderError as error:
        _submission_failed(task, error)
        return task
    except Exception:
        task.fail("Submitting the task failed unexpectedly; staff can see the details in the logs.")
        raise
    if api_key is not None:
        type(api_key).objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
        ModifyTask.objects.filter(pk=task.pk).update(api_key=api_key)
    if task.mark_generating(provider_task_id, video_url) and task.callback_received_at:
        from modify.jobs import enqueue_finalize

        enqueue_finalize(task)
    return task


def _submission_failed(task, error):
    if error.retryable and task.submit_attempts < settings.LUMA_SUBMIT_MAX_ATTEMPTS:
        delay = getattr(error, "retry_after", None) or backoff_seconds(task.submit_attempts, base=10)
        log.info("task %s: retryable provider error on submit (%s), again in %.0fs", task.pk, type(error).__name__, delay)
        task.retry_submission(delay, reason=f"Waiting to retry: {error}")
    else:
        task.fail(explain(error), code=error.code)


def poll(task):
    """Ask the provider about one generating task, and act on the answer.

    The next poll is booked before asking, so a task whose poll raises is
    pushed forward and cannot crash-loop the scheduler.
    """
    if timezone.now() - (task.generating_at or task.created_at) > timedelta(seconds=settings.LUMA_MAX_WAIT_SECONDS):
        minutes = settings.LUMA_MAX_WAIT_SECONDS // 60
        task.fail(f"The provider did not finish within {minutes} minutes; gave up waiting.")
        return task
    next_poll = timezone.now() + timedelta(seconds=backoff_seconds(task.poll_count + 1, settings.LUMA_POLL_FIRST_SECONDS))
    if not task.record_poll(next_poll):
        return task
    _, secret = backend.key_for(task.owner)
    try:
        info = backend.client(secret).record_info(task.provider_task_id)
    except provider.ProviderError as error:
        if error.retryable:
            log.info("task %s: retryable provider error on poll (%s)", task.pk, type(error).__name__)
        else:
            task.fail(explain(error), code=error.code)
        return task
    return settle(task, info)


def finalize(task_id):
    """Finalize after a callback: the callback is only a hint, record-info is the truth."""
    task = ModifyTask.objects.filter(pk=task_id, state=ModifyTask.State.GENERATING).first()
    return poll(task) if task is not None else None


def settle(task, info):
    """Turn a record-info answer into the next state."""
    if info.is_success:
        if not info.result_urls:
            task.fail("The provider reported success but gave no result file.")
            return task
        if task.start_archiving(info.result_urls[0]):
            _, secret = backend.key_for(task.owner)
            archive.archive(task, backend.client(secret))
    elif info.is_failed:
        message = info.error_message or "no reason given"
        task.fail(
            f"The provider could not generate this video ({message}). Try a different prompt or video.",
            code=info.error_code,
        )
    return task
