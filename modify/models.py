"""Models: provider API keys and modification tasks.

Every state change of a task goes through one transition method, and each
is a conditional UPDATE (``filter(pk=..., state=expected).update(...)``)
whose row count says whether this caller won: two workers, a callback and a
poll racing on the same task change it once, whatever the database.
"""

import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from modify import crypto
from modify.downloads import safe_url


class ApiKey(models.Model):
    """A provider API key, personal (owner set) or team-wide (owner empty).

    The secret is encrypted at rest; only its last four characters are ever
    shown, in the admin or anywhere else.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="Leave empty for a team-wide key, used by everyone without a key of their own.",
    )
    label = models.CharField(max_length=100)
    secret_encrypted = models.TextField(editable=False)
    last4 = models.CharField("ends with", max_length=4, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["label"]

    def __str__(self):
        return f"{self.label} (…{self.last4})"

    @property
    def masked(self):
        return f"••••{self.last4}"

    @property
    def secret(self):
        return crypto.decrypt(self.secret_encrypted)

    @secret.setter
    def secret(self, plaintext):
        plaintext = plaintext.strip()
        self.secret_encrypted = crypto.encrypt(plaintext)
        self.last4 = plaintext[-4:]

    @classmethod
    def for_user(cls, user):
        """The key a user's tasks spend: their own active key, else the team's."""
        active = cls.objects.filter(is_active=True).order_by("-created_at")
        return active.filter(owner=user).first() or active.filter(owner__isnull=True).first()


class ModifyTaskQuerySet(models.QuerySet):
    def active(self):
        return self.exclude(state__in=ModifyTask.TERMINAL_STATES)

    def in_gallery(self):
        return self.filter(state=ModifyTask.State.SUCCEEDED, shared=True)

    def due_for_poll(self, now=None):
        now = now or timezone.now()
        return self.filter(state=ModifyTask.State.GENERATING).filter(
            Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now)
        )


def _source_path(task, filename):
    return f"sources/{task.created_at:%Y/%m}/{task.id}/{filename}"


def _result_path(task, filename):
    return f"results/{task.created_at:%Y/%m}/{task.id}/{filename}"


def _new_callback_token():
    return secrets.token_urlsafe(32)


class ModifyTask(models.Model):
    """One request to turn a source video into a new one, and its whole life.

    ``queued → submitting → generating → archiving → succeeded``, or
    ``failed`` from any of them with the stage, the provider's code and a
    message a person can act on.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SUBMITTING = "submitting", "Submitting"
        GENERATING = "generating", "Generating"
        ARCHIVING = "archiving", "Archiving"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        URL = "url", "URL"

    TERMINAL_STATES = (State.SUCCEEDED, State.FAILED)

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
    error_message = models.TextField(blank=True)

    provider_task_id = models.CharField(max_length=64, blank=True, db_index=True)
    provider_video_url = models.URLField(max_length=2000, blank=True)
    submit_attempts = models.PositiveSmallIntegerField(default=0)
    next_submit_at = models.DateTimeField(null=True, blank=True)
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
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ModifyTaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "next_poll_at"]), models.Index(fields=["shared", "state", "-finished_at"])]

    def __str__(self):
        return f"{self.prompt[:40]} ({self.get_state_display()})"

    # --- Reading -------------------------------------------------------------
    STEPS = [(state.value, state.label) for state in (State.QUEUED, State.SUBMITTING, State.GENERATING, State.ARCHIVING)]

    @property
    def steps_done(self):
        """The in-flight steps already behind this task (for the progress strip)."""
        order = [step for step, _ in self.STEPS]
        return order[: order.index(self.state)] if self.state in order else order

    @property
    def timeline(self):
        """``(label, moment)`` for each step that happened, for the detail page."""
        moments = [
            ("Queued", self.created_at),
            ("Submitted to the provider", self.submitting_at),
            ("Provider generating", self.generating_at),
            ("Archiving the result", self.archiving_at),
            ("Failed" if self.state == self.State.FAILED else "Done", self.finished_at),
        ]
        return [(label, moment) for label, moment in moments if moment]

    @property
    def source_url_shown(self):
        """The source URL without credentials, query or fragment: signed URLs carry secrets there."""
        return safe_url(self.source_url) if self.source_url else ""

    @property
    def is_terminal(self):
        return self.state in self.TERMINAL_STATES

    @property
    def elapsed(self):
        return (self.finished_at or timezone.now()) - self.created_at

    # --- Transitions -------------------------------------------------------------
    def _transition(self, from_states, to_state, **changes):
        """Move from one of ``from_states`` to ``to_state``; False if another caller won."""
        now = timezone.now()
        changes = {"state": to_state, "updated_at": now, **changes}
        won = ModifyTask.objects.filter(pk=self.pk, state__in=from_states).update(**changes)
        if won:
            self.refresh_from_db()
        return bool(won)

    def claim_for_submission(self):
        """queued → submitting, counting the attempt; only one worker wins, and not before a retry is due."""
        now = timezone.now()
        due = Q(next_submit_at__isnull=True) | Q(next_submit_at__lte=now)
        won = (
            ModifyTask.objects.filter(due, pk=self.pk, state=self.State.QUEUED)
            .update(state=self.State.SUBMITTING, updated_at=now, submitting_at=now, submit_attempts=F("submit_attempts") + 1,
                    next_submit_at=None)
        )
        if won:
            self.refresh_from_db()
        return bool(won)

    def await_callback(self, deadline, note):
        """Stay submitting after an unanswered generate call, until its callback tells the task id."""
        return self._transition([self.State.SUBMITTING], self.State.SUBMITTING, next_submit_at=deadline, error_message=note)

    def retry_submission(self, delay_seconds, reason=""):
        """submitting → queued after a retryable error, due again after ``delay_seconds``."""
        return self._transition(
            [self.State.SUBMITTING],
            self.State.QUEUED,
            next_submit_at=timezone.now() + timedelta(seconds=delay_seconds),
            error_message=reason,
        )

    def mark_generating(self, provider_task_id, first_poll_seconds=None, from_queued=False):
        """submitting → generating once the provider's task id is known: from generate, or
        from its callback (which may also find the task queued again, waiting for a retry)."""
        now = timezone.now()
        first_poll = settings.LUMA_POLL_FIRST_SECONDS if first_poll_seconds is None else first_poll_seconds
        return self._transition(
            [self.State.SUBMITTING, self.State.QUEUED] if from_queued else [self.State.SUBMITTING],
            self.State.GENERATING,
            provider_task_id=provider_task_id,
            generating_at=now,
            next_poll_at=now + timedelta(seconds=first_poll),
            next_submit_at=None,
            error_message="",
        )

    def record_poll(self, next_poll_at, due_only=False):
        """Stay generating; book the poll and the next one. ``due_only``: only if it is due."""
        now = timezone.now()
        due = Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now) if due_only else Q()
        won = ModifyTask.objects.filter(due, pk=self.pk, state=self.State.GENERATING).update(
            updated_at=now, poll_count=F("poll_count") + 1, last_polled_at=now, next_poll_at=next_poll_at
        )
        if won:
            self.refresh_from_db()
        return bool(won)

    def record_callback(self):
        """Note that a verified callback arrived (no state change); True for the first one only."""
        now = timezone.now()
        first = ModifyTask.objects.filter(pk=self.pk, callback_received_at__isnull=True).update(callback_received_at=now)
        if first:
            self.callback_received_at = now
        return bool(first)

    def retry_archiving(self):
        """archiving → generating, due for a poll now: the worker archiving it stopped; the poll
        re-confirms and archives again, until the maximum wait counted from the first archiving."""
        return self._transition([self.State.ARCHIVING], self.State.GENERATING, next_poll_at=timezone.now())

    def start_archiving(self, result_url):
        """generating → archiving: only one finalizer downloads the result."""
        return self._transition(
            [self.State.GENERATING],
            self.State.ARCHIVING,
            result_url=result_url,
            archiving_at=Coalesce(F("archiving_at"), Value(timezone.now(), output_field=models.DateTimeField())),
        )

    def succeed(self, **result):
        """archiving → succeeded with the archived file, poster and their facts."""
        return self._transition([self.State.ARCHIVING], self.State.SUCCEEDED, finished_at=timezone.now(), **result)

    def fail(self, message, code=None):
        """Any live state → failed, remembering the stage it failed in."""
        stage = self.state
        if stage in self.TERMINAL_STATES:
            return False
        return self._transition(
            [stage], self.State.FAILED, failed_stage=stage, error_code=code, error_message=message, finished_at=timezone.now()
        )
