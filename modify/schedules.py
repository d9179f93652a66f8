"""The django-q2 schedule that sweeps the lifecycle every minute, created idempotently.

Called by ``bootstrap`` at every ``make run``, so a schedule deleted or
changed by hand comes back (migration 0005 made it from the older poll schedule).
"""

SWEEP_SCHEDULE_NAME = "lumaweb: lifecycle sweep"
SWEEP_FUNC = "modify.jobs.sweep"


def ensure_sweep_schedule(schedule_model):
    schedule, _ = schedule_model.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={"func": SWEEP_FUNC, "schedule_type": "I", "minutes": 1, "repeats": -1},
    )
    return schedule
