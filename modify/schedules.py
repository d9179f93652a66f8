"""The django-q2 schedule that sweeps the lifecycle every minute, created idempotently.

Called by migrations (with the historical model) and by ``bootstrap`` at
every ``make run``, so a schedule deleted by hand comes back.
"""

SWEEP_SCHEDULE_NAME = "lumaweb: lifecycle sweep"
SWEEP_FUNC = "modify.jobs.sweep"
# Its name and job before the sweep had one of its own (migration 0005 renames it).
OLD_SCHEDULE_NAME = "lumaweb: poll provider tasks"


def ensure_sweep_schedule(schedule_model):
    schedule, _ = schedule_model.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={"func": SWEEP_FUNC, "schedule_type": "I", "minutes": 1, "repeats": -1},
    )
    return schedule
