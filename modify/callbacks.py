"""The provider's callback, as the lifecycle sees it: prove it, log it, act on it.

A callback is only a hint (a poll confirms with record-info), but it still
has to prove itself: its URL carries a per-task secret (the view looks the
task up by it), and when ``LUMA_WEBHOOK_HMAC_KEY`` is set its signature and
timestamp must be valid. Every callback for a known task leaves an event:
accepted (first or duplicate) or rejected with the reason; a rejected one
changes nothing else. An accepted one:

1. names the provider task of a task whose generate call has not answered
   (or never will): the task moves to ``generating`` and is polled at once;
2. notes the first delivery, with its event, in one conditional UPDATE that
   also checks the task id: a callback for another provider task (generate
   answered with another id meanwhile) is rejected, and the same callback
   delivered five times enqueues one poll;
3. enqueues a poll of a generating task, on its first delivery.
"""

import json
from dataclasses import dataclass

from django.conf import settings

from modify import enqueue, webhooks
from modify.states import TRANSITIONS, Actor, State

ADOPTABLE = TRANSITIONS["adopted"].sources


@dataclass(frozen=True)
class Outcome:
    status: int
    reason: str = ""

    @property
    def accepted(self):
        return self.status == 200


def receive(task, body, headers):
    """Handle a callback ``body`` (bytes) with its ``headers`` for ``task``; the answer to give."""
    provider_task_id, problem = _authenticate(task, body, headers)
    if not problem:
        adopted = _adoptable(task) and _until_settled(task, lambda: task.adopt(provider_task_id), lambda: _adoptable(task))
        first = _until_settled(task, lambda: task.note_callback(provider_task_id),
                               lambda: task.callback_received_at is None and _names(task, provider_task_id))
        if not _names(task, provider_task_id):  # generate recorded another id meanwhile
            problem = _MISMATCH
    if problem:
        task.record("callback_rejected", actor=Actor.PROVIDER, detail=problem.reason)
        return problem
    if not first:
        task.record("callback_accepted", actor=Actor.PROVIDER, detail="duplicate")
    if adopted or (first and task.state == State.GENERATING):
        enqueue.poll(task)
    return Outcome(200)


def _adoptable(task):
    """Generate has not answered (or never will): the callback can name the provider task."""
    return not task.provider_task_id and task.state in ADOPTABLE


def _authenticate(task, body, headers):
    """``(provider task id, None)`` for a callback that proves itself, else ``(None, Outcome)``."""
    try:
        data = json.loads(body)["data"]
        # The contract says taskId; kie.ai's own sample receiver reads task_id.
        provider_task_id = data["taskId"] if "taskId" in data else data["task_id"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, RecursionError):
        return None, Outcome(400, "malformed callback body")
    if not isinstance(provider_task_id, str) or not 0 < len(provider_task_id) <= 64:
        return None, Outcome(400, "malformed taskId")
    if settings.LUMA_WEBHOOK_HMAC_KEY:
        problem = webhooks.signature_problem(
            settings.LUMA_WEBHOOK_HMAC_KEY, provider_task_id, headers.get("X-Webhook-Timestamp", ""),
            headers.get("X-Webhook-Signature", ""), settings.LUMA_CALLBACK_MAX_AGE_SECONDS,
        )
        if problem:
            return None, Outcome(403, problem)
    if not _names(task, provider_task_id):
        return None, _MISMATCH
    return provider_task_id, None


_MISMATCH = Outcome(400, "taskId does not match this task")


def _names(task, provider_task_id):
    """Whether the callback's task id can be this task's: its own, or none is known yet."""
    return task.provider_task_id in ("", provider_task_id)


def _until_settled(task, attempt, still_applies, tries=3):
    """Run a transition; if another worker moved the task meanwhile, reload and try again while it still applies."""
    for _ in range(tries):
        if attempt():
            return True
        task.refresh_from_db()
        if not still_applies():
            return False
    return False
