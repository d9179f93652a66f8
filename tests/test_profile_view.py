"""The profile page (my own usage against my limits, my tasks, my keys) and changing my password."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from modify.models import ModifyTask
from team.models import AuditEvent, Quota
from tests.factories import backdate, make_key, make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
OLD, NEW = "old-horse-battery-staple", "new-horse-battery-staple"


def figures(response):
    """``data-figure`` name → the number shown beside it."""
    page = response.content.decode()
    return {name: int(value) for name, value in re.findall(r'data-figure="([^"]+)"[^>]*>\s*(\d+)', page)}


def limit(response, name):
    return re.search(rf'data-limit="{name}">([^<]+)<', response.content.decode()).group(1)


def test_visitors_are_sent_to_sign_in(client):
    for url in ("/profile/", "/profile/password/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == f"{reverse('login')}?next={url}"


def test_the_profile_shows_my_figures_only(signed_in, member, other):
    make_task(member)                                    # in flight, today
    make_task(member, S.GENERATING)                      # in flight, today, billed this month
    make_task(member, S.SUCCEEDED)                       # billed this month
    make_task(member, S.FAILED)
    last_year = make_task(member, S.SUCCEEDED)
    backdate(last_year, created_at=last_year.created_at - timedelta(days=400),
             generating_at=last_year.generating_at - timedelta(days=400))
    for state in (S.QUEUED, S.GENERATING, S.SUCCEEDED, S.SUCCEEDED, S.FAILED, S.FAILED, S.FAILED):
        make_task(other, state)
    make_key("mine", owner=member)
    make_key("old one", owner=member, is_active=False)
    make_key("ivan's", owner=other)
    make_key("team")

    response = signed_in.get("/profile/")
    assert response.status_code == 200
    per_task = ModifyTask.objects.get(owner=member, state=S.GENERATING).credits
    assert per_task
    assert figures(response) == {
        "tasks-today": 4, "tasks-in-flight": 2, "credits-month": 2 * per_task,
        "tasks-total": 5, "tasks-succeeded": 2, "tasks-failed": 1, "keys": 2,
    }
    page = response.content.decode()
    assert "(1 open for new tasks)" in page and f'href="{reverse("keys")}"' in page
    assert f'href="{reverse("password-change")}"' in page
    assert "ivan" not in page


def test_the_profile_shows_my_limits_and_when_they_reset(signed_in, member, other):
    Quota.objects.create(member=None, tasks_per_day=5, tasks_in_flight=3)
    Quota.objects.create(member=member, tasks_in_flight=2)
    Quota.objects.create(member=other, tasks_per_day=50, credits_per_month=999)
    response = signed_in.get("/profile/")
    assert limit(response, "tasks-today") == "5"
    assert limit(response, "tasks-in-flight") == "2"
    assert limit(response, "credits-month") == "No limit"
    page = response.content.decode()
    zone = re.escape(timezone.get_current_timezone_name())
    assert re.search(rf'<time datetime="[^"]+">\d+ \w+, 00:00</time> <small>\({zone}\)</small>', page)
    assert "As your tasks finish" in page
    assert '<meter min="0" max="5" value="0"' in page


def test_a_member_changes_their_password_and_stays_signed_in(client, member):
    member.set_password(OLD)
    member.save()
    client.force_login(member)
    form = client.get("/profile/password/")
    assert form.status_code == 200 and 'name="old_password"' in form.content.decode()

    response = client.post("/profile/password/", {"old_password": OLD, "new_password1": NEW, "new_password2": NEW},
                           follow=True)
    assert response.redirect_chain == [(reverse("profile"), 302)]
    assert "Your password was changed" in response.content.decode()
    assert client.get("/profile/").status_code == 200  # the session survived
    member.refresh_from_db()
    assert member.check_password(NEW)
    event = AuditEvent.objects.get(kind="password_changed")
    assert event.member == member and event.actor_user == member
    assert NEW not in event.detail and OLD not in event.detail


@pytest.mark.parametrize("old, new1, new2, message", [
    ("wrong-old-password", NEW, NEW, "Your old password was entered incorrectly."),
    (OLD, NEW, NEW + "x", "The two password fields didn"),
    (OLD, "short", "short", "This password is too short."),
    (OLD, "password123", "password123", "This password is too common."),
])
def test_a_bad_password_change_says_why_and_changes_nothing(client, member, old, new1, new2, message):
    member.set_password(OLD)
    member.save()
    client.force_login(member)
    response = client.post("/profile/password/", {"old_password": old, "new_password1": new1, "new_password2": new2})
    assert response.status_code == 200 and message in response.content.decode()
    member.refresh_from_db()
    assert member.check_password(OLD)
    assert not AuditEvent.objects.filter(kind="password_changed").exists()
