"""Asking the provider about a generating task, and acting on its answer.

The sweep polls due tasks on a backoff; a verified callback enqueues a poll
at once (a callback is only a hint: record-info is the truth). Each poll:

1. gives up on a task past its maximum wait, else books this poll and the
   next one before asking, so a task whose poll raises has already been
   pushed forward and cannot crash-loop the sweep; with ``due_only`` (the
   sweep) the booking is a claim: of two overlapping sweeps, one polls;
2. asks record-info, and logs the answer (flag, or the error's code);
3. a finished result moves the task to ``archiving`` and enqueues its
   archiving (one job, never inside the sweep); a failed generation fails it.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from modify import backend, enqueue, failures, provider
from modify.timing import backoff_seconds
from modify.models import ModifyTask
from modify.states import Actor

log = logging.getLogger(__name__)
FLAGS = {0: "generating", 1: "succeeded", 2: "creating the task failed", 3: "generation failed",
         4: "succeeded (callback delivery failed)"}


def poll_task(task_id):
    """Poll one task now, whatever its booking (after a callback)."""
    task = ModifyTask.objects.filter(pk=task_id, state=ModifyTask.State.GENERATING).select_related("owner", "api_key").first()
    if task is not None:
        poll(task)


def poll(task, due_only=False):
    """Poll ``task`` (see the steps above); True if the provider was asked."""
    if not _book(task, due_only):
        return False
    try:
        info = backend.client_for(task).record_info(task.provider_task_id)
    except backend.ConfigurationError as error:
        task.fail(error.sentence)  # not asked: the fail event says why
        return False
    except provider.ProviderError as error:
        # record-info changes nothing upstream: a garbled answer is worth asking again.
        again = error.retryable or isinstance(error, provider.ProtocolError)
        task.record("poll", actor=Actor.PROVIDER, detail=f"{error_detail(error)}; {'will ask again' if again else 'giving up'}")
        if not again:
            task.fail(failures.for_provider_error(error), code=error.code)
        return True
    task.record("poll", actor=Actor.PROVIDER, detail=answer_detail(info))
    settle(task, info)
    return True


def settle(task, info):
    """Turn a record-info answer into the next state."""
    if info.is_success:
        if not info.result_urls:
            task.fail(failures.sentence("no_result_file"))
        elif task.result_found(info.result_urls[0]):
            enqueue.archive(task)
    elif info.is_failed:
        # A generation the provider reports failed costs nothing (the sandbox refunds it, as kie.ai does).
        task.fail(failures.sentence("generation_failed", reason=info.error_message or "no reason given"),
                  code=info.error_code, refunded=True)
    return task


def _book(task, due_only):
    """Fail a task past its maximum wait, else book its next poll; True when this caller should poll now."""
    waited = timezone.now() - (task.archiving_at or task.generating_at or task.created_at)
    if waited > timedelta(seconds=settings.LUMA_MAX_WAIT_SECONDS):
        minutes = settings.LUMA_MAX_WAIT_SECONDS // 60
        # A result that was found is given its own time to be archived.
        task.fail(failures.sentence("gave_up_archiving" if task.archiving_at else "gave_up_generating", minutes=minutes))
        return False
    next_poll = timezone.now() + timedelta(seconds=backoff_seconds(task.poll_count + 1, settings.LUMA_POLL_FIRST_SECONDS))
    return task.book_poll(next_poll, due_only=due_only)


def answer_detail(info):
    """A record-info answer in a few words, as the task's history keeps it."""
    detail = f"successFlag {info.success_flag} ({FLAGS.get(info.success_flag, 'unknown')})"
    if info.error_code is not None or info.error_message:
        detail += f", errorCode {info.error_code}: {info.error_message or 'no message'}"
    return detail


def error_detail(error):
    """A provider error in a few words (its kind and code), as the task's history keeps it."""
    code = f"code {error.code}" if error.code is not None else f"HTTP {error.http_status}" if error.http_status else "no answer"
    return f"{type(error).__name__} ({code})"
