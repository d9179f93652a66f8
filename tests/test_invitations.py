"""Invitations, as staff and invitees meet them: the team page that makes them, the join link
(works once, expires, can be revoked), and the admin's read-only record.

The token is a secret: it is shown on the page that answers its creation and sent in the email,
and nowhere else (not the list, the admin, the audit log or the logs).
"""

import logging
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core import mail
from django.db.models import CharField, TextField
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from team import invitations as invites
from team.models import AuditEvent, Invitation
from tests.factories import make_member

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "correct-horse-battery"
INVITATIONS = "/team/invitations/"


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def log_records():
    """Every log record written meanwhile, including on the loggers that do not reach the root."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    keep = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("", "django.request", "django.server", "django.security.csrf")]
    for logger in loggers:
        logger.addHandler(keep)
    yield records
    for logger in loggers:
        logger.removeHandler(keep)


def invite(client, email="", as_staff=False):
    """Make an invitation on the team page; the response, the invitation, and the token from the shown link."""
    data = {"email": email, **({"as_staff": "on"} if as_staff else {})}
    response = client.post(INVITATIONS, data)
    assert response.status_code == 200, response.content.decode()[:2000]
    link = re.search(r'id="invitation-link" value="([^"]+)"', response.content.decode()).group(1)
    return response, Invitation.objects.latest("pk"), link.split("/join/")[1].strip("/")


def join(token, username="newbie", password=PASSWORD, confirm=None, client=None):
    client = client or Client()
    return client, client.post(f"/join/{token}/", {"username": username, "password1": password,
                                                  "password2": confirm or password})


# --- Making invitations -------------------------------------------------------------------------------


def test_an_email_invitation_mails_the_link_and_shows_it_once(staff_client, staff):
    response, invitation, token = invite(staff_client, email="nina@example.com")
    page = response.content.decode()
    link = f"http://testserver/join/{token}/"
    assert f'value="{link}"' in page
    assert "only time it is shown" in page and "emailed to nina@example.com" in page
    assert response["Cache-Control"].startswith("no-store") or "no-store" in response["Cache-Control"]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["nina@example.com"] and link in message.body and "sam invites you" in message.body
    assert invitation.email == "nina@example.com" and invitation.created_by == staff and invitation.is_open
    event = AuditEvent.objects.get(kind="invitation_sent")
    assert event.actor_user == staff and event.detail == "nina@example.com"


def test_a_link_invitation_sends_no_mail_and_uses_the_public_address(staff_client, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.org"
    response, invitation, token = invite(staff_client)
    assert f'value="https://studio.example.org/join/{token}/"' in response.content.decode()
    assert mail.outbox == []
    assert invitation.email == "" and not invitation.as_staff
    assert AuditEvent.objects.get(kind="invitation_sent").detail == "link"


def test_the_link_page_has_a_copy_button_that_needs_javascript(staff_client):
    page = invite(staff_client)[0].content.decode()
    assert '<button type="button" class="secondary" data-copy="invitation-link" hidden>Copy</button>' in page
    assert re.search(r'<script src="/static/js/copy\.js" defer>', page)
    assert 'readonly' in page  # the link stays selectable text without JavaScript


def test_a_mail_that_cannot_be_sent_still_shows_the_link(staff_client, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(invites, "send_mail", refuse)
    response, invitation, token = invite(staff_client, email="nina@example.com")
    page = response.content.decode()
    assert "The email could not be sent (ConnectionRefusedError)" in page and f"/join/{token}/" in page
    assert invitation.is_open
    assert AuditEvent.objects.get(kind="invitation_sent").detail == "nina@example.com, the email could not be sent"


@pytest.mark.parametrize("email, message", [
    ("not-an-address", "Enter a valid email address."),
    ("MARIA@example.com", "MARIA@example.com already belongs to maria, who can sign in already."),
])
def test_a_bad_address_is_refused_and_nothing_is_made(staff_client, email, message):
    make_member("maria", email="maria@example.com")
    response = staff_client.post(INVITATIONS, {"email": email})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Invitation.objects.exists() and mail.outbox == [] and not AuditEvent.objects.exists()


def test_the_list_shows_every_invitation_with_its_status(staff_client, staff, other):
    open_one, _ = Invitation.make(staff, email="open@example.com", as_staff=True)
    used, token = Invitation.make(staff, email="used@example.com")
    join(token, username="ulla")
    expired, _ = Invitation.make(staff)
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    revoked, _ = Invitation.make(staff, email="gone@example.com")
    invites.revoke(revoked, by=staff)
    page = staff_client.get(INVITATIONS).content.decode()

    def row(invitation):
        return re.search(rf'<tr id="invitation-{invitation.pk}".*?</tr>', page, re.S).group(0)

    assert 'data-state="open"' in row(open_one) and "staff</span>" in row(open_one) and "Revoke" in row(open_one)
    assert 'data-state="accepted"' in row(used) and "ulla" in row(used) and "Revoke" not in row(used)
    assert 'data-state="expired"' in row(expired) and ">Link<" in row(expired) and "Revoke" not in row(expired)
    assert 'data-state="revoked"' in row(revoked) and "Revoke<" not in row(revoked)
    assert all(">sam<" in row(invitation) for invitation in (open_one, used, expired, revoked))


# --- Who may -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, url", [("get", INVITATIONS), ("post", INVITATIONS), ("post", "/team/invitations/1/revoke/")])
def test_members_get_403_and_visitors_the_login_page(client, member, staff, method, url):
    Invitation.make(staff)
    anonymous = getattr(client, method)(url, {"email": ""})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(f"{reverse('login')}?next=")
    client.force_login(member)
    assert getattr(client, method)(url, {"email": ""}).status_code == 403
    assert Invitation.objects.count() == 1 and Invitation.objects.get().is_open


def test_revoking_takes_a_post(staff_client, staff):
    invitation, _ = Invitation.make(staff)
    assert staff_client.get(f"/team/invitations/{invitation.pk}/revoke/").status_code == 405
    invitation.refresh_from_db()
    assert invitation.is_open


# --- Joining ----------------------------------------------------------------------------------------------


def test_an_invitation_makes_one_member_who_lands_in_the_studio(staff, staff_client):
    _, invitation, token = invite(staff_client, email="nina@example.com")
    visitor = Client()
    form = visitor.get(f"/join/{token}/")
    assert form.status_code == 200 and 'name="password2"' in form.content.decode()
    assert "sam invited you" in form.content.decode()

    visitor, response = join(token, client=visitor)
    assert response.status_code == 302 and response["Location"] == reverse("studio")
    user = User.objects.get(username="newbie")
    assert user.email == "nina@example.com" and not user.is_staff and user.check_password(PASSWORD)
    studio = visitor.get(reverse("studio"))
    assert studio.status_code == 200 and studio.context["user"] == user
    assert "Welcome to lumaweb, newbie" in studio.content.decode()
    invitation.refresh_from_db()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    event = AuditEvent.objects.get(kind="invitation_accepted")
    assert event.member == user and event.actor_user == user and "invited by sam" in event.detail

    # Second use, by anyone: refused, nothing made.
    again, second = join(token, username="sneaky")
    assert second.status_code == 410
    assert "already used" in second.content.decode() and 'name="password1"' not in second.content.decode()
    assert again.get(f"/join/{token}/").status_code == 410
    assert not User.objects.filter(username="sneaky").exists()
    assert AuditEvent.objects.filter(kind="invitation_accepted").count() == 1


def test_a_staff_invitation_makes_staff(staff_client):
    _, _, token = invite(staff_client, as_staff=True)
    visitor, response = join(token, username="stella")
    assert response.status_code == 302
    assert User.objects.get(username="stella").is_staff
    assert visitor.get(INVITATIONS).status_code == 200


def test_an_expired_invitation_is_refused_and_says_whom_to_ask(staff):
    invitation, token = Invitation.make(staff)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    page = Client().get(f"/join/{token}/")
    assert page.status_code == 410
    text = page.content.decode()
    assert "This invitation has expired" in text and "Ask sam" in text and "<form method=\"post\">" not in text
    assert join(token)[1].status_code == 410
    assert not User.objects.filter(username="newbie").exists()


def test_an_invitation_works_until_it_expires(staff):
    invitation, token = Invitation.make(staff)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() + timedelta(minutes=1))
    assert join(token)[1].status_code == 302


def test_invitations_expire_after_the_configured_days(staff, settings):
    settings.INVITATION_DAYS = 2
    invitation, _ = Invitation.make(staff)
    assert timedelta(days=2) - timedelta(minutes=1) < invitation.expires_at - timezone.now() <= timedelta(days=2)


def test_a_revoked_invitation_is_refused(staff_client, staff):
    invitation, token = Invitation.make(staff, email="nina@example.com")
    response = staff_client.post(f"/team/invitations/{invitation.pk}/revoke/", follow=True)
    assert "Invitation for nina@example.com revoked" in response.content.decode()
    event = AuditEvent.objects.get(kind="invitation_revoked")
    assert event.actor_user == staff and event.detail == "nina@example.com"

    page = Client().get(f"/join/{token}/")
    assert page.status_code == 410 and "This invitation was withdrawn" in page.content.decode()
    assert join(token)[1].status_code == 410 and not User.objects.filter(username="newbie").exists()

    again = staff_client.post(f"/team/invitations/{invitation.pk}/revoke/", follow=True)
    assert "already revoked: nothing changed" in again.content.decode()
    assert AuditEvent.objects.filter(kind="invitation_revoked").count() == 1


def test_a_used_invitation_cannot_be_revoked(staff_client, staff):
    invitation, token = Invitation.make(staff)
    join(token)
    response = staff_client.post(f"/team/invitations/{invitation.pk}/revoke/", follow=True)
    assert "already accepted: nothing changed" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.revoked_at is None and User.objects.get(username="newbie").is_active


def test_an_unknown_link_is_404_without_a_form():
    page = Client().get("/join/not-a-real-token/")
    assert page.status_code == 404
    assert "This invitation link is not valid" in page.content.decode() and "password1" not in page.content.decode()
    assert join("not-a-real-token")[1].status_code == 404 and not User.objects.filter(username="newbie").exists()


def test_two_accepts_of_the_same_invitation_make_one_user(staff):
    """Both read it open; the conditional UPDATE lets one of them through."""
    invitation, _ = Invitation.make(staff)
    first, second = Invitation.objects.get(pk=invitation.pk), Invitation.objects.get(pk=invitation.pk)
    invites.accept(first, "first", PASSWORD)
    with pytest.raises(invites.InvitationClosed):
        invites.accept(second, "second", PASSWORD)
    assert list(User.objects.filter(username__in=["first", "second"]).values_list("username", flat=True)) == ["first"]


def test_a_username_taken_meanwhile_leaves_the_invitation_open(staff):
    invitation, _ = Invitation.make(staff)
    make_member("taken")
    with pytest.raises(invites.UsernameTaken):
        invites.accept(invitation, "taken", PASSWORD)
    invitation.refresh_from_db()
    assert invitation.is_open and invitation.accepted_by is None


@pytest.mark.parametrize("username, password, confirm, message", [
    ("maria", PASSWORD, None, "A user with that username already exists."),
    ("Maria", PASSWORD, None, "A user with that username already exists."),
    ("newbie", PASSWORD, "something-else-entirely", "The two password fields didn"),
    ("newbie", "short", None, "This password is too short."),
    ("newbie", "password123", None, "This password is too common."),
    ("new bie!", PASSWORD, None, "Enter a valid username."),
])
def test_bad_choices_are_refused_and_the_invitation_stays_open(staff, member, username, password, confirm, message):
    invitation, token = Invitation.make(staff)
    _, response = join(token, username=username, password=password, confirm=confirm)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert User.objects.count() == 2
    invitation.refresh_from_db()
    assert invitation.is_open


def test_a_signed_in_member_is_told_to_sign_out_first(signed_in, staff):
    invitation, token = Invitation.make(staff)
    page = signed_in.get(f"/join/{token}/")
    text = page.content.decode()
    assert page.status_code == 200 and "Sign out first" in text and "signed in as <strong>maria</strong>" in text
    assert 'name="password1"' not in text
    signed_in.post(f"/join/{token}/", {"username": "second-me", "password1": PASSWORD, "password2": PASSWORD})
    assert not User.objects.filter(username="second-me").exists()
    invitation.refresh_from_db()
    assert invitation.is_open


def test_there_is_no_open_sign_up(client):
    for url in ("/signup/", "/accounts/signup/", "/register/", "/accounts/register/", "/join/"):
        assert client.get(url).status_code == 404


# --- The admin --------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, staff):
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="team", codename__endswith="invitation"))
    client.force_login(staff)
    return client


def test_the_admin_lists_invitations_read_only(admin_client, staff):
    invitation, _ = Invitation.make(staff, email="nina@example.com")
    listing = admin_client.get("/admin/team/invitation/")
    assert listing.status_code == 200 and "nina@example.com" in listing.content.decode()
    assert "Invite someone (on the team page)" in listing.content.decode()
    page = admin_client.get(f"/admin/team/invitation/{invitation.pk}/change/")
    assert page.status_code == 200
    assert 'name="email"' not in page.content.decode() and 'name="_save"' not in page.content.decode()
    assert admin_client.get("/admin/team/invitation/add/").status_code == 403
    assert admin_client.get(f"/admin/team/invitation/{invitation.pk}/delete/").status_code == 403


def test_staff_revoke_from_the_admin(admin_client, staff):
    open_one, _ = Invitation.make(staff, email="open@example.com")
    used, token = Invitation.make(staff, email="used@example.com")
    join(token)
    response = admin_client.post("/admin/team/invitation/", {
        "action": "revoke", "_selected_action": [open_one.pk, used.pk]}, follow=True)
    text = response.content.decode()
    assert "Revoked 1 invitation: open@example.com." in text and "1 were not open" in text
    open_one.refresh_from_db()
    used.refresh_from_db()
    assert open_one.revoked_at is not None and used.revoked_at is None
    assert AuditEvent.objects.get(kind="invitation_revoked").actor_user == staff


# --- The token stays secret -------------------------------------------------------------------------------


def test_the_token_is_only_on_the_creation_page_and_in_the_email(admin_client, staff, log_records):
    created, invitation, token = invite(admin_client, email="nina@example.com", as_staff=True)
    assert token in created.content.decode() and token in mail.outbox[0].body
    _, unused_token = invite(admin_client)[1:]
    revoked, revoked_token = invite(admin_client)[1:]
    admin_client.post(f"/team/invitations/{revoked.pk}/revoke/")

    visitor = Client()
    shown = [
        visitor.get(f"/join/{token}/"),                    # the form itself does not spell out its address
        join(token, client=visitor)[1],
        visitor.get(reverse("studio")),
        Client().get(f"/join/{token}/"),                   # used: 410
        Client().get(f"/join/{revoked_token}/"),           # revoked: 410
        join(unused_token, password="short")[1],           # refused form: 422
        Client().get(f"/join/{token}x/"),                  # unknown: 404
        Client().put(f"/join/{unused_token}/"),            # 405
        admin_client.get(INVITATIONS),
        admin_client.get("/admin/team/invitation/"),
        admin_client.get(f"/admin/team/invitation/{invitation.pk}/change/"),
    ]
    tokens = [token, unused_token, revoked_token]
    digests = list(Invitation.objects.values_list("token_digest", flat=True))
    for response in shown:
        body = response.content.decode()
        assert not any(secret in body for secret in tokens + digests), response.request["PATH_INFO"]
    for event in AuditEvent.objects.all():
        assert not any(secret in event.detail for secret in tokens + digests), event.kind
    for model in apps.get_models():  # nothing stores it either (django-axes keeps each sign-in's path)
        for field in model._meta.get_fields():
            if isinstance(field, (CharField, TextField)) and not field.is_relation:
                for secret in tokens:
                    assert not model._default_manager.filter(**{f"{field.name}__contains": secret}).exists(), field
    assert log_records, "the refused links were logged (without their token)"
    for record in log_records:
        text = record.getMessage() + (record.exc_text or "")
        assert not any(secret in text for secret in tokens), text


def test_the_access_log_line_of_a_join_link_is_redacted():
    from modify.logfilters import redact

    assert redact('"GET /join/s3cr3t-T0ken/ HTTP/1.1" 200') == '"GET /join/[redacted]/ HTTP/1.1" 200'


# --- In a browser ---------------------------------------------------------------------------------------


@pytest.mark.browser
def test_staff_copy_the_link_and_the_invitee_joins_on_a_phone(app, browser, staff):
    """The copy button copies the shown link; the invitee joins on a 375 px screen that never scrolls sideways."""
    from playwright.sync_api import expect

    staff.set_password(PASSWORD)
    staff.save()
    desk = browser.new_context(base_url=app.url)
    desk.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    page = desk.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/accounts/login/?next=/team/invitations/")
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Team invitations")).to_be_visible()
    page.get_by_role("button", name="Invite").click()
    link = page.get_by_label("Invitation link").input_value()
    assert link.startswith(f"{app.url}/join/")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    expect(page.locator("#invitation-link-status")).to_have_text("Link copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == link
    page.reload()  # the list, without the link: it was shown once
    assert link.split("/join/")[1] not in page.content()
    assert problems == []
    desk.close()

    phone = browser.new_context(viewport={"width": 375, "height": 740})
    page = phone.new_page()
    page.goto(link)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.get_by_label("Username").fill("nina")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_text("Welcome to lumaweb, nina")).to_be_visible()
    assert page.url == f"{app.url}/"
    page.goto(f"{app.url}/profile/")
    expect(page.get_by_role("heading", name="nina")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    phone.close()


@pytest.mark.browser
def test_the_invitations_list_fits_a_phone(app, browser, staff):
    for number in range(3):
        Invitation.make(staff, email=f"someone.with.a.rather.long.address.{number}@example-company.com", as_staff=True)
    phone = browser.new_context(viewport={"width": 375, "height": 740})
    session = Client()
    session.force_login(staff)
    phone.add_cookies([{"name": "sessionid", "value": session.cookies["sessionid"].value, "url": app.url}])
    page = phone.new_page()
    page.goto(f"{app.url}{INVITATIONS}")
    assert page.locator("tr.invitation").count() == 3
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    phone.close()
