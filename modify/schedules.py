"""The django-q2 schedule that polls the provider, created idempotently.

Called by migration 0002 (with the historical model) and by ``bootstrap``
at every ``make run``, so a schedule deleted by hand comes back.
"""

POLL_SCHEDULE_NAME = "lumaweb: poll provider tasks"


def ensure_poll_schedule(schedule_model):
    schedule, _ = schedule_model.objects.update_or_create(
        name=POLL_SCHEDULE_NAME,
        defaults={"func": "modify.jobs.poll_due_tasks", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )
    return schedule
