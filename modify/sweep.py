"""The every-minute sweep: the lifecycle's own policy for tasks nobody is moving.

Jobs can be lost (a broker restarted), workers can die (killed past
django-q2's timeout), callbacks may never come. The sweep, run by the
schedule ``jobs.sweep``, makes sure every accepted task still reaches a
terminal state. Its steps:

1. recover from dead workers: an interrupted archive is polled and archived
   again; a sending that died before generate went out fails with the
   reason (nothing was spent; one that died after waits, unconfirmed);
2. fail unconfirmed tasks whose id did not come (answer or callback) by their deadline;
3. enqueue the sending of queued tasks whose retry is due or whose job was
   lost (each claimed with a conditional UPDATE, so one sweep enqueues it);
4. poll the generating tasks whose next poll is due, oldest due first, a
   bounded batch within half the job timeout; one bad row is logged and
   skipped (its poll was booked first, so it cannot crash-loop the sweep).
   The batch asks record-info at most ``LUMA_RECORD_INFO_PER_SECOND`` times a
   second per API key (simple spacing), not in one burst.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from modify import enqueue, failures, polling
from modify.models import ModifyTask
from modify.states import Actor
from modify.timing import worker_gave_up_after

log = logging.getLogger(__name__)
POLL_BATCH = 50
LOST_SENDING_AFTER = timedelta(minutes=2)


def sweep():
    now = timezone.now()
    recovered, abandoned = _recover_from_dead_workers(now)
    abandoned += sum(task.fail(failures.sentence("never_confirmed"))
                     for task in ModifyTask.objects.unconfirmed_past_deadline(now))
    requeued = _requeue_sendings(now)
    polled = _poll_due(timezone.now())  # after the recoveries above, which make tasks due now
    return {"requeued": requeued, "polled": polled, "recovered": recovered, "abandoned": abandoned}


def _recover_from_dead_workers(now):
    stale_before = now - worker_gave_up_after()
    recovered = sum(task.resume_archiving("its worker stopped") for task in ModifyTask.objects.stale_archiving(stale_before))
    abandoned = sum(task.fail(failures.sentence("worker_stopped"))
                    for task in ModifyTask.objects.stale_submitting(stale_before))
    return recovered, abandoned


def _requeue_sendings(now):
    requeued = 0
    for task in ModifyTask.objects.due_for_sending(now, LOST_SENDING_AFTER):
        retry_due = task.next_submit_at is not None and (task.enqueued_at is None or task.enqueued_at < task.next_submit_at)
        if task.requeue(now, "its retry is due" if retry_due else "its sending job was not picked up"):
            enqueue.send_to_provider(task)
            requeued += 1
    return requeued


def _poll_due(now):
    polled = 0
    deadline = time.monotonic() + settings.Q_CLUSTER["timeout"] / 2
    pace = _Pace(settings.LUMA_RECORD_INFO_PER_SECOND)
    for task in ModifyTask.objects.due_for_poll(now).select_related("owner", "api_key").order_by("next_poll_at")[:POLL_BATCH]:
        if time.monotonic() > deadline:
            break  # the next sweep carries on; this one must end before django-q2 kills it
        pace.wait(task.api_key_id)  # None: the environment's (or the sandbox's) key
        try:
            polled += polling.poll(task, due_only=True)
        except Exception:
            log.exception("task %s: poll failed; it will be polled again later", task.pk)
            task.record("poll", actor=Actor.SYSTEM, detail="the poll failed unexpectedly; it will be asked again")
    return polled


class _Pace:
    """Spaces calls per key: at most ``per_second`` a second each (0 or less: no spacing)."""

    def __init__(self, per_second):
        self.gap = 1 / per_second if per_second > 0 else 0
        self.last = {}

    def wait(self, key):
        if key in self.last:
            time.sleep(max(0.0, self.last[key] + self.gap - time.monotonic()))
        self.last[key] = time.monotonic()
