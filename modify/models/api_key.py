"""A provider API key: personal, or the team's."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from modify import crypto


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
    is_active = models.BooleanField(default=True, help_text="Open for new tasks; a revoked key keeps polling its tasks.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys_added",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_credits = models.IntegerField(null=True, blank=True, editable=False, help_text="Credits left, as last asked.")
    credits_checked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["label"]
        indexes = [models.Index(fields=["is_active", "last_credits"], name="apikey_open_credits")]

    def __str__(self):
        return f"{self.label} ({self.masked})"

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

    def mark_used(self):
        type(self).objects.filter(pk=self.pk).update(last_used_at=timezone.now())
