"""Existing tasks into the event-log lifecycle, without losing one.

* one meaning per field: a live task's ``error_message`` was its progress
  note (now ``status_note``); a submitting task with ``next_submit_at`` was
  waiting for its callback (now ``unconfirmed`` until ``callback_deadline``);
  a queued task's ``updated_at`` was its enqueue lease (now ``enqueued_at``);
* each task gets the history its timestamps tell (created, sent, generating,
  archiving, done or failed), so old tasks keep a timeline;
* the every-minute schedule becomes the lifecycle sweep.
"""

import re

from django.db import migrations
from django.db.models import F

OLD_SCHEDULE = "lumaweb: poll provider tasks"
SWEEP_SCHEDULE, SWEEP_FUNC = "lumaweb: lifecycle sweep", "modify.jobs.sweep"
BACKFILLED = "recorded before the event log"
# As modify.logfilters.redact: an old error message may echo a callback URL and its secret.
CALLBACK_SECRET = re.compile(r"(/callbacks/)[^/\s\"?]+")


def forward(apps, schema_editor):
    Task = apps.get_model("modify", "ModifyTask")
    live = ["queued", "submitting", "generating", "archiving"]
    Task.objects.filter(state="submitting", next_submit_at__isnull=False).update(
        state="unconfirmed", callback_deadline=F("next_submit_at"), next_submit_at=None
    )
    Task.objects.filter(state__in=live + ["unconfirmed"]).exclude(error_message="").update(
        status_note=F("error_message"), error_message=""
    )
    Task.objects.filter(state="queued").update(enqueued_at=F("updated_at"))
    _backfill_events(apps, Task)
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=OLD_SCHEDULE).delete()
    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE, defaults={"func": SWEEP_FUNC, "schedule_type": "I", "minutes": 1, "repeats": -1}
    )


def _backfill_events(apps, Task):
    Event = apps.get_model("modify", "TaskEvent")
    events = []
    for task in Task.objects.filter(events__isnull=True).iterator():
        steps = [("created", "", "queued", "member", task.created_at, BACKFILLED),
                 ("claim", "queued", "submitting", "system", task.submitting_at, BACKFILLED),
                 ("accepted", "submitting", "generating", "system", task.generating_at, BACKFILLED),
                 ("result_found", "generating", "archiving", "system", task.archiving_at, BACKFILLED)]
        if task.state == "succeeded":
            steps.append(("archived", "archiving", "succeeded", "system", task.finished_at, BACKFILLED))
        elif task.state == "failed":
            reason = CALLBACK_SECRET.sub(r"\1[redacted]", task.error_message)[:500]
            steps.append(("fail", task.failed_stage, "failed", "system", task.finished_at, reason))
        for kind, source, target, actor, moment, detail in steps:
            if moment is not None:
                events.append(Event(task_id=task.pk, kind=kind, from_state=source, to_state=target, actor=actor,
                                    actor_user_id=task.owner_id if actor == "member" else None, detail=detail,
                                    created_at=moment))
    Event.objects.bulk_create(events, batch_size=500)


def backward(apps, schema_editor):
    Task = apps.get_model("modify", "ModifyTask")
    Task.objects.filter(state="unconfirmed").update(state="submitting", next_submit_at=F("callback_deadline"))
    Task.objects.exclude(status_note="").update(error_message=F("status_note"))
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=SWEEP_SCHEDULE).delete()
    Schedule.objects.update_or_create(
        name=OLD_SCHEDULE, defaults={"func": "modify.jobs.poll_due_tasks", "schedule_type": "I", "minutes": 1, "repeats": -1}
    )


class Migration(migrations.Migration):
    dependencies = [("modify", "0004_lifecycle_event_log"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(forward, backward)]
