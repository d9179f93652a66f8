"""Which provider the app talks to, with which key: the real kie.ai or the sandbox.

The sandbox is the default while no real key is configured; it is reached
over real HTTP at ``PUBLIC_BASE_URL + /sandbox`` exactly like the real host.
"""

from django.conf import settings
from django.db.models import F

from modify.failures import sentence
from modify.models import ApiKey
from modify.provider import LumaClient


class ConfigurationError(Exception):
    """The app cannot reach a provider as configured; ``sentence`` says what to fix."""

    def __init__(self, sentence):
        super().__init__(sentence)
        self.sentence = sentence


def uses_sandbox():
    return not settings.LUMA_API_BASE and settings.SANDBOX_ENABLED


def public_base_url():
    if not settings.PUBLIC_BASE_URL:
        raise ConfigurationError(sentence("no_public_url"))
    return settings.PUBLIC_BASE_URL


def api_base():
    if settings.LUMA_API_BASE:
        return settings.LUMA_API_BASE
    return f"{public_base_url()}/sandbox" if uses_sandbox() else settings.LUMA_REAL_API_BASE


def upload_base():
    if settings.LUMA_UPLOAD_BASE:
        return settings.LUMA_UPLOAD_BASE
    return f"{public_base_url()}/sandbox" if uses_sandbox() else settings.LUMA_REAL_UPLOAD_BASE


class KeyRevoked(ConfigurationError):
    """The key a task was created with was revoked before the task was sent: it spends nothing more."""


def keys_open_to(user):
    """The keys ``user`` may spend on a new task: their own active keys, then the team's, newest first.

    A revoked key (``is_active`` off) is closed to new tasks, and another
    member's key is never open: this is the whole list a member chooses from.
    """
    return (ApiKey.objects.filter(is_active=True, owner__isnull=True) | ApiKey.objects.filter(is_active=True, owner=user)
            ).order_by(F("owner").asc(nulls_last=True), "-created_at", "-pk")


def out_of_credits(api_key):
    """Whether the key's last known credits cannot pay for one more task (unknown credits are not "out")."""
    return api_key.last_credits is not None and api_key.last_credits < settings.LUMA_CREDITS_PER_TASK


def default_key(keys):
    """The key a new task spends unless its member picks another: the first of ``keys_open_to``
    (their newest own, else the team's newest) that still has credits; if none has, the first,
    so the member is told which key ran out. None without any key (the environment's or the sandbox's)."""
    keys = list(keys)
    return next((key for key in keys if not out_of_credits(key)), keys[0] if keys else None)


def key_for(user):
    """``(ApiKey or None, secret)``: the user's key, the team's, the environment's, or the sandbox's."""
    return _secret_of(default_key(keys_open_to(user)) if user is not None else None)


def key_to_send(task):
    """``(ApiKey or None, secret)`` for sending ``task``: the key it was created with, unless that
    key was revoked meanwhile (``KeyRevoked``: nothing is sent); tasks made without one (before
    keys were chosen, or retries) spend the owner's default key, as ``key_for`` picks it."""
    if task.api_key_id is None:
        return key_for(task.owner)
    api_key = ApiKey.objects.get(pk=task.api_key_id)  # as stored now, not as the task was loaded
    if not api_key.is_active:
        raise KeyRevoked(sentence("key_revoked", label=api_key.label))
    return _secret_of(api_key)


def _secret_of(api_key):
    if api_key is not None:
        try:
            return api_key, api_key.secret
        except ValueError:
            raise ConfigurationError(sentence("key_unreadable", label=api_key.label)) from None
    if settings.LUMA_API_KEY:
        return None, settings.LUMA_API_KEY
    if uses_sandbox() and settings.SANDBOX_API_KEYS:
        return None, settings.SANDBOX_API_KEYS[0]
    raise ConfigurationError(sentence("no_key"))


def client(secret):
    return LumaClient(secret, api_base=api_base(), upload_base=upload_base(), timeout=settings.LUMA_HTTP_TIMEOUT)


def client_for(task):
    """The client a task talks through: the key that created it (an admin key, else the
    environment's or the sandbox's), so polls always ask the account that owns the task."""
    if task.is_sandbox != uses_sandbox():
        started_with = "the built-in sandbox" if task.is_sandbox else "kie.ai"
        raise ConfigurationError(sentence("provider_changed", provider=started_with))
    _, secret = _secret_of(task.api_key if task.api_key_id else None)
    return client(secret)
