"""The signed-in member comes from the cache on each request, and a change to them applies at once."""

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_member

pytestmark = pytest.mark.django_db


def user_queries(client):
    with CaptureQueriesContext(connection) as seen:
        assert client.get("/profile/").status_code in (200, 302)
    return [q["sql"] for q in seen.captured_queries if 'FROM "auth_user"' in q["sql"] and "WHERE" in q["sql"]]


def test_a_signed_in_request_does_not_load_the_member_again(client):
    maria = make_member("maria", password="pw-maria-123")
    client.force_login(maria)
    user_queries(client)  # the first request fills the cache
    assert user_queries(client) == []


def test_a_password_change_signs_other_sessions_out_at_once(client):
    maria = make_member("maria", password="pw-maria-123")
    client.force_login(maria)
    assert client.get("/profile/").status_code == 200
    maria.password = make_password("a-new-password-456")
    maria.save()
    response = client.get("/profile/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_deactivated_member_is_signed_out_at_once(client):
    maria = make_member("maria", password="pw-maria-123")
    client.force_login(maria)
    assert client.get("/profile/").status_code == 200
    maria.is_active = False
    maria.save()
    assert client.get("/profile/").status_code == 302
