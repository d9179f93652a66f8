"""What a member may still spend: tasks per day, tasks in flight, credits per month.

The limits are the member's own ``Quota`` row where it sets one, else the
team's default row, else none. ``check`` runs before anything is stored or
sent (the form, then again inside the transaction that creates the task), and
says which limit was reached and when it resets.

Credits are counted when the provider creates a task (``ModifyTask.credits``);
a live task that has not got that far yet is counted at one task's cost
(``LUMA_CREDITS_PER_TASK``), so a burst of submissions cannot overdraw the
month before any of them is sent.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from modify.models import ModifyTask
from modify.states import LIVE
from team.models import Quota

LIMITS = ("tasks_per_day", "tasks_in_flight", "credits_per_month")


class QuotaExceeded(Exception):
    """A submission over a limit; ``str()`` says which, and when it resets."""


@dataclass(frozen=True)
class Limits:
    tasks_per_day: int | None = None
    tasks_in_flight: int | None = None
    credits_per_month: int | None = None


@dataclass(frozen=True)
class Usage:
    tasks_today: int
    tasks_in_flight: int
    credits_this_month: int
    limits: Limits
    day_resets_at: datetime
    month_resets_at: datetime
    # Live tasks the provider has not billed yet, each counted at one task's cost against the month.
    credits_pending: int = 0


def limits_for(member):
    rows = {row.member_id: row for row in Quota.objects.filter(Q(member=member) | Q(member__isnull=True))}
    own, team = rows.get(member.pk), rows.get(None)

    def pick(name):
        for row in (own, team):
            if row is not None and getattr(row, name) is not None:
                return getattr(row, name)
        return None

    return Limits(**{name: pick(name) for name in LIMITS})


def usage(member, now=None):
    """What ``member`` has spent against each limit, in one query, and when the periods reset."""
    now = timezone.localtime(now or timezone.now())
    day_start = timezone.make_aware(datetime.combine(now.date(), time.min), now.tzinfo)
    month_start = day_start.replace(day=1)
    figures = ModifyTask.objects.filter(owner=member).aggregate(
        tasks_today=Count("pk", filter=Q(created_at__gte=day_start)),
        tasks_in_flight=Count("pk", filter=Q(state__in=LIVE)),
        credits_this_month=Sum("credits", filter=Q(generating_at__gte=month_start), default=0),
        unbilled=Count("pk", filter=Q(state__in=LIVE, credits__isnull=True)),
    )
    credits_pending = figures.pop("unbilled") * settings.LUMA_CREDITS_PER_TASK
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    return Usage(**figures, limits=limits_for(member), day_resets_at=day_start + timedelta(days=1),
                 month_resets_at=next_month, credits_pending=credits_pending)


def check(member, now=None):
    """Raise ``QuotaExceeded`` if one more task would go over a limit of ``member``."""
    spent = usage(member, now)
    limits, now = spent.limits, now or timezone.now()
    cost = settings.LUMA_CREDITS_PER_TASK
    for name in LIMITS:
        # No reset helps when the limit itself leaves no room for one task.
        value, least = getattr(limits, name), cost if name == "credits_per_month" else 1
        if value is not None and value < least:
            raise QuotaExceeded(f"Your limit of {name.replace('_', ' ')} is {value}, which leaves no room for a task; "
                                f"ask staff to raise it.")
    if limits.tasks_in_flight is not None and spent.tasks_in_flight >= limits.tasks_in_flight:
        raise QuotaExceeded(
            f"You have reached your limit of {_tasks(limits.tasks_in_flight)} in flight; "
            f"it frees up when one of them finishes."
        )
    if limits.tasks_per_day is not None and spent.tasks_today >= limits.tasks_per_day:
        raise QuotaExceeded(
            f"You have reached your limit of {_tasks(limits.tasks_per_day)} per day; "
            f"it resets {_when(spent.day_resets_at, now)}."
        )
    committed = spent.credits_this_month + spent.credits_pending
    if limits.credits_per_month is not None and committed + cost > limits.credits_per_month:
        pending = f", {spent.credits_pending} more on tasks not sent yet" if spent.credits_pending else ""
        raise QuotaExceeded(
            f"This task would take you past your limit of {limits.credits_per_month} credits per month "
            f"({spent.credits_this_month} spent{pending}); it resets {_when(spent.month_resets_at, now)}."
        )


def _tasks(count):
    return f"{count} task" if count == 1 else f"{count} tasks"


def _when(moment, now):
    local = timezone.localtime(moment)
    left = moment - now
    hours, minutes = divmod(int(left.total_seconds()) // 60, 60)
    wait = f"{hours // 24} days" if hours >= 48 else f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return f"on {local:%-d %b at %H:%M} ({timezone.get_current_timezone_name()}), in {wait}"
