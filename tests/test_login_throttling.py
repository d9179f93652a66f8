"""Sign-in throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for a username from one
address, even the right password is refused with the lockout page, until the cool-off passes or staff
reset the lockout in the admin. The lock is on the username *and* the address together."""

import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from tests.factories import make_member

pytestmark = pytest.mark.django_db
PASSWORD = "right-horse-battery"
LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def quick_hashing(settings):
    """Dozens of sign-ins per test: a fast hasher keeps them quick (what is tested is the counting)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def maria(db):
    return make_member("maria", password=PASSWORD)


def sign_in(client, username, password, address="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def fail_until_locked(client, username, settings, address="10.0.0.1"):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        response = sign_in(client, username, "wrong password", address)
    return response


def is_signed_in(client):
    return client.get(reverse("profile")).status_code == 200


def test_the_right_password_is_refused_after_too_many_wrong_ones(client, maria, settings):
    last = fail_until_locked(client, "maria", settings)
    assert last.status_code == 429
    response = sign_in(client, "maria", PASSWORD)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed sign-ins" in page and "<strong>maria</strong>" in page
    assert re.search(rf"failed\s+{settings.AXES_FAILURE_LIMIT} times in a row", page)
    assert "Try again in 1h 00m" in page and "ask a staff member" in page
    assert 'href="/static/css/app.css"' in page  # the app's own look
    assert not is_signed_in(client)


def test_fewer_failures_than_the_limit_still_let_the_right_password_in(client, maria, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "maria", "wrong password").status_code == 200
    response = sign_in(client, "maria", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("studio")
    assert is_signed_in(client)
    assert not AccessAttempt.objects.filter(username="maria").exists()  # a success resets the count


def test_the_lock_is_on_the_username_and_address_together(maria, other, settings):
    other.set_password(PASSWORD)
    other.save()
    fail_until_locked(Client(), "maria", settings, address="10.0.0.1")
    # Another member from the same address still gets in ...
    colleague = Client()
    assert sign_in(colleague, "ivan", PASSWORD, address="10.0.0.1").status_code == 302
    # ... and so does maria from another address; from the locked one she does not.
    elsewhere = Client()
    assert sign_in(elsewhere, "maria", PASSWORD, address="10.0.0.2").status_code == 302
    assert sign_in(Client(), "maria", PASSWORD, address="10.0.0.1").status_code == 429


def request_from(address):
    request = HttpRequest()
    request.META["REMOTE_ADDR"] = address
    return request


def test_client_login_goes_through_axes_too(client, maria, settings):
    """Tests that sign in with ``client.login`` hand it a request, as axes needs one."""
    fail_until_locked(Client(), "maria", settings, address="10.0.0.1")
    assert not client.login(request=request_from("10.0.0.1"), username="maria", password=PASSWORD)
    assert client.login(request=request_from("10.9.9.9"), username="maria", password=PASSWORD)


@pytest.fixture
def axes_admin(staff):
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="axes"))
    admin = Client()
    admin.force_login(staff)
    return admin


def test_staff_see_the_lockout_in_the_admin_and_reset_it(maria, axes_admin, settings):
    fail_until_locked(Client(), "maria", settings)
    attempt = AccessAttempt.objects.get(username="maria")
    assert attempt.failures_since_start == settings.AXES_FAILURE_LIMIT and attempt.ip_address == "10.0.0.1"
    listing = axes_admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert "maria" in listing.content.decode() and "10.0.0.1" in listing.content.decode()

    axes_admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert not AccessAttempt.objects.exists()
    member = Client()
    assert sign_in(member, "maria", PASSWORD).status_code == 302 and is_signed_in(member)


def test_members_cannot_reach_the_lockouts(signed_in):
    assert signed_in.get("/admin/axes/accessattempt/").status_code == 302  # the admin's own sign-in page
