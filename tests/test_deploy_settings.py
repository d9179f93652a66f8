"""A production environment passes Django's deployment checklist; local development keeps plain HTTP."""

import ast
import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Variables a test's own environment (CI's, a developer's shell, the browser fixture's async switch)
# may set and that would change the answer.
OURS = ("LUMA_", "SANDBOX_", "BEHIND_", "SECURE_", "PUBLIC_BASE_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS",
        "DJANGO_ALLOW_ASYNC_UNSAFE")


def production(**overrides):
    """What a deployment sets: debugging off, a long random key, its public https:// address, its host,
    and a real provider's key (so the sandbox is off)."""
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "PUBLIC_BASE_URL": "https://lumaweb.example.com",
        "ALLOWED_HOSTS": "lumaweb.example.com",
        "LUMA_API_KEY": "a-real-providers-key",
        **overrides,
    }


def run(args, env, tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**clean, "DJANGO_SETTINGS_MODULE": "lumaweb.settings", "LUMAWEB_VAR_DIR": str(tmp_path), **env},
    )


def settings_of(env, tmp_path, *names):
    code = "import django; django.setup(); from django.conf import settings; print(repr({%s}))" % ", ".join(
        f"{name!r}: settings.{name}" for name in names
    )
    done = run([sys.executable, "-c", code], env, tmp_path)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip())


def test_check_deploy_finds_nothing_to_fix_in_a_production_environment(tmp_path):
    done = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], production(), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr
    assert "WARNING" not in done.stderr + done.stdout


SECURE = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS")


def test_over_https_cookies_are_secure_http_redirects_and_hsts_lasts_a_year(tmp_path):
    assert settings_of(production(), tmp_path, *SECURE) == {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
    }


@pytest.mark.parametrize("env", [
    {"PUBLIC_BASE_URL": "http://127.0.0.1:8000", "DEBUG": ""},  # make run
    {"PUBLIC_BASE_URL": "", "DEBUG": ""},  # nothing configured
    {"PUBLIC_BASE_URL": "https://lumaweb.example.com", "DEBUG": "1"},  # debugging a production copy
])
def test_local_development_keeps_plain_http(env, tmp_path):
    assert settings_of(env, tmp_path, *SECURE) == {
        "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False, "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
    }


def test_each_https_setting_can_be_changed_from_the_environment(tmp_path):
    env = production(SECURE_SSL_REDIRECT="0", SECURE_HSTS_SECONDS="3600", SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
                     SECURE_HSTS_PRELOAD="0", BEHIND_HTTPS_PROXY="1")
    assert settings_of(env, tmp_path, "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
                       "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE") == {
        "SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 3600, "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        "SESSION_COOKIE_SECURE": True,
    }


def test_the_proxy_header_is_trusted_only_behind_a_proxy_that_says_so(tmp_path):
    """X-Forwarded-Proto from anyone would make any request count as secure."""
    assert settings_of(production(), tmp_path, "SECURE_PROXY_SSL_HEADER") == {"SECURE_PROXY_SSL_HEADER": None}


def test_with_https_redirect_on_pages_redirect_but_the_health_check_answers_over_http(db, client, settings):
    """Load balancers and service managers ask /healthz over plain HTTP on the inside."""
    settings.SECURE_SSL_REDIRECT = True
    page = client.get("/accounts/login/")
    assert page.status_code == 301 and page["Location"].startswith("https://")
    assert client.get("/healthz").status_code in (200, 503)  # answered, whatever the parts say
