"""Which provider the app talks to, with which key: the real kie.ai or the sandbox.

The sandbox is the default while no real key is configured; it is reached
over real HTTP at ``PUBLIC_BASE_URL + /sandbox`` exactly like the real host.
"""

from django.conf import settings

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


def key_for(user):
    """``(ApiKey or None, secret)``: the user's key, the team's, the environment's, or the sandbox's."""
    return _secret_of(ApiKey.for_user(user) if user is not None else None)


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
