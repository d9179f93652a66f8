"""The audit list and its CSV export: the task event log and the team's audit events, as one story.

Two tables tell what happened: ``modify.TaskEvent`` (every step of every
task) and ``team.AuditEvent`` (keys, quotas, invitations, staff actions).
Staff read them as one list, newest first, filtered by member, task, kind
and date.

The list pages by keyset, never by OFFSET, so the four-hundredth page costs
what the first does: a page is the rows older than a cursor (the last row's
time, table and id). Each table gives its next ``PAGE_SIZE + 1`` rows in the
same order (time, then id, newest first); ``heapq.merge`` interleaves them
and the page is cut at ``PAGE_SIZE``. Rows of the two tables at the same
instant are ordered by table name, so the order is total and a cursor never
repeats or skips a row. The CSV streams the same merge over iterators.

Each table is read in one query that joins in what a row shows (the task,
its owner and key, the actor): plain values, not model instances, so the
query count is constant, a 100,000-line CSV builds no models, and a
template cannot start a query per row. No row carries a secret: a key is
its label and its last four characters (``ApiKey.masked``); details were
redacted when they were written.
"""

import csv
import heapq
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.db.models.functions import Left
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from modify.models import ApiKey, TaskEvent
from modify.models.task_event import SUMMARIES
from modify.states import TRANSITIONS, Actor
from team.access import staff_required
from team.models import AuditEvent

PAGE_SIZE = 50
CSV_CHUNK = 2000
TASK, TEAM = "task", "team"  # the two sources; also their order among rows of the same instant
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

# What each kind means, in a few words: a task's as its timeline says it (and any other logged transition),
# the team's as below; a kind not listed (logged by newer code) reads as its own name.
TEAM_KINDS = {
    "invitation_sent": "Invitation sent",
    "invitation_accepted": "Invitation accepted",
    "invitation_revoked": "Invitation revoked",
    "password_changed": "Password changed",
    "key_added": "Key added",
    "key_revoked": "Key revoked",
    "key_low": "Key low on credits",
    "keys_rotated": "Encryption of keys rotated",
    "quota_changed": "Quota changed",
}


def kind_label(kind):
    return SUMMARIES.get(kind) or TEAM_KINDS.get(kind) or kind.replace("_", " ").capitalize()


TASK_KINDS = list(SUMMARIES) + [name for name, move in TRANSITIONS.items() if move.logged and name not in SUMMARIES]


# --- The rows ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One event of either table, as the list and the CSV show it."""

    when: datetime
    source: str  # TASK or TEAM
    pk: int
    kind: str
    actor: str  # Member, Staff, Provider, System
    user: str  # the username behind a member's or staff's action
    detail: str
    task_id: uuid.UUID | None = None
    task_prompt: str = ""
    member: str = ""  # the member it concerns: the task's owner, or the team event's member
    key: str = ""  # label and masked secret

    @property
    def when_iso(self):
        return timezone.localtime(self.when).isoformat()

    @property
    def when_shown(self):
        return f"{timezone.localtime(self.when):%-d %b %Y, %H:%M:%S}"

    @property
    def kind_label(self):
        return kind_label(self.kind)

    @property
    def order(self):
        """Where the row sits in the list (larger is newer): time, then table, then id."""
        return self.when, self.source, self.pk

    @property
    def cursor(self):
        """The row as an "Older" link names it, so the next page starts just after it."""
        return f"{(self.when - EPOCH) // MICROSECOND}.{self.source}.{self.pk}"


ACTORS = dict(Actor.choices)


@lru_cache(maxsize=256)
def _key(label, last4):
    """A key as everyone may see it: its label and ``ApiKey.masked`` (never the secret)."""
    return f"{label} {ApiKey(last4=last4).masked}" if label is not None else ""


# The columns a row needs, joined in the one query that reads the events (plain values: a page or a
# 100,000-line CSV builds no model instances).
TASK_COLUMNS = ("created_at", "pk", "kind", "actor", "actor_user__username", "detail", "task_id", "prompt",
                "task__owner__username", "task__api_key__label", "task__api_key__last4")
TEAM_COLUMNS = ("created_at", "pk", "kind", "actor", "actor_user__username", "detail", "member__username",
                "api_key__label", "api_key__last4")


def _task_row(values):
    when, pk, kind, actor, user, detail, task_id, prompt, owner, key_label, key_last4 = values
    return Row(when=when, source=TASK, pk=pk, kind=kind, actor=ACTORS.get(actor, actor), user=user or "",
               detail=detail, task_id=task_id, task_prompt=prompt, member=owner or "", key=_key(key_label, key_last4))


def _team_row(values):
    when, pk, kind, actor, user, detail, member, key_label, key_last4 = values
    return Row(when=when, source=TEAM, pk=pk, kind=kind, actor=ACTORS.get(actor, actor), user=user or "",
               detail=detail, member=member or "", key=_key(key_label, key_last4))


# --- The filters ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    when: datetime
    source: str
    pk: int

    @classmethod
    def parse(cls, text):
        micros, source, pk = text.split(".")
        if source not in (TASK, TEAM):
            raise ValueError(source)
        return cls(EPOCH + int(micros) * MICROSECOND, source, int(pk))

    def before(self, source):
        """The rows of ``source`` that come after this cursor in the list (older, or same time and lower)."""
        if source < self.source:  # at the cursor's instant, every row of this table comes after it
            return Q(created_at__lte=self.when)
        if source > self.source:
            return Q(created_at__lt=self.when)
        return Q(created_at__lt=self.when) | Q(created_at=self.when, pk__lt=self.pk)


UUID_IN = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)


def kind_choices():
    """The select's kinds: every task event kind, and every team kind known or logged so far."""
    logged = AuditEvent.objects.order_by().values_list("kind", flat=True).distinct()
    team = sorted(set(TEAM_KINDS) | set(logged), key=kind_label)
    return [("", "Any kind"),
            ("Task steps", [(kind, kind_label(kind)) for kind in TASK_KINDS]),
            ("Team account", [(kind, kind_label(kind)) for kind in team])]


class AuditFilter(forms.Form):
    """The filters, from the query string; every field may stay empty."""

    member = forms.CharField(required=False, max_length=150,
                             help_text="Events by them, about them, or on their tasks.")
    task = forms.CharField(required=False, max_length=200, label="Task",
                           help_text="Its id, or its page's address.")
    kind = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = kind_choices()

    def clean_member(self):
        name = self.cleaned_data["member"].strip()
        if not name:
            return None
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise forms.ValidationError(f"There is no member named “{name}”.")
        return user

    def clean_task(self):
        text = self.cleaned_data["task"].strip()
        if not text:
            return None
        found = UUID_IN.search(text)
        if not found:
            raise forms.ValidationError("A task id looks like 3f2c9e1a-…: copy it from the task's page address.")
        return uuid.UUID(found.group())

    def clean_before(self):
        text = self.cleaned_data["before"]
        if not text:
            return None
        try:
            return Cursor.parse(text)
        except (ValueError, OverflowError):
            raise forms.ValidationError("That “Older” link is broken: start again from the newest events.")

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "“To” is before “From”.")
        return data


def _start_of(day):
    return timezone.make_aware(datetime.combine(day, time.min))


def task_events(filters):
    """The task events the filters select, newest first, as ``TASK_COLUMNS`` (task, owner, key and actor joined in)."""
    events = TaskEvent.objects.order_by("-created_at", "-pk")
    if filters.get("member"):
        events = events.filter(Q(actor_user=filters["member"]) | Q(task__owner=filters["member"]))
    if filters.get("task"):
        events = events.filter(task_id=filters["task"])
    return _common(events, filters, TASK).annotate(prompt=Left("task__prompt", 80)).values_list(*TASK_COLUMNS)


def team_events(filters):
    """The team's audit events the filters select, newest first, as ``TEAM_COLUMNS``; none when a task is asked for."""
    events = AuditEvent.objects.order_by("-created_at", "-pk")
    if filters.get("task"):
        return events.none().values_list(*TEAM_COLUMNS)
    if filters.get("member"):
        who = filters["member"]
        events = events.filter(Q(actor_user=who) | Q(member=who) | Q(api_key__owner=who))
    return _common(events, filters, TEAM).values_list(*TEAM_COLUMNS)


def _common(events, filters, source):
    if filters.get("kind"):
        events = events.filter(kind=filters["kind"])
    if filters.get("since"):
        events = events.filter(created_at__gte=_start_of(filters["since"]))
    if filters.get("until"):
        events = events.filter(created_at__lt=_start_of(filters["until"] + timedelta(days=1)))
    if filters.get("before"):
        events = events.filter(filters["before"].before(source))
    return events


def merged(task_rows, team_rows):
    """Both tables' rows, each already newest first, as one list newest first."""
    return heapq.merge(task_rows, team_rows, key=lambda row: row.order, reverse=True)


def page(filters, size=PAGE_SIZE):
    """``(rows, more)``: the first ``size`` rows the filters select (older than their cursor), and
    whether older rows remain. Two queries, whatever the page."""
    task_rows = [_task_row(e) for e in task_events(filters)[: size + 1]]
    team_rows = [_team_row(e) for e in team_events(filters)[: size + 1]]
    rows = list(merged(task_rows, team_rows))
    return rows[:size], len(rows) > size


def every_row(filters):
    """Every row the filters select (the cursor aside), newest first, read in chunks."""
    filters = {**filters, "before": None}
    return merged((_task_row(e) for e in task_events(filters).iterator(chunk_size=CSV_CHUNK)),
                  (_team_row(e) for e in team_events(filters).iterator(chunk_size=CSV_CHUNK)))


# --- CSV ----------------------------------------------------------------------------------------------------

CSV_HEADER = ["time", "source", "kind", "actor", "user", "task", "member", "key", "detail"]
FORMULA_START = "=+-@\t\r"


def _cell(value):
    """A spreadsheet must not run a cell as a formula (details can quote provider or member text)."""
    return f"'{value}" if value and value[0] in FORMULA_START else value


def csv_lines(rows):
    """The CSV, line by line, for a streaming response."""
    class Line:
        def write(self, text):
            return text

    writer = csv.writer(Line())
    yield writer.writerow(CSV_HEADER)
    for row in rows:
        yield writer.writerow([row.when_iso, row.source, row.kind, row.actor, _cell(row.user), row.task_id or "",
                               _cell(row.member), _cell(row.key), _cell(row.detail)])


# --- Views ----------------------------------------------------------------------------------------------

def _url(request, name, **changes):
    """The URL named ``name`` with the current query string and ``changes`` (None drops a parameter)."""
    query = request.GET.copy()
    for param, value in changes.items():
        query.pop(param, None)
        if value is not None:
            query[param] = value
    query = query.urlencode()
    return f"{reverse(name)}?{query}" if query else reverse(name)


@staff_required
@require_GET
def audit_list(request):
    form = AuditFilter(request.GET)
    rows, more = page(form.cleaned_data) if form.is_valid() else ([], False)
    context = {
        "form": form,
        "rows": rows,
        "older_url": _url(request, "audit", before=rows[-1].cursor) if more else None,
        "newest_url": _url(request, "audit", before=None) if request.GET.get("before") else None,
        "csv_url": _url(request, "audit-csv", before=None),
        "usernames": get_user_model().objects.order_by("username").values_list("username", flat=True),
    }
    template = "team/audit.html#audit" if request.htmx else "team/audit.html"
    return render(request, template, context)


@staff_required
@require_GET
def audit_csv(request):
    form = AuditFilter(request.GET)
    if not form.is_valid():
        problems = [f"{name}: {error}" for name, errors in form.errors.items() for error in errors]
        return HttpResponse("\n".join(problems) + "\n", status=400, content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(csv_lines(every_row(form.cleaned_data)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.localdate():%Y-%m-%d}.csv"'
    return response

