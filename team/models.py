"""The team's side: invitations, quotas, and the audit log of what is not a task step.

A task's own history is ``modify.TaskEvent``; everything else staff and
members do to the account (keys added or revoked, quotas changed,
invitations sent and accepted) is an ``AuditEvent``. The audit page reads
both, newest first.
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from modify.logfilters import redact
from modify.states import Actor


def _in_invitation_days():
    return timezone.now() + timedelta(days=settings.INVITATION_DAYS)


def token_digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


class Invitation(models.Model):
    """One use, until it expires: the invitee picks a username and password and becomes a member.

    Only the token's digest is stored: the link is shown (and mailed) once, when it is made.
    """

    email = models.EmailField(blank=True, help_text="Leave empty to hand the link over yourself.")
    as_staff = models.BooleanField(default=False, help_text="The new member is staff too.")
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="invitations_sent")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=_in_invitation_days)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitation"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.email or f"link made {self.created_at:%Y-%m-%d %H:%M}"

    @classmethod
    def make(cls, created_by, email="", as_staff=False):
        """A new invitation and its token (the only time the token exists in clear)."""
        token = secrets.token_urlsafe(32)
        return cls.objects.create(created_by=created_by, email=email, as_staff=as_staff,
                                  token_digest=token_digest(token)), token

    @property
    def is_open(self):
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()


class Quota(models.Model):
    """Limits on what a member may spend; the row without a member is the team's default.

    An empty limit on a member's row falls back to the default; an empty
    default means no limit.
    """

    member = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="quota",
        help_text="Leave empty for the team's default.",
    )
    tasks_per_day = models.PositiveIntegerField(null=True, blank=True)
    tasks_in_flight = models.PositiveIntegerField(null=True, blank=True)
    credits_per_month = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        # One row per member (the one-to-one), and one team default: NULLs are distinct in a plain unique index.
        constraints = [models.UniqueConstraint(Coalesce("member", Value(0)), name="one_quota_per_member_or_team")]

    def __str__(self):
        return f"quota of {self.member}" if self.member_id else "team default quota"


class AuditEvent(models.Model):
    """Something done to the team's account: who, what, to whom or to which key, and when. Never a secret."""

    actor = models.CharField(max_length=8, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    kind = models.CharField(max_length=32)
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events_about",
        help_text="The member it concerns, if any.",
    )
    api_key = models.ForeignKey("modify.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events")
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["created_at", "id"]), models.Index(fields=["kind", "created_at"]),
                   models.Index(fields=["member", "created_at"])]

    def __str__(self):
        return f"{self.kind} by {self.actor_user or self.get_actor_display()}"

    def save(self, *args, **kwargs):
        self.detail = redact(self.detail)[:500]
        super().save(*args, **kwargs)

    @classmethod
    def log(cls, kind, *, by=None, actor=None, member=None, api_key=None, detail=""):
        """Write one row; the actor is staff or a member from ``by``, else the system."""
        if actor is None:
            actor = Actor.SYSTEM if by is None else Actor.STAFF if by.is_staff else Actor.MEMBER
        return cls.objects.create(kind=kind, actor=actor, actor_user=by, member=member, api_key=api_key, detail=detail)
