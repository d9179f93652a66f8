"""django-q2 entry points: thin wrappers that enqueue or call ``modify.lifecycle``.

``poll_due_tasks`` is the every-minute schedule (created by migration
0002). Its steps:

1. re-enqueue queued tasks whose submission job was lost or whose retry is due;
2. poll the generating tasks whose next poll is due, oldest due first, a
   bounded batch per run; a task that raises has already been pushed
   forward (``lifecycle.poll`` books its next poll first), so one bad row
   cannot crash-loop the scheduler;
3. fail archiving tasks whose worker died mid-download (nothing is lost:
   the user sees why).
"""

import logging
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from modify import lifecycle
from modify.models import ModifyTask

log = logging.getLogger(__name__)
POLL_BATCH = 50
LOST_SUBMISSION_AFTER = timedelta(minutes=2)
STALE_ARCHIVING_AFTER = timedelta(minutes=30)
STALE_SUBMITTING_AFTER = timedelta(minutes=15)


def enqueue_submit(task):
    async_task("modify.jobs.submit_task", str(task.pk), task_name=f"submit-{task.pk}")


def enqueue_finalize(task):
    async_task("modify.jobs.finalize_task", str(task.pk), task_name=f"finalize-{task.pk}")


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
    stale = ModifyTask.objects.filter(
        Q(state=ModifyTask.State.ARCHIVING, archiving_at__lte=now - STALE_ARCHIVING_AFTER)
        | Q(state=ModifyTask.State.SUBMITTING, submitting_at__lte=now - STALE_SUBMITTING_AFTER)
    )
    for task in stale:
        task.fail("The worker handling this task stopped before it finished; please submit it again.")
    return {"requeued": len(lost), "polled": polled, "abandoned": len(stale)}
