"""The Keys page (/keys/): a member adds a personal key only once the provider (the sandbox, over real
HTTP) counts its credits, sees it only as label, ••••last4 and credits, and revokes it; staff add, check and
revoke team keys; nobody sees or revokes another member's key; and a distinctive fake key never shows up in
a page, a message, an event or a log record on any key path (add, refused, revoke, refresh, rotate)."""

import html
import logging
import socket

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse

from modify import backend
from modify.models import ApiKey, ModifyTask
from sandbox.models import Account
from team import keys
from team.models import AuditEvent
from tests.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

FAKE = "kie-FAKE-7b3e9d1c4a2f-DO-NOT-LEAK"  # accepted by the sandbox in these tests
REFUSED_FAKE = "kie-WRONG-0c9d8e7f6a5b-NEVER-SHOWN"  # refused by it
KEYS = reverse("keys")


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def kie(app, settings):
    """The sandbox standing in for kie.ai, accepting FAKE besides its own key."""
    settings.SANDBOX_API_KEYS = ["sandbox-key", FAKE]
    return app


class Leaks:
    """Everything a secret could escape into: pages, messages, events, log records, command output."""

    def __init__(self, caplog):
        self.caplog, self.texts = caplog, []

    def keep(self, response):
        self.texts.append(text(response))
        self.texts.extend(str(message) for message in get_messages(response.wsgi_request))
        return response

    def check(self, *secrets, extra=()):
        texts = [*self.texts, *extra, *(event.detail for event in AuditEvent.objects.all()),
                 *(record.getMessage() for record in self.caplog.records),
                 *(record.exc_text or "" for record in self.caplog.records)]
        for secret in secrets or (FAKE, REFUSED_FAKE):
            leaked = [text for text in texts if secret in text]
            assert not leaked, f"the secret leaked into: {leaked[0][:300]!r}"
        assert self.texts or extra, "nothing was scanned"


@pytest.fixture
def leaks(caplog):
    caplog.set_level(logging.DEBUG)
    return Leaks(caplog)


def stored_key(owner, label, secret, **fields):
    api_key = ApiKey(owner=owner, label=label, **fields)
    api_key.secret = secret
    api_key.save()
    return api_key


def add(client, label, secret, scope="personal", **headers):
    return client.post(KEYS, {"action": "add", "scope": scope, f"{scope}-label": label, f"{scope}-secret": secret},
                       follow=not headers, **headers)


def text(response):
    return html.unescape(response.content.decode())


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_anonymous_visitors_are_sent_to_sign_in(client, member):
    api_key = stored_key(member, "Mine", FAKE)
    for response in (client.get(KEYS), client.post(KEYS, {"action": "add"}),
                     client.post(reverse("key-revoke", args=[api_key.pk]))):
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert ApiKey.objects.get().is_active


def test_a_key_the_provider_accepts_is_saved_masked_with_its_credits(kie, signed_in, member, leaks):
    response = leaks.keep(add(signed_in, "My kie.ai account", FAKE))
    assert response.redirect_chain == [(KEYS, 302)]
    page = text(response)
    assert "My kie.ai account" in page and "••••LEAK" in page and "1000 credits left" in page
    assert "Key “My kie.ai account” (••••LEAK) added: kie.ai counts 1000 credits on it." in page
    api_key = ApiKey.objects.get()
    assert (api_key.owner, api_key.created_by, api_key.label, api_key.last_credits) == (member, member,
                                                                                       "My kie.ai account", 1000)
    assert api_key.credits_checked_at is not None and api_key.is_active
    assert api_key.secret == FAKE and FAKE not in api_key.secret_encrypted and api_key.last4 == "LEAK"
    event = AuditEvent.objects.get()
    assert (event.kind, event.api_key, event.member, event.actor_user, event.actor, event.detail) == (
        "key_added", api_key, member, member, "member", "My kie.ai account")
    assert ApiKey.for_user(member) == api_key  # the member's tasks now spend it
    leaks.check()


def test_a_key_the_provider_refuses_is_not_saved_and_the_form_says_why(kie, signed_in, leaks):
    response = leaks.keep(add(signed_in, "Typo", REFUSED_FAKE))
    assert response.status_code == 422
    assert "kie.ai refused this key: check it was copied whole." in text(response)
    assert 'value="Typo"' in text(response)  # the label stays, the secret does not
    assert not ApiKey.objects.exists() and not AuditEvent.objects.exists()
    leaks.check()


def test_an_unreachable_provider_is_said_and_nothing_is_saved(signed_in, settings, leaks):
    settings.LUMA_API_BASE = f"http://127.0.0.1:{free_port()}"
    response = leaks.keep(add(signed_in, "Mine", FAKE))
    assert response.status_code == 422
    assert "could not reach kie.ai to check it; try again" in text(response)
    assert not ApiKey.objects.exists() and not AuditEvent.objects.exists()
    leaks.check()


@pytest.mark.parametrize("label, secret, error", [
    ("", FAKE, "Give the key a name you will recognise."),
    ("Mine", "", "Paste the API key from kie.ai."),
    ("Mine", "kie FAKE with spaces", "An API key has no spaces, line breaks or accents"),
    ("Mine", "short", "That is too short to be an API key"),
    (f"my key {FAKE}", FAKE, "do not put the key itself in it"),
])
def test_bad_input_says_what_is_wrong_and_asks_no_one(signed_in, settings, label, secret, error, leaks):
    settings.LUMA_API_BASE = f"http://127.0.0.1:{free_port()}"  # would say "could not reach" if it were asked
    response = leaks.keep(add(signed_in, label, secret))
    assert response.status_code == 422
    page = text(response)
    assert error in page and "could not reach" not in page
    assert not ApiKey.objects.exists()
    leaks.check()


def test_the_same_key_twice_is_refused(kie, signed_in, member, leaks):
    stored_key(member, "First", FAKE)
    response = leaks.keep(add(signed_in, "Again", FAKE))
    assert response.status_code == 422
    assert "This key is already here, as “First” (••••LEAK)." in text(response)
    assert ApiKey.objects.count() == 1
    leaks.check()


def test_with_htmx_the_section_is_swapped_in_place(kie, signed_in, leaks):
    htmx = {"HTTP_HX_REQUEST": "true"}
    refused = leaks.keep(add(signed_in, "Typo", REFUSED_FAKE, **htmx))
    assert refused.status_code == 200 and "<html" not in text(refused)
    assert 'id="personal-keys"' in text(refused) and "kie.ai refused this key" in text(refused)
    added = leaks.keep(add(signed_in, "Mine", FAKE, **htmx))
    page = text(added)
    assert "<html" not in page and 'id="personal-keys"' in page and 'id="team-keys"' not in page
    assert "Key “Mine” (••••LEAK) added" in page and f'id="key-{ApiKey.objects.get().pk}"' in page
    leaks.check()


def test_a_member_sees_their_keys_and_the_open_team_keys_never_anyone_elses(signed_in, member, other, leaks):
    mine = stored_key(member, "Maria's key", "kie-maria-0001-AAAA", last_credits=640)
    stored_key(member, "Maria's old key", "kie-maria-0002-BBBB", is_active=False)
    stored_key(other, "Ivan's key", "kie-ivan-0003-CCCC")
    stored_key(None, "Team key", "kie-team-0004-DDDD", last_credits=90)
    stored_key(None, "Closed team key", "kie-team-0005-EEEE", is_active=False)
    make_task(member, ModifyTask.State.GENERATING, api_key=mine)
    response = leaks.keep(signed_in.get(KEYS))
    page = text(response)
    assert response.status_code == 200
    for shown in ("Maria's key", "••••AAAA", "640 credits left", "1 task spent it", "Maria's old key", "Revoked",
                  "Team key", "••••DDDD", "90 credits left"):
        assert shown in page, shown
    for hidden in ("Ivan's key", "CCCC", "Closed team key", "EEEE", "Check credits now", "Add a team key"):
        assert hidden not in page, hidden
    leaks.check("kie-maria-0001-AAAA", "kie-maria-0002-BBBB", "kie-ivan-0003-CCCC", "kie-team-0004-DDDD")


def test_a_member_cannot_revoke_another_members_key_nor_a_team_key(signed_in, other):
    for owner in (other, None):
        api_key = stored_key(owner, "Not mine", FAKE)
        assert signed_in.post(reverse("key-revoke", args=[api_key.pk])).status_code == 404
        assert signed_in.get(reverse("key-revoke", args=[api_key.pk])).status_code == 405
        api_key.refresh_from_db()
        assert api_key.is_active and api_key.revoked_at is None
    assert not AuditEvent.objects.exists()


def test_revoking_stops_new_tasks_while_tasks_in_flight_keep_polling_with_it(signed_in, member, monkeypatch, leaks):
    team = stored_key(None, "Team", "kie-team-0004-DDDD")
    mine = stored_key(member, "Mine", FAKE)
    running = make_task(member, ModifyTask.State.GENERATING, api_key=mine)
    assert ApiKey.for_user(member) == mine
    response = leaks.keep(signed_in.post(reverse("key-revoke", args=[mine.pk]), follow=True))
    assert "Key “Mine” (••••LEAK) revoked: no new task will use it" in text(response)
    mine.refresh_from_db()
    assert not mine.is_active and mine.revoked_at is not None
    event = AuditEvent.objects.get()
    assert (event.kind, event.api_key, event.member, event.actor_user, event.detail) == (
        "key_revoked", mine, member, member, "Mine")
    assert ApiKey.for_user(member) == team  # new tasks spend the team's key
    running.refresh_from_db()
    assert running.state == ModifyTask.State.GENERATING and running.api_key == mine
    asked_with = []
    monkeypatch.setattr(backend, "client", lambda secret: asked_with.append(secret))
    backend.client_for(running)
    assert asked_with == [FAKE]  # its polls still ask the account that owns it
    again = leaks.keep(signed_in.post(reverse("key-revoke", args=[mine.pk]), follow=True))
    assert "was already revoked" in text(again) and AuditEvent.objects.count() == 1
    leaks.check(FAKE, "kie-team-0004-DDDD")


def test_staff_add_check_and_revoke_team_keys_that_members_then_use(kie, client, staff, member, leaks):
    client.force_login(staff)
    page = text(leaks.keep(client.get(KEYS)))
    assert "Add a team key" in page
    leaks.keep(add(client, "Team account", FAKE, scope="team"))
    team = ApiKey.objects.get()
    assert (team.owner, team.created_by, team.last_credits) == (None, staff, 1000)
    added = AuditEvent.objects.get()
    assert (added.kind, added.actor, added.member, added.api_key) == ("key_added", "staff", None, team)
    assert ApiKey.for_user(member) == team

    Account.for_key(FAKE)
    Account.objects.update(credits=70)
    checked = leaks.keep(client.post(KEYS, {"action": "check", "key": team.pk}, follow=True))
    assert "“Team account” (••••LEAK): 70 credits left." in text(checked)
    team.refresh_from_db()
    assert team.last_credits == 70
    assert AuditEvent.objects.filter(kind="key_low", api_key=team).count() == 1

    leaks.keep(client.post(reverse("key-revoke", args=[team.pk]), follow=True))
    team.refresh_from_db()
    assert not team.is_active
    assert AuditEvent.objects.filter(kind="key_revoked", api_key=team, actor_user=staff).exists()
    leaks.check()


def test_staff_check_the_environments_key_now(kie, client, staff, leaks):
    client.force_login(staff)
    response = leaks.keep(client.post(KEYS, {"action": "check", "key": "environment"}, follow=True))
    assert "The environment's key: 1000 credits left." in text(response)
    assert keys.environment_credits()["credits"] == 1000
    assert "1000 credits left" in text(leaks.keep(client.get(KEYS)))
    leaks.check("sandbox-key", FAKE)


def test_a_refused_check_says_why_and_changes_nothing(kie, client, staff, leaks):
    client.force_login(staff)
    team = stored_key(None, "Expired", REFUSED_FAKE, last_credits=500)
    response = leaks.keep(client.post(KEYS, {"action": "check", "key": team.pk}, follow=True))
    assert "Credits not checked: kie.ai refused this key" in text(response)
    team.refresh_from_db()
    assert team.last_credits == 500
    leaks.check()


def test_members_cannot_add_team_keys_nor_check_credits(signed_in, member):
    team = stored_key(None, "Team", FAKE, last_credits=500)
    assert add(signed_in, "Sneaky", FAKE, scope="team").status_code == 403
    assert signed_in.post(KEYS, {"action": "check", "key": team.pk}).status_code == 403
    assert signed_in.post(KEYS, {"action": "dance"}).status_code == 400
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().last_credits == 500


def test_every_key_path_keeps_the_secret_out_of_pages_events_logs_and_messages(kie, client, member, staff, settings,
                                                                              capsys, leaks):
    """Add (accepted and refused), revoke, refresh and rotate, scanning everything each one leaves."""
    client.force_login(member)
    leaks.keep(add(client, "Mine", FAKE))
    leaks.keep(add(client, "Typo", REFUSED_FAKE))
    mine = ApiKey.objects.get()
    stored_key(None, "Team, refused", REFUSED_FAKE)  # refresh meets a refusal too
    assert keys.refresh_credits() == {"checked": 2, "failed": 1, "low": 0}  # with the environment's key
    settings.FIELD_ENCRYPTION_KEYS = ["a new key", *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_encryption_key")
    leaks.keep(client.post(reverse("key-revoke", args=[mine.pk]), follow=True))
    client.force_login(staff)
    leaks.keep(client.get(KEYS))
    mine.refresh_from_db()
    assert mine.secret == FAKE and not mine.is_active
    kinds = set(AuditEvent.objects.values_list("kind", flat=True))
    assert {"key_added", "key_revoked", "keys_rotated"} <= kinds
    assert any("not refreshed" in record.getMessage() for record in leaks.caplog.records)
    output = capsys.readouterr()
    leaks.check(extra=[output.out, output.err])
