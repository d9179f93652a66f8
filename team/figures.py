"""The team's figures for a period: what the stats page draws and the CSV exports.

Every figure counts the tasks *created* in the period (whole days in the
site's time zone, both ends included), so the figures of one period add up:
a task is counted once, on the day it was made, whatever happened to it
later. Each figure is one aggregate query (``GROUP BY`` day, member and key,
or failure), and the database ranks the durations itself and sends only the
few around each percentile, so the number of queries, and of rows read back,
stays the same with 5 tasks or 50,000.
On SQLite, Django computes dates and time differences by calling Python
once per row; ``LocalDate`` and ``SecondsBetween`` let the database do it.
"""

import math
import string
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import NotSupportedError
from django.db.models import Count, F, FloatField, Func, Q, Sum, Window
from django.db.models.functions import RowNumber, TruncDate
from django.utils import timezone

from modify.failures import SENTENCES
from modify.models import ModifyTask
from modify.states import LIVE, State

# What a task without an ApiKey row spent: the key from the environment, or the sandbox's.
ENVIRONMENT_KEY = "Environment/sandbox key"
# A failure without a sentence key (failed before keys were kept, or with a free-form message).
OTHER_REASON = "other"
TOP_REASONS = 10


@dataclass(frozen=True)
class Period:
    """Whole days from ``start`` to ``end``, both included, in the site's time zone."""

    start: date
    end: date

    @classmethod
    def last(cls, days, today=None):
        """The ``days`` days that end today (today included)."""
        today = today or timezone.localdate()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def length(self):
        return (self.end - self.start).days + 1

    @property
    def days(self):
        return [self.start + timedelta(days=n) for n in range(self.length)]

    @property
    def bounds(self):
        """``[first moment, first moment after)``: aware datetimes, for an indexed range on ``created_at``."""
        zone = timezone.get_current_timezone()
        first = datetime.combine(self.start, time.min, tzinfo=zone)
        after = datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=zone)
        return first, after

    @property
    def fixed_offset(self):
        """The zone's UTC offset in seconds if it is the same all through the period (no DST change), else None."""
        zone = timezone.get_current_timezone()
        offsets = {datetime.combine(day, time.min, tzinfo=zone).utcoffset()
                   for day in [*self.days, self.end + timedelta(days=1)]}
        return int(offsets.pop().total_seconds()) if len(offsets) == 1 else None

    def tasks(self):
        first, after = self.bounds
        return ModifyTask.objects.filter(created_at__gte=first, created_at__lt=after).order_by()


@dataclass(frozen=True)
class Day:
    day: date
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0

    @property
    def total(self):
        return self.succeeded + self.failed + self.in_flight


@dataclass(frozen=True)
class Spender:
    """Credits spent by one member or through one key; ``tasks`` counts the tasks that cost credits."""

    name: str
    tasks: int
    credits: int
    detail: str = ""  # for a key: whose it is ("team", a member's name, or "environment")


@dataclass(frozen=True)
class Reason:
    key: str  # a modify.failures key, or "" for other
    text: str  # the sentence with its facts left out ("…")
    tasks: int


@dataclass(frozen=True)
class Durations:
    """Seconds from submit to result of the ``count`` succeeded tasks: their median and 95th percentile."""

    count: int = 0
    median: float | None = None
    p95: float | None = None


@dataclass
class Figures:
    period: Period
    days: list = field(default_factory=list)
    durations: Durations = Durations()
    members: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    reasons: list = field(default_factory=list)

    @property
    def succeeded(self):
        return sum(day.succeeded for day in self.days)

    @property
    def failed(self):
        return sum(day.failed for day in self.days)

    @property
    def in_flight(self):
        return sum(day.in_flight for day in self.days)

    @property
    def total(self):
        return self.succeeded + self.failed + self.in_flight

    @property
    def success_rate(self):
        """Succeeded out of finished (succeeded or failed), in percent; None when none finished.
        Tasks still in flight are left out: they have not succeeded or failed yet."""
        finished = self.succeeded + self.failed
        return 100 * self.succeeded / finished if finished else None

    @property
    def median(self):
        return self.durations.median

    @property
    def p95(self):
        return self.durations.p95

    @property
    def credits(self):
        return sum(member.credits for member in self.members)


class LocalDate(TruncDate):
    """``TruncDate`` (the day in the site's time zone), computed by SQLite itself when the zone's
    offset is fixed over the period: ``date(created_at, '+3600 seconds')`` instead of a Python call per row."""

    def __init__(self, expression, fixed_offset=None, **extra):
        super().__init__(expression, **extra)
        self.fixed_offset = fixed_offset

    def as_sqlite(self, compiler, connection, **extra_context):
        if self.fixed_offset is None:
            return self.as_sql(compiler, connection, **extra_context)
        sql, params = compiler.compile(self.lhs)
        return f"date({sql}, %s)", (*params, f"{self.fixed_offset:+d} seconds")


class SecondsBetween(Func):
    """Seconds from ``start`` to ``end`` (two datetime columns), as a float the database computes
    (on the two databases the app runs on: SQLite and PostgreSQL)."""

    arity = 2
    output_field = FloatField()

    def __init__(self, start, end, **extra):
        super().__init__(end, start, **extra)

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"SecondsBetween speaks SQLite and PostgreSQL, not {connection.vendor}.")

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="((julianday(%(expressions)s)) * 86400.0)",
                              arg_joiner=") - julianday(", **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="EXTRACT(EPOCH FROM (%(expressions)s))::double precision",
                              arg_joiner=" - ", **extra_context)


def for_period(period):
    """Every figure of ``period``: four queries, whatever the number of tasks."""
    members, keys = credits_spent(period)
    return Figures(period, days=tasks_per_day(period), durations=durations(period), members=members, keys=keys,
                   reasons=failure_reasons(period))


def tasks_per_day(period):
    """One row per day of the period (days without tasks too), by outcome so far."""
    rows = (period.tasks().annotate(day=LocalDate("created_at", fixed_offset=period.fixed_offset)).values("day")
            .annotate(succeeded=Count("pk", filter=Q(state=State.SUCCEEDED)),
                      failed=Count("pk", filter=Q(state=State.FAILED)),
                      in_flight=Count("pk", filter=Q(state__in=LIVE))))
    counted = {row.pop("day"): row for row in rows}
    return [Day(day, **counted.get(day, {})) for day in period.days]


def durations(period):
    """Seconds from submit (``submitting_at``) to result (``finished_at``) of the succeeded tasks, as
    ``Durations``. The database ranks them (window functions) and sends back only the tasks next to
    each percentile's rank, at most four rows, however many tasks there are."""
    succeeded = period.tasks().filter(state=State.SUCCEEDED, submitting_at__isnull=False, finished_at__isnull=False)
    ranked = (succeeded.annotate(took=SecondsBetween(F("submitting_at"), F("finished_at")))
              .annotate(rank=Window(RowNumber(), order_by=F("took").asc()), count=Window(Count("pk"))))
    near = Q()
    for q in (50, 95):
        position = (F("count") - 1) * (q / 100)  # zero-based, as in ``percentile``
        near |= Q(rank__gt=position, rank__lt=position + 2)  # the ranks just below and above it
    rows = list(ranked.filter(near).values_list("rank", "took", "count"))
    if not rows:
        return Durations()
    count = rows[0][2]
    # To the millisecond, no less than zero: SQLite's julianday is not finer, and clocks may disagree.
    took = {rank - 1: max(round(seconds, 3), 0.0) for rank, seconds, _count in rows}
    return Durations(count, _interpolated(took, count, 50), _interpolated(took, count, 95))


def percentile(values, q):
    """The ``q``-th percentile of sorted ``values``, interpolated between the two nearest ranks (as
    numpy's default and PostgreSQL's ``percentile_cont``: the median of 1, 2, 3, 4 is 2.5); None if empty."""
    return _interpolated(dict(enumerate(values)), len(values), q) if values else None


def _interpolated(value_at, count, q):
    """``percentile`` from ``value_at`` (zero-based rank → value), which holds at least the two ranks around it."""
    position = (count - 1) * (q / 100)
    low, high = math.floor(position), math.ceil(position)
    return value_at[low] + (value_at[high] - value_at[low]) * (position - low)


def credits_spent(period):
    """``(per member, per key)``: the credits spent, most first, from one query grouped by member and key
    (at most members × keys rows). Members who spent nothing are left out; a task without a key spent
    the environment's (or the sandbox's)."""
    rows = (period.tasks().filter(credits__isnull=False)
            .values("owner_id", "owner__username", "api_key_id", "api_key__label", "api_key__last4",
                    "api_key__owner__username")
            .annotate(tasks=Count("pk"), spent=Sum("credits")))
    members, keys = {}, {}
    for row in rows:
        _add(members, row["owner_id"], row, row["owner__username"])
        _add(keys, row["api_key_id"], row, _key_name(row), _key_owner(row))
    return _most_first(members), _most_first(keys)


def _add(totals, identity, row, name, whose=""):
    counted = totals.setdefault(identity, [name, whose, 0, 0])
    counted[2] += row["tasks"]
    counted[3] += row["spent"]


def _most_first(totals):
    """Most credits first, then by name: the same order on every database (they sort NULLs apart)."""
    spenders = (Spender(name, tasks, credits, detail=whose) for name, whose, tasks, credits in totals.values())
    return sorted(spenders, key=lambda spender: (-spender.credits, spender.name, spender.detail))


def _key_name(row):
    """A key's label and masked ending (never more of the secret)."""
    if row["api_key_id"] is None:
        return ENVIRONMENT_KEY
    return f"{row['api_key__label']} (••••{row['api_key__last4']})"


def _key_owner(row):
    if row["api_key_id"] is None:
        return "environment"
    return row["api_key__owner__username"] or "team"


def failure_reasons(period):
    """The most frequent failures, by the ``modify.failures`` sentence they failed with."""
    rows = (period.tasks().filter(state=State.FAILED).values("failure_key").annotate(tasks=Count("pk"))
            .order_by("-tasks", "failure_key")[:TOP_REASONS])
    return [Reason(row["failure_key"], reason_text(row["failure_key"]), row["tasks"]) for row in rows]


def reason_text(key):
    """The sentence ``key`` with each ``{fact}`` shown as "…": the facts differ from task to task."""
    if not key:
        return OTHER_REASON
    if key not in SENTENCES:
        return f"{OTHER_REASON} ({key})"
    return "".join(text + ("…" if name is not None else "")
                   for text, name, _spec, _conversion in string.Formatter().parse(SENTENCES[key]))
