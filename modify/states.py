"""The task's states and every move between them, in one table.

A task moves only along a row of ``TRANSITIONS``, and only through
``ModifyTask.transition`` (``modify/models/task.py``): a conditional UPDATE on
the state the caller read, which also writes the ``TaskEvent`` row. Two
workers, a callback and a poll racing on one task change it once.

    queued ─claim─▶ submitting ─generate_sent─▶ unconfirmed ─accepted─▶ generating ─result_found─▶ archiving ─archived─▶ succeeded
      ▲                                           │  │                      ▲ ▲                         │
      └──────────────── retry_later ──────────────┘  └─ adopted (callback) ─┘ └──── resume_archiving ───┘

and ``fail`` from any live state to ``failed``; a task over the provider's
rate limit goes back to the queue with ``wait_for_slot`` (``modify.limiter``),
its attempt given back; staff can ``rearchive`` a
task that failed while archiving (its result is still upstream). Rows whose target is ``None``
change no state: they keep a fetched source, re-enqueue a lost submission,
note that generate got no answer, book the next poll or note the first
callback; they are listed so that every write of a lifecycle field is one of
these named moves.
"""

from dataclasses import dataclass

from django.db import models


class State(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTING = "submitting", "Submitting"
    # generate went out and its answer (the provider's task id) is not in yet. The
    # provider may have created, and billed, the task: it is never resent blindly;
    # the answer, or else the callback, names it, or the deadline passes.
    UNCONFIRMED = "unconfirmed", "Awaiting the provider"
    GENERATING = "generating", "Generating"
    ARCHIVING = "archiving", "Archiving"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


class Actor(models.TextChoices):
    """Who made a change: a member, staff, the provider (a callback) or the app itself."""

    MEMBER = "member", "Member"
    STAFF = "staff", "Staff"
    PROVIDER = "provider", "Provider"
    SYSTEM = "system", "System"


TERMINAL = (State.SUCCEEDED, State.FAILED)
LIVE = (State.QUEUED, State.SUBMITTING, State.UNCONFIRMED, State.GENERATING, State.ARCHIVING)
# The progress strip on a status card: the steps a member sees, in order.
STEPS = (State.QUEUED, State.SUBMITTING, State.GENERATING, State.ARCHIVING)


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple
    target: str | None  # None: the state stays what it was
    logged: bool = True  # False: the caller logs the outcome instead (a poll's answer)


S = State
TRANSITIONS = {t.name: t for t in [
    #          name                 from                                      to
    Transition("claim",             (S.QUEUED,),                              S.SUBMITTING),
    Transition("requeue",           (S.QUEUED,),                              None),
    Transition("source_kept",       (S.SUBMITTING,),                          None),
    Transition("generate_sent",     (S.SUBMITTING,),                          S.UNCONFIRMED),
    Transition("retry_later",       (S.SUBMITTING, S.UNCONFIRMED),            S.QUEUED),
    Transition("wait_for_slot",     (S.SUBMITTING,),                          S.QUEUED),  # the attempt is given back
    Transition("accepted",          (S.UNCONFIRMED,),                         S.GENERATING),
    Transition("no_answer",         (S.UNCONFIRMED,),                         None),
    Transition("adopted",           (S.QUEUED, S.SUBMITTING, S.UNCONFIRMED),  S.GENERATING),
    Transition("book_poll",         (S.GENERATING,),                          None, logged=False),
    Transition("result_found",      (S.GENERATING,),                          S.ARCHIVING),
    Transition("resume_archiving",  (S.ARCHIVING,),                           S.GENERATING),
    Transition("archived",          (S.ARCHIVING,),                           S.SUCCEEDED),
    Transition("fail",              LIVE,                                     S.FAILED),
    Transition("rearchive",         (S.FAILED,),                              S.ARCHIVING),
    Transition("callback_accepted", LIVE + TERMINAL,                          None),
]}
del S

# Every field that only ``ModifyTask.transition`` may write.
LIFECYCLE_FIELDS = frozenset({
    "state", "failed_stage", "error_code", "error_message", "failure_key", "status_note", "credits",
    "provider_task_id", "provider_video_url", "api_key", "api_key_id", "result_url",
    "submit_attempts", "next_submit_at", "enqueued_at", "callback_deadline",
    "poll_count", "next_poll_at", "last_polled_at", "callback_received_at",
    "submitting_at", "generating_at", "archiving_at", "finished_at", "updated_at",
})
