"""Which provider the app talks to, with which key: the real kie.ai or the sandbox.

The sandbox is the default while no real key is configured; it is reached
over real HTTP at ``PUBLIC_BASE_URL + /sandbox`` exactly like the real host.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from modify.models import ApiKey
from modify.provider import LumaClient


def uses_sandbox():
    return not settings.LUMA_API_BASE and settings.SANDBOX_ENABLED


def public_base_url():
    if not settings.PUBLIC_BASE_URL:
        raise ImproperlyConfigured("PUBLIC_BASE_URL is not set: the sandbox and callbacks need the app's own URL.")
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
    api_key = ApiKey.for_user(user) if user is not None else None
    if api_key is not None:
        return api_key, api_key.secret
    if settings.LUMA_API_KEY:
        return None, settings.LUMA_API_KEY
    if uses_sandbox() and settings.SANDBOX_API_KEYS:
        return None, settings.SANDBOX_API_KEYS[0]
    raise ImproperlyConfigured("No provider API key: set LUMA_API_KEY or add one in the admin.")


def client(secret):
    return LumaClient(secret, api_base=api_base(), upload_base=upload_base(), timeout=settings.LUMA_HTTP_TIMEOUT)
