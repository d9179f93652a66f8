"""What staff see of the whole account at a glance, on the admin's home.

``dashboard`` gathers the figures: tasks in flight, failures today, each
key's credits (counting them is ``team.keys``'s: here they are read, and
asked again on demand), and the task queue's health; a handful of queries
whatever the number of tasks.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.timesince import timesince
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Failure, Schedule, Success
from django_q.status import Stat

from modify.models import ApiKey, ModifyTask
from modify.oversight import Outcome
from modify.schedules import SWEEP_SCHEDULE_NAME
from modify.states import LIVE, State
from team import keys
from team.key_forms import KeyRefused


# --- Credits -----------------------------------------------------------------------------------------
# Counting them is ``team.keys``'s (the schedule, the Keys page): here they are read, and asked again.


def check_credits():
    """Ask the provider now for the credits of every open key, and of the environment's, remembering
    each answer as the schedule does; ``[(key, Outcome)]``, a refusal saying why."""
    results = []
    for api_key in ApiKey.objects.filter(is_active=True).select_related("owner").order_by("label"):
        results.append((str(api_key), _counted(lambda: keys.check_credits(api_key))))
    if keys.environment_secret():
        results.append((_environment_label(), _counted(keys.check_environment_credits)))
    return results


def _counted(count):
    try:
        return Outcome(f"{count()} credits left.")
    except KeyRefused as refused:
        return Outcome(str(refused), ok=False)


def _environment_label():
    return "LUMA_API_KEY (environment)" if settings.LUMA_API_KEY else "The sandbox's key"


@dataclass(frozen=True)
class KeyCredits:
    label: str
    masked: str
    owner: str  # "team", or the member's username
    is_active: bool
    credits: int | None
    checked_at: object
    admin_url_id: int | None  # the ApiKey row, if any

    @property
    def checked(self):
        return ago(self.checked_at) if self.checked_at else "never"

    @property
    def is_low(self):
        return self.credits is not None and self.credits <= settings.LUMA_LOW_CREDITS

    @property
    def is_out(self):
        return self.credits is not None and self.credits < settings.LUMA_CREDITS_PER_TASK


def key_credits():
    """Every stored key (open ones first) and the environment's, with their last known credits."""
    stored = [
        KeyCredits(key.label, key.masked, key.owner.get_username() if key.owner_id else "team", key.is_active,
                   key.last_credits, key.credits_checked_at, key.pk)
        for key in ApiKey.objects.select_related("owner").defer("secret_encrypted").order_by("-is_active", "label")
    ]
    secret = keys.environment_secret()
    if secret:
        counted = keys.environment_credits() or {}
        stored.append(KeyCredits(_environment_label(), f"••••{secret[-4:]}", "team", True, counted.get("credits"),
                                 counted.get("checked_at"), None))
    return stored


# --- The dashboard -----------------------------------------------------------------------------------


def ago(moment, now=None):
    """"just now", "5 minutes ago", "2 days, 3 hours ago": how long ago ``moment`` was."""
    now = now or timezone.now()
    return "just now" if now - moment < timedelta(minutes=1) else f"{timesince(moment, now)} ago"


# A cluster whose scheduler, or any job, was heard of within this long counts as running.
CLUSTER_SEEN_WITHIN = timedelta(minutes=3)
SWEEP_EVERY = timedelta(minutes=1)  # modify.schedules: the sweep runs every minute


def dashboard(now=None):
    """The admin home's figures (see the module's docstring)."""
    now = now or timezone.now()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    in_flight = dict(ModifyTask.objects.filter(state__in=LIVE).values_list("state").annotate(n=Count("pk")))
    credits = key_credits()
    return {
        "in_flight": [(State(state), in_flight.get(state, 0)) for state in LIVE],
        "in_flight_total": sum(in_flight.values()),
        "failed_today": ModifyTask.objects.filter(state=State.FAILED, finished_at__gte=today).count(),
        "today": today,
        "keys": credits,
        "low_keys": [key for key in credits if key.is_active and key.is_low],
        "low_credits": settings.LUMA_LOW_CREDITS,
        "queue": queue_health(now),
    }


def queue_health(now=None):
    """How the django-q2 queue is doing: jobs waiting, the last success and failure, and whether a
    cluster was heard of lately (its stats, where the broker shares them, else its scheduler moving
    the sweep's schedule, or a job finishing)."""
    now = now or timezone.now()
    last_success = Success.objects.aggregate(at=Max("stopped"))["at"]
    failures_ = Failure.objects.aggregate(at=Max("stopped"), day=Count("pk", filter=Q(stopped__gte=now - timedelta(days=1))))
    sweep = Schedule.objects.filter(name=SWEEP_SCHEDULE_NAME).values("next_run").first()
    try:
        broker = get_broker()
        queued = {"waiting": broker.queue_size(), "taken": broker.lock_size()}  # taken: known to the ORM broker only
    except Exception:  # a broker that cannot be reached: the figures below still say something
        queued = {"waiting": None, "taken": None}
    try:
        clusters = Stat.get_all()
    except Exception:  # a broker that cannot be reached: the figures below still say something
        clusters = []
    heard = [moment for moment in (last_success, failures_["at"]) if moment]
    if sweep and sweep["next_run"] and sweep["next_run"] > now:
        # Only a running scheduler moves the sweep's next run into the future: it ran the
        # sweep a minute before that (a new schedule's next run is the moment it was made).
        heard.append(sweep["next_run"] - SWEEP_EVERY)
    last_heard = max(heard) if heard else None
    when = {name: ago(moment, now) if moment else None for name, moment in
            [("last_success", last_success), ("last_failure", failures_["at"]), ("last_heard", last_heard)]}
    return {
        "broker": "the database" if Conf.ORM else "Redis" if settings.REDIS_URL else "another broker",
        "waiting": queued["waiting"],
        "taken": queued["taken"],
        "last_success": when["last_success"],
        "last_failure": when["last_failure"],
        "failures_last_day": failures_["day"],
        "clusters": len(clusters),
        "last_heard": when["last_heard"],
        "cluster_running": bool(clusters) or (last_heard is not None and now - last_heard <= CLUSTER_SEEN_WITHIN),
        "sweep_scheduled": sweep is not None,
    }
