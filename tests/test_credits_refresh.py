"""team.keys.refresh_credits (the django-q2 job team.jobs.refresh_credits, on a schedule): every open key's
credits asked of the provider (the sandbox, over real HTTP) and stored, a key becoming low logged once, the
environment's key cached for the dashboard, one key's failure stopping no other; and the staff banner
(team.context_processors.team) that lists the low keys in one query, for staff only."""

import logging
import socket

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django_q.tasks import async_task

from modify.models import ApiKey
from sandbox.models import Account
from team import keys
from team.context_processors import team
from team.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

FAKE = "kie-FAKE-5e1d7c3b9a08-DO-NOT-LEAK"
OTHER_FAKE = "kie-FAKE-2-4f6a8c0e1b3d-NOR-THIS"
REFUSED_FAKE = "kie-WRONG-6b4d2f0a8c1e-NEVER-SHOWN"
SECRETS = (FAKE, OTHER_FAKE, REFUSED_FAKE, "sandbox-key")


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def kie(app, settings):
    """The sandbox as kie.ai: it accepts FAKE and OTHER_FAKE besides its own key; low is 100 or fewer."""
    settings.SANDBOX_API_KEYS = ["sandbox-key", FAKE, OTHER_FAKE]
    settings.LUMA_LOW_CREDITS = 100
    return app


class Records:
    """The log records of the test so far (caplog's list is replaced between setup and call)."""

    def __init__(self, caplog):
        self.caplog = caplog

    def __iter__(self):
        return iter(self.caplog.records)


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.DEBUG)
    return Records(caplog)


def assert_no_secret(records, *texts):
    everything = [*texts, *(event.detail for event in AuditEvent.objects.all()),
                  *(record.getMessage() for record in records), *(record.exc_text or "" for record in records)]
    assert everything, "nothing was scanned"
    for secret in SECRETS:
        assert not [text for text in everything if secret in text], f"{secret} leaked"


def stored_key(owner, label, secret, **fields):
    api_key = ApiKey(owner=owner, label=label, **fields)
    api_key.secret = secret
    api_key.save()
    return api_key


def set_credits(secret, credits):
    Account.for_key(secret)
    Account.objects.filter(pk=Account.for_key(secret).pk).update(credits=credits)


def low_events():
    return list(AuditEvent.objects.filter(kind="key_low").order_by("id"))


def test_every_open_key_is_asked_and_remembers_its_credits(kie, member, records):
    set_credits(FAKE, 640)
    mine = stored_key(member, "Mine", FAKE)
    team_key = stored_key(None, "Team", OTHER_FAKE, last_credits=5)
    closed = stored_key(None, "Closed", "kie-closed-000-ZZZZ", is_active=False, last_credits=77)
    assert keys.refresh_credits() == {"checked": 3, "failed": 0, "low": 0}  # two keys and the environment's
    for api_key in (mine, team_key, closed):
        api_key.refresh_from_db()
    assert (mine.last_credits, team_key.last_credits) == (640, 1000)
    assert mine.credits_checked_at and team_key.credits_checked_at
    assert (closed.last_credits, closed.credits_checked_at) == (77, None)  # a revoked key is not asked
    assert_no_secret(records)


def test_a_key_falling_low_is_logged_once_until_it_is_topped_up(kie, member, records):
    api_key = stored_key(member, "Mine", FAKE, last_credits=500)
    set_credits(FAKE, 80)
    assert keys.refresh_credits()["low"] == 1
    assert keys.refresh_credits()["low"] == 0
    [event] = low_events()
    assert (event.api_key, event.member, event.actor, event.actor_user) == (api_key, member, "system", None)
    assert event.detail == "80 credits left (low at 100 or fewer)"
    set_credits(FAKE, 500)
    keys.refresh_credits()
    assert len(low_events()) == 1
    set_credits(FAKE, 100)  # at the threshold counts as low
    keys.refresh_credits()
    keys.refresh_credits()
    assert [event.detail for event in low_events()] == ["80 credits left (low at 100 or fewer)",
                                                        "100 credits left (low at 100 or fewer)"]
    assert_no_secret(records)


def test_one_keys_failure_stops_no_other_and_is_logged_without_the_secret(kie, records):
    refused = stored_key(None, "Refused", REFUSED_FAKE, last_credits=300)
    unreadable = stored_key(None, "Unreadable", OTHER_FAKE, last_credits=300)
    ApiKey.objects.filter(pk=unreadable.pk).update(secret_encrypted="not a fernet token")
    good = stored_key(None, "Good", FAKE)
    assert keys.refresh_credits() == {"checked": 2, "failed": 2, "low": 0}
    good.refresh_from_db()
    assert good.last_credits == 1000
    assert ApiKey.objects.get(pk=refused.pk).last_credits == 300
    warnings = [record.getMessage() for record in records if record.name == "team.keys"]
    assert f"Credits of API key {refused.pk} (••••HOWN) not refreshed: kie.ai refused this key" in warnings[0]
    assert f"Credits of API key {unreadable.pk} (••••THIS) not refreshed: This key cannot be read back" in warnings[1]
    assert_no_secret(records)


def test_an_unreachable_provider_is_logged_and_the_job_still_ends(member, settings, records):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        settings.LUMA_API_BASE = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings.LUMA_API_KEY = FAKE
    stored_key(member, "Mine", OTHER_FAKE, last_credits=300)
    assert keys.refresh_credits() == {"checked": 0, "failed": 2, "low": 0}
    assert sum("could not reach kie.ai" in record.getMessage() for record in records) == 2
    assert ApiKey.objects.get().last_credits == 300
    assert_no_secret(records)


def test_the_environments_key_is_cached_for_the_dashboard_and_logged_once_when_low(kie, settings, records):
    keys.refresh_credits()
    cached = cache.get(keys.ENVIRONMENT_CREDITS_CACHE_KEY)
    assert cached["credits"] == 1000 and cached["masked"] == "••••-key" and cached["checked_at"]
    assert keys.environment_credits() == cached and keys.low_environment_credits() is None
    settings.LUMA_API_KEY, settings.LUMA_API_BASE = FAKE, f"{kie.url}/sandbox"  # a real key in the environment
    set_credits(FAKE, 60)
    keys.refresh_credits()
    keys.refresh_credits()
    assert keys.environment_credits()["credits"] == 60 and keys.low_environment_credits()["masked"] == "••••LEAK"
    [event] = low_events()
    assert event.api_key is None and event.detail == "The environment's key ••••LEAK: 60 credits left (low at 100 or fewer)"
    assert_no_secret(records)


def test_without_a_key_in_the_environment_nothing_is_cached(member, settings, records):
    settings.LUMA_API_KEY, settings.SANDBOX_ENABLED = "", False
    cache.set(keys.ENVIRONMENT_CREDITS_CACHE_KEY, {"credits": 1, "masked": "••••old!", "checked_at": None})
    assert keys.refresh_credits() == {"checked": 0, "failed": 0, "low": 0}
    assert keys.environment_credits() is None


def test_the_scheduled_job_runs_the_refresh(kie, member):
    stored_key(member, "Mine", FAKE)
    assert async_task("team.jobs.refresh_credits", sync=True)  # as the cluster would find and run it
    assert ApiKey.objects.get().last_credits == 1000


# --- The low-credit banner, for staff -----------------------------------------------------------

def request_of(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def test_staff_see_the_open_low_keys_in_one_query(staff, member, settings, django_assert_num_queries):
    settings.LUMA_LOW_CREDITS = 100
    stored_key(member, "Maria's", FAKE, last_credits=40)
    stored_key(None, "Team at the threshold", OTHER_FAKE, last_credits=100)
    stored_key(None, "Team, plenty", "kie-plenty-000-PPPP", last_credits=101)
    stored_key(None, "Team, not counted yet", "kie-unknown-00-UUUU")
    stored_key(None, "Revoked and low", "kie-revoked-00-RRRR", last_credits=0, is_active=False)
    context = team(request_of(staff))
    with django_assert_num_queries(1):
        low = [(key.label, key.owner.username if key.owner else None) for key in context["low_credit_keys"]]
    assert low == [("Maria's", "maria"), ("Team at the threshold", None)]
    banner = render_to_string("team/low_credits_banner.html", context, request_of(staff))
    assert "Running low on credits" in banner and "“Maria's” ••••LEAK of maria (40 left)" in banner.replace("&#x27;", "'")
    assert "••••THIS" in banner and 'href="/keys/"' in banner
    assert "PPPP" not in banner and "RRRR" not in banner and FAKE not in banner


def test_the_banner_names_the_environments_key_when_it_is_low(staff, settings):
    settings.LUMA_LOW_CREDITS = 100
    cache.set(keys.ENVIRONMENT_CREDITS_CACHE_KEY, {"credits": 30, "masked": "••••ENV1", "checked_at": None})
    banner = render_to_string("team/low_credits_banner.html", team(request_of(staff)), request_of(staff))
    assert "the environment's key ••••ENV1 (30 left)" in banner.replace("&#x27;", "'")


def test_members_and_visitors_get_no_banner_and_no_query(member, settings):
    settings.LUMA_LOW_CREDITS = 100
    stored_key(None, "Team, low", FAKE, last_credits=3)
    cache.set(keys.ENVIRONMENT_CREDITS_CACHE_KEY, {"credits": 3, "masked": "••••ENV1", "checked_at": None})
    for user in (member, AnonymousUser()):
        with CaptureQueriesContext(connection) as queries:
            context = team(request_of(user))
            banner = render_to_string("team/low_credits_banner.html", context, request_of(user))
        assert context == {} and not banner.strip() and not queries.captured_queries


def test_staff_see_no_banner_while_no_key_is_low(staff, settings):
    settings.LUMA_LOW_CREDITS = 100
    stored_key(None, "Team", FAKE, last_credits=500)
    assert not render_to_string("team/low_credits_banner.html", team(request_of(staff)), request_of(staff)).strip()
