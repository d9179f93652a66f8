"""The django-q2 schedule that refreshes every key's credits, created idempotently.

Called by ``bootstrap`` at every ``make run`` (beside the lifecycle sweep's),
so a schedule deleted or changed by hand comes back, and a new
``LUMA_CREDITS_REFRESH_MINUTES`` takes effect at the next start.
"""

from django.conf import settings

CREDITS_SCHEDULE_NAME = "lumaweb: refresh key credits"
CREDITS_FUNC = "team.jobs.refresh_credits"


def ensure_credits_schedule(schedule_model):
    schedule, _ = schedule_model.objects.update_or_create(
        name=CREDITS_SCHEDULE_NAME,
        defaults={"func": CREDITS_FUNC, "schedule_type": schedule_model.MINUTES,
                  "minutes": settings.LUMA_CREDITS_REFRESH_MINUTES, "repeats": -1},
    )
    return schedule
