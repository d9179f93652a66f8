"""A task's history: one row per transition, callback, poll answer, retry and member or staff action.

Rows are written in the same transaction as the change they describe (by
``ModifyTask.transition`` and ``ModifyTask.record``) and never edited. The
detail page's timeline, the admin's task page and, later, audit and stats
read them. A detail never holds a secret: callback tokens are redacted on
the way in, and no API key reaches this table.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from modify.logfilters import redact
from modify.states import Actor, State

DETAIL_MAX = 500

# What each kind of event means, as the timeline says it.
SUMMARIES = {
    "created": "Created",
    "claim": "Sending to the provider",
    "requeue": "Queued again",
    "generate_sent": "Asked the provider to generate the video",
    "source_kept": "Fetched the video URL and checked it",
    "retry_later": "Will try again",
    "wait_for_slot": "Waiting for a slot at the provider",
    "accepted": "The provider accepted the task",
    "late_answer": "The provider answered generate after the task had moved on",
    "no_answer": "The provider did not answer; waiting for its callback",
    "adopted": "The provider's callback named the task",
    "poll": "Asked the provider",
    "result_found": "The result is ready; archiving it",
    "resume_archiving": "Archiving was interrupted; starting it again",
    "archived": "Archived: done",
    "fail": "Failed",
    "rearchive": "Staff asked to archive the result again",
    "checked": "Staff asked the provider",
    "callback_accepted": "Callback received",
    "callback_rejected": "Callback rejected",
    "retried": "Tried again as a new task",
    "shared": "Shared with the team",
    "unshared": "Hidden from the gallery",
}


class TaskEvent(models.Model):
    task = models.ForeignKey("modify.ModifyTask", on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    from_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    actor = models.CharField(max_length=8, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="task_events"
    )
    detail = models.CharField(max_length=DETAIL_MAX, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["task", "created_at"]), models.Index(fields=["kind", "created_at"]),
                   models.Index(fields=["created_at", "id"])]  # the audit list, newest first

    def __str__(self):
        return f"{self.kind} ({self.from_state} → {self.to_state})"

    def save(self, *args, **kwargs):
        self.detail = redact(self.detail)[:DETAIL_MAX]
        super().save(*args, **kwargs)

    @property
    def summary(self):
        """The event in a few words, with its detail: what the timeline shows."""
        label = SUMMARIES.get(self.kind, self.kind)
        if self.actor == Actor.STAFF and self.actor_user_id:
            label += f" (by staff, {self.actor_user.get_username()})"
        return f"{label}: {self.detail}" if self.detail else label
