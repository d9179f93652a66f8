"""django-q2 entry points: thin wrappers that enqueue or call ``modify.lifecycle``.

``poll_due_tasks`` is the every-minute schedule (created by migration
0002). Its steps:

1. recover tasks whose worker died: an interrupted archive is polled and
   archived again; a submission that never came back fails with the reason;
2. re-enqueue queued tasks whose submission job was lost or whose retry is due;
3. poll the generating tasks whose next poll is due, oldest due first, a
   bounded batch within half the job timeout; each poll is claimed (two
   overlapping sweeps poll a task once) and booked before the provider is
   asked, so one bad row cannot crash-loop the scheduler; a finished result
   is archived by its own job, never inside the schedule.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from modify import lifecycle
from modify.models import ModifyTask

log = logging.getLogger(__name__)
POLL_BATCH = 50
LOST_SUBMISSION_AFTER = timedelta(minutes=2)


def worker_gave_up_after():
    """A job still running past django-q2's timeout has been killed: its task is stale."""
    return timedelta(seconds=settings.Q_CLUSTER["timeout"]) + timedelta(minutes=5)


def enqueue_submit(task):
    async_task("modify.jobs.submit_task", str(task.pk), task_name=f"submit-{task.pk}")


def enqueue_finalize(task):
    async_task("modify.jobs.finalize_task", str(task.pk), task_name=f"finalize-{task.pk}")


def enqueue_archive(task):
    async_task("modify.jobs.archive_task", str(task.pk), task_name=f"archive-{task.pk}")


def archive_task(task_id):
    lifecycle.archive_result(task_id)


def submit_task(task_id):
    lifecycle.submit(task_id)


def finalize_task(task_id):
    lifecycle.finalize(task_id)


def poll_due_tasks():
    now = timezone.now()
    recovered, abandoned = _recover_from_dead_workers(now)
    requeued = _requeue_submissions(now)
    polled = 0
    deadline = time.monotonic() + settings.Q_CLUSTER["timeout"] / 2
    for task in ModifyTask.objects.due_for_poll(now).select_related("owner", "api_key").order_by("next_poll_at")[:POLL_BATCH]:
        if time.monotonic() > deadline:
            break  # the next sweep carries on; this one must end before django-q2 kills it
        try:
            lifecycle.poll(task, due_only=True)
        except Exception:
            log.exception("task %s: poll failed; it will be polled again later", task.pk)
        polled += 1
    return {"requeued": requeued, "polled": polled, "recovered": recovered, "abandoned": abandoned}


def _requeue_submissions(now):
    """Enqueue queued tasks whose retry is due or whose first job was lost, once per due
    time, and again every LOST_SUBMISSION_AFTER while no worker takes them."""
    requeued = 0
    candidates = ModifyTask.objects.filter(state=ModifyTask.State.QUEUED).filter(
        Q(next_submit_at__lte=now) | Q(next_submit_at__isnull=True, created_at__lte=now - LOST_SUBMISSION_AFTER)
    )
    for task in candidates:
        due = task.next_submit_at or task.created_at + LOST_SUBMISSION_AFTER
        if task.updated_at > due and task.updated_at > now - LOST_SUBMISSION_AFTER:
            continue  # enqueued since it became due, and not long ago
        # updated_at marks the enqueue; the claim does not read it, so the job can run at once.
        if ModifyTask.objects.filter(pk=task.pk, state=task.state, updated_at=task.updated_at).update(updated_at=now):
            enqueue_submit(task)
            requeued += 1
    return requeued


def _recover_from_dead_workers(now):
    stale_before = now - worker_gave_up_after()
    # An archiving task is only touched by its archive job; untouched past the job timeout, it died.
    interrupted = ModifyTask.objects.filter(state=ModifyTask.State.ARCHIVING, updated_at__lte=stale_before)
    recovered = sum(task.retry_archiving() for task in interrupted)
    unanswered = ModifyTask.objects.filter(state=ModifyTask.State.SUBMITTING, submitting_at__lte=stale_before).filter(
        Q(next_submit_at__isnull=True) | Q(next_submit_at__lte=now)
    )
    abandoned = 0
    for task in unanswered:
        if task.next_submit_at:
            abandoned += task.fail("The provider never confirmed this task, nor called back; please submit it again.")
        else:
            abandoned += task.fail("The worker handling this task stopped before it finished; please submit it again.")
    return recovered, abandoned
