"""A modification task, and the one helper that moves it.

Every write of a lifecycle field (``modify.states.LIFECYCLE_FIELDS``) goes
through ``ModifyTask.transition``: a conditional UPDATE on the state this
instance read (plus an optional extra condition, such as "the poll is due"),
whose row count says whether this caller won, and the ``TaskEvent`` row in
the same transaction. ``save()`` refuses to write those fields itself, so a
change made any other way fails loudly instead of racing.
"""

import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from modify.downloads import safe_url
from modify.models.api_key import ApiKey
from modify.models.querysets import ModifyTaskQuerySet
from modify.models.task_event import TaskEvent
from modify.states import LIFECYCLE_FIELDS, STEPS, TERMINAL, TRANSITIONS, Actor, State


class LifecycleError(Exception):
    """A lifecycle field was written outside ``ModifyTask.transition``."""


def _source_path(task, filename):
    return f"sources/{task.created_at:%Y/%m}/{task.id}/{filename}"


def _result_path(task, filename):
    return f"results/{task.created_at:%Y/%m}/{task.id}/{filename}"


def _new_callback_token():
    return secrets.token_urlsafe(32)


# Lifecycle fields a new task is created with (the key the member chose; the rest keep their defaults).
_SET_AT_CREATION = {"updated_at", "api_key", "api_key_id"}


class ModifyTask(models.Model):
    """One request to turn a source video into a new one, and its whole life (see ``modify.states``)."""

    State = State

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        URL = "url", "URL"


    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="modify_tasks")
    # PROTECT: a task polls with the key that created it; retire keys by deactivating them.
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks")
    remix_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="remixes")
    retried_as = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retry_of", editable=False
    )

    prompt = models.TextField()
    watermark = models.CharField(max_length=64, blank=True)
    source_kind = models.CharField(max_length=8, choices=Source.choices)
    source_file = models.FileField(upload_to=_source_path, max_length=300, blank=True)
    source_url = models.URLField(max_length=2000, blank=True)
    source_name = models.CharField(max_length=255, blank=True)
    source_duration = models.FloatField(null=True, blank=True)
    is_sandbox = models.BooleanField(default=False, help_text="Run against the built-in sandbox provider.")

    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    failed_stage = models.CharField(max_length=16, choices=State.choices, blank=True)
    error_code = models.IntegerField(null=True, blank=True)
    error_message = models.TextField(blank=True, help_text="Why it failed, for the member.")
    failure_key = models.CharField(max_length=32, blank=True, help_text="Which sentence of modify.failures it failed with.")
    status_note = models.CharField(max_length=500, blank=True, help_text="What a live task is waiting for, for the member.")

    provider_task_id = models.CharField(max_length=64, blank=True, db_index=True)
    provider_video_url = models.URLField(max_length=2000, blank=True)
    submit_attempts = models.PositiveSmallIntegerField(default=0)
    credits = models.PositiveIntegerField(null=True, blank=True, help_text="Credits it costs, counted once generate went out.")
    next_submit_at = models.DateTimeField(null=True, blank=True, help_text="A queued retry is not sent before this.")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When the sweep last enqueued its sending.")
    callback_deadline = models.DateTimeField(null=True, blank=True, help_text="An unconfirmed task fails after this.")
    poll_count = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    callback_token = models.CharField(max_length=64, unique=True, default=_new_callback_token, editable=False)
    callback_received_at = models.DateTimeField(null=True, blank=True)

    result_url = models.URLField(max_length=2000, blank=True)
    result_file = models.FileField(upload_to=_result_path, max_length=300, blank=True)
    poster = models.FileField(upload_to=_result_path, max_length=300, blank=True)
    result_duration = models.FloatField(null=True, blank=True)
    result_width = models.PositiveIntegerField(null=True, blank=True)
    result_height = models.PositiveIntegerField(null=True, blank=True)
    result_size = models.PositiveBigIntegerField(null=True, blank=True)
    shared = models.BooleanField(default=True, help_text="Shown to the whole team in the gallery.")

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitting_at = models.DateTimeField(null=True, blank=True)
    generating_at = models.DateTimeField(null=True, blank=True)
    archiving_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now, help_text="When it entered its current state.")

    objects = ModifyTaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "next_poll_at"]), models.Index(fields=["shared", "state", "-finished_at"])]

    def __str__(self):
        return f"{self.prompt[:40]} ({self.get_state_display()})"

    # --- Reading -------------------------------------------------------------------
    @property
    def is_terminal(self):
        return self.state in TERMINAL

    @property
    def is_failed(self):
        return self.state == State.FAILED

    @property
    def is_succeeded(self):
        return self.state == State.SUCCEEDED

    @property
    def can_retry(self):
        """Failed, and not tried again yet (a retry is a new task)."""
        return self.is_failed and not self.retried_as_id

    @property
    def failed_during(self):
        """The step a failed task stopped in, as the progress strip names it."""
        return (State.SUBMITTING if self.failed_stage == State.UNCONFIRMED else State(self.failed_stage)).label

    @property
    def steps(self):
        """``(label, "done" | "current" | "")`` for the progress strip of a live task."""
        current = State.SUBMITTING if self.state == State.UNCONFIRMED else self.state
        order = list(STEPS)
        reached = order.index(current) if current in order else len(order)
        return [(step.label, "done" if i < reached else "current" if i == reached else "") for i, step in enumerate(order)]

    @property
    def source_url_shown(self):
        """The source URL without credentials, query or fragment: signed URLs carry secrets there."""
        return safe_url(self.source_url) if self.source_url else ""

    @property
    def elapsed(self):
        return (self.finished_at or timezone.now()) - self.created_at

    def timeline(self):
        """``(moment, summary, times)`` from the event log; repeated identical polls count as one line."""
        lines = []
        for event in self.events.select_related("actor_user"):
            if lines and event.kind == "poll" and lines[-1][3] == ("poll", event.detail):
                moment, summary, times, key = lines[-1]
                lines[-1] = (moment, summary, times + 1, key)
            else:
                lines.append((event.created_at, event.summary, 1, (event.kind, event.detail)))
        return [line[:3] for line in lines]

    # --- Guard -----------------------------------------------------------------------
    @classmethod
    def from_db(cls, db, field_names, values):
        task = super().from_db(db, field_names, values)
        task._remember_lifecycle()
        return task

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        reloaded = None if fields is None else {self._meta.get_field(name).attname for name in fields}
        self._remember_lifecycle(reloaded)

    def _remember_lifecycle(self, only=None):
        """Note the lifecycle fields as stored (all, or those in ``only`` just reloaded)."""
        loaded = self.__dict__
        stored = {name: loaded[name] for name in LIFECYCLE_FIELDS if name in loaded and (only is None or name in only)}
        self._stored_lifecycle = stored if only is None else {**getattr(self, "_stored_lifecycle", {}), **stored}

    def save(self, *args, **kwargs):
        if self._state.adding:
            changed = [f.attname for f in self._meta.concrete_fields
                       if f.attname in LIFECYCLE_FIELDS - _SET_AT_CREATION and getattr(self, f.attname) != f.get_default()]
        else:
            stored = getattr(self, "_stored_lifecycle", {})
            changed = [name for name, value in stored.items() if self.__dict__.get(name) != value]
        if changed:
            raise LifecycleError(f"{', '.join(sorted(changed))} can only change through ModifyTask.transition().")
        if not self._state.adding:
            # Write only plain data: a stale instance must not put back what a transition changed meanwhile.
            update_fields = kwargs.get("update_fields")
            if update_fields is not None and set(update_fields) & LIFECYCLE_FIELDS:
                raise LifecycleError("save(update_fields=...) cannot name lifecycle fields; use ModifyTask.transition().")
            kwargs["update_fields"] = update_fields if update_fields is not None else [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.attname not in LIFECYCLE_FIELDS]
        super().save(*args, **kwargs)
        self._remember_lifecycle()

    # --- The helper ------------------------------------------------------------------------------
    def transition(self, name, *, actor=Actor.SYSTEM, by=None, detail="", when=None, **changes):
        """Move along the row ``name`` of ``modify.states.TRANSITIONS`` from the state this
        instance holds; True if this caller won (and the instance is refreshed), False if
        the task had moved on or ``when`` (a Q) did not hold, and then nothing changed.

        The event row is written in the same transaction, by ``actor`` (``by``: the
        member or staff user), with a short ``detail``.
        """
        move = TRANSITIONS[name]
        if self.state not in move.sources:
            return False
        source, target = self.state, move.target or self.state
        values = {"state": target, **changes}
        if target != source:
            values["updated_at"] = timezone.now()
            values.setdefault("status_note", "")  # a note speaks of the state it was written in
        with transaction.atomic():
            won = ModifyTask.objects.filter(when or Q(), pk=self.pk, state=source).update(**values)
            if won and move.logged:
                TaskEvent.objects.create(task_id=self.pk, kind=name, from_state=source, to_state=target,
                                         actor=actor, actor_user=by, detail=detail)
        if won:
            self.refresh_from_db()
        return bool(won)

    def record(self, kind, *, actor, by=None, detail="", from_state=None):
        """Log something that happened to this task without moving it (a callback, a poll's answer, a retry)."""
        return TaskEvent.objects.create(task_id=self.pk, kind=kind, from_state=self.state if from_state is None else from_state,
                                        to_state=self.state, actor=actor, actor_user=by, detail=detail)

    def create(self, *, actor, by=None, detail=""):
        """Insert this new task with its "created" event."""
        with transaction.atomic():
            self.save(force_insert=True)
            self.record("created", actor=actor, by=by, detail=detail, from_state="")

    # --- The named moves ---------------------------------------------------------------------
    def claim(self):
        """queued → submitting, counting the attempt; only one worker wins, and not before a retry is due."""
        now = timezone.now()
        return self.transition(
            "claim", when=Q(next_submit_at__isnull=True) | Q(next_submit_at__lte=now),
            detail=f"attempt {self.submit_attempts + 1}", submitting_at=now,
            submit_attempts=F("submit_attempts") + 1, next_submit_at=None,
        )

    def keep_source(self, source_file, duration):
        """Keep a fetched URL source (a retried sending will not fetch it again)."""
        return self.transition("source_kept", detail=f"{duration:.1f} s", source_file=source_file, source_duration=duration)

    def retry_later(self, delay_seconds, reason, note):
        """submitting or unconfirmed → queued after an error that may pass (and surely created
        nothing), due again after ``delay_seconds``; ``note`` tells the member what it waits for."""
        return self.transition(
            "retry_later", detail=reason, next_submit_at=timezone.now() + timedelta(seconds=delay_seconds),
            callback_deadline=None, status_note=note,
        )

    def wait_for_slot(self, delay_seconds, reason, note, video_url=""):
        """submitting → queued without using up the attempt: the provider's limit has no slot free
        now (``modify.limiter``), so nothing was sent; due again after ``delay_seconds``. An
        uploaded source's ``video_url`` is kept, so the next attempt does not upload it again."""
        kept = {"provider_video_url": video_url} if video_url else {}
        return self.transition(
            "wait_for_slot", detail=reason, next_submit_at=timezone.now() + timedelta(seconds=delay_seconds),
            submit_attempts=F("submit_attempts") - 1, status_note=note, **kept,
        )

    def generate_sent(self, deadline, api_key, video_url):
        """submitting → unconfirmed, just before generate goes out: from here on the provider may
        have created (and billed) the task, so it is never sent blindly again. ``deadline``: when
        to give up on hearing its id, should the answer and the callback never come."""
        return self.transition("generate_sent", callback_deadline=deadline, api_key=api_key, provider_video_url=video_url)

    def accepted(self, provider_task_id):
        """unconfirmed → generating: generate answered with the provider's task id."""
        return self.transition("accepted", detail=provider_task_id, **self._generating(provider_task_id))

    def no_answer(self, note):
        """Stay unconfirmed: generate got no answer; its callback will name the task."""
        return self.transition("no_answer", status_note=note)

    def adopt(self, provider_task_id):
        """queued, submitting or unconfirmed → generating: a verified callback named the provider task
        before generate answered (or when it never will); polled at once to confirm."""
        return self.transition("adopted", actor=Actor.PROVIDER, detail=provider_task_id,
                               **self._generating(provider_task_id, first_poll_seconds=0))

    def _generating(self, provider_task_id, first_poll_seconds=None):
        now = timezone.now()
        first_poll = settings.LUMA_POLL_FIRST_SECONDS if first_poll_seconds is None else first_poll_seconds
        # The provider created the task: it costs its credits now, whatever comes of it.
        cost = settings.SANDBOX_TASK_COST if self.is_sandbox else settings.LUMA_CREDITS_PER_TASK
        return {"provider_task_id": provider_task_id, "generating_at": now, "credits": cost,
                "next_poll_at": now + timedelta(seconds=first_poll), "next_submit_at": None, "callback_deadline": None}

    def requeue(self, now, reason):
        """Stay queued, marked as enqueued at ``now``: of two overlapping sweeps, one enqueues."""
        return self.transition("requeue", detail=reason, when=Q(enqueued_at=self.enqueued_at), enqueued_at=now)

    def book_poll(self, next_poll_at, due_only=False):
        """Stay generating; book this poll and the next one. ``due_only``: only if it is due."""
        now = timezone.now()
        due = Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now) if due_only else None
        return self.transition("book_poll", when=due, poll_count=F("poll_count") + 1, last_polled_at=now,
                               next_poll_at=next_poll_at)

    def result_found(self, result_url):
        """generating → archiving: only one finalizer downloads the result."""
        first_archiving = Coalesce(F("archiving_at"), Value(timezone.now(), output_field=models.DateTimeField()))
        return self.transition("result_found", result_url=result_url, archiving_at=first_archiving)

    def resume_archiving(self, reason):
        """archiving → generating, due for a poll now: the download failed for now, or the worker
        archiving it stopped; the poll confirms and archives again, until the maximum wait
        counted from the first archiving."""
        return self.transition("resume_archiving", detail=reason, next_poll_at=timezone.now())

    def archived(self, **result):
        """archiving → succeeded with the archived file, poster and their facts."""
        return self.transition("archived", finished_at=timezone.now(), **result)

    def fail(self, message, code=None, *, actor=Actor.SYSTEM, by=None, refunded=False):
        """Any live state → failed, remembering the stage it failed in and why (``message``: a
        ``modify.failures`` sentence, whose key is kept for the stats). ``refunded``: the provider
        reported the generation failed, and gives its credits back."""
        charged = {"credits": None} if refunded else {}
        return self.transition("fail", actor=actor, by=by, detail=message, failed_stage=self.state, error_code=code,
                               error_message=message, failure_key=getattr(message, "key", ""),
                               finished_at=timezone.now(), callback_deadline=None, **charged)

    def rearchive(self, by):
        """failed → archiving, by staff: a result that failed to archive is fetched again (the
        archiving job, enqueued by the caller, asks for a fresh link if the old one expired)."""
        archivable = Q(failed_stage=State.ARCHIVING) & ~Q(result_url="")
        return self.transition("rearchive", actor=Actor.STAFF, by=by, when=archivable, failed_stage="", error_code=None,
                               error_message="", failure_key="", finished_at=None, archiving_at=timezone.now())

    def note_callback(self, provider_task_id):
        """Note the first verified callback for ``provider_task_id``, with its event; False for a
        duplicate, or when the task turned out to be another provider task (the caller looks)."""
        names_it = Q(provider_task_id="") | Q(provider_task_id=provider_task_id)
        return self.transition("callback_accepted", actor=Actor.PROVIDER, detail="first delivery",
                               when=Q(callback_received_at__isnull=True) & names_it, callback_received_at=timezone.now())

    # --- Member actions (no lifecycle field) -------------------------------------------------
    def set_shared(self, shared, by, actor=Actor.MEMBER):
        with transaction.atomic():
            if ModifyTask.objects.filter(pk=self.pk).exclude(shared=shared).update(shared=shared):
                self.record("shared" if shared else "unshared", actor=actor, by=by)
        self.shared = shared

    def link_retry(self, retry, by, actor=Actor.MEMBER):
        """Remember ``retry`` as this failed task's new attempt; False if another request did first."""
        won = ModifyTask.objects.filter(pk=self.pk, retried_as__isnull=True).update(retried_as=retry)
        if won:
            self.retried_as = retry
            self.record("retried", actor=actor, by=by, detail=f"as task {retry.pk}")
        return bool(won)
