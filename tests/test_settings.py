"""Settings from the environment: what a deployment gets when it sets (or forgets) a variable."""

import ast
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def settings_under(name="SANDBOX_ENABLED", **env):
    """A setting as a fresh process computes it from ``env`` alone."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LUMA_", "SANDBOX_", "BEHIND_", "SECURE_"))}
    code = f"import django; django.setup(); from django.conf import settings; print(repr(settings.{name}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "lumaweb.settings", **env},
        capture_output=True, text=True, check=True,
    )
    return ast.literal_eval(out.stdout.strip())


@pytest.mark.parametrize(
    "env, mounted",
    [
        ({}, True),  # nothing configured: the embedded default
        ({"LUMA_API_KEY": "real-key"}, False),
        ({"LUMA_API_BASE": "https://api.kie.ai"}, False),  # keys kept in the admin only
        ({"LUMA_API_KEY": "real-key", "SANDBOX_ENABLED": "1"}, True),  # asked for explicitly
        ({"SANDBOX_ENABLED": "0"}, False),
    ],
)
def test_the_sandbox_is_mounted_only_while_no_real_provider_is_configured(env, mounted):
    assert settings_under(**env) is mounted


def test_behind_an_https_proxy_requests_count_as_secure_and_cookies_need_https():
    assert settings_under("SECURE_PROXY_SSL_HEADER") is None
    assert settings_under("SESSION_COOKIE_SECURE") is False
    assert settings_under("SECURE_PROXY_SSL_HEADER", BEHIND_HTTPS_PROXY="1") == ("HTTP_X_FORWARDED_PROTO", "https")
    assert settings_under("CSRF_COOKIE_SECURE", BEHIND_HTTPS_PROXY="1") is True
