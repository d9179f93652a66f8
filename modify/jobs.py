"""django-q2 entry points: thin wrappers that enqueue or call ``modify.lifecycle``.

``poll_due_tasks`` is the every-minute schedule (created by migration
0002). Its steps:

1. re-enqueue queued tasks whose submission job was lost or whose retry is due;
2. poll the generating tasks whose next poll is due, oldest due first, a
   bounded batch per run; a task that raises has already been pushed
   forward (``lifecycle.poll`` books its next poll first), so one bad row
   cannot crash-loop the scheduler; a finished result is archived by its
   own job, never inside the schedule;
3. recover tasks whose worker died: an interrupted archive is polled and
   archived again; a submission that never came back fails with the reason.
"""

import logging
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
    lost = ModifyTask.objects.filter(state=ModifyTask.State.QUEUED).filter(
        Q(next_submit_at__lte=now) | Q(next_submit_at__isnull=True, created_at__lte=now - LOST_SUBMISSION_AFTER)
    )
    for task in lost:
        # Push the retry forward so the next sweep does not enqueue it again.
        ModifyTask.objects.filter(pk=task.pk, state=task.state).update(next_submit_at=now + LOST_SUBMISSION_AFTER)
        enqueue_submit(task)
    polled = 0
    for task in ModifyTask.objects.due_for_poll(now).order_by("next_poll_at")[:POLL_BATCH]:
        try:
            lifecycle.poll(task)
        except Exception:
            log.exception("task %s: poll failed; it will be polled again later", task.pk)
        polled += 1
    stale_before = now - worker_gave_up_after()
    interrupted = ModifyTask.objects.filter(state=ModifyTask.State.ARCHIVING, archiving_at__lte=stale_before)
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
    return {"requeued": len(lost), "polled": polled, "recovered": recovered, "abandoned": abandoned}
