"""Invitations: the only way in besides the admin (open sign-up stays off).

Staff make an invitation (mailed to an address, or a link they hand over
themselves); the invitee opens it once, before it expires, picks a username
and a password and becomes a member (or staff, if the invitation says so).

The token exists in clear only in what ``invite`` returns and in the email:
the database keeps its digest, and nothing here logs, stores or raises it.
Accepting is one conditional UPDATE on "still open", so two people opening
the same link at the same moment make one account, not two.
"""

import logging
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from team import roles
from team.models import AuditEvent, Invitation, token_digest

log = logging.getLogger(__name__)

OPEN, ACCEPTED, REVOKED, EXPIRED = "open", "accepted", "revoked", "expired"


class InvitationClosed(Exception):
    """The invitation was used, revoked or expired before this accept could take it."""


class UsernameTaken(Exception):
    """Someone took the username between the form's check and the insert."""


@dataclass(frozen=True)
class Made:
    """A new invitation, its link (the one time it exists in clear), and how the email went."""

    invitation: Invitation
    link: str
    mail_error: str = ""


def status(invitation, now=None):
    """``open``, ``accepted``, ``revoked`` or ``expired``: what a visitor with the link finds."""
    if invitation.accepted_at is not None:
        return ACCEPTED
    if invitation.revoked_at is not None:
        return REVOKED
    if invitation.expires_at <= (now or timezone.now()):
        return EXPIRED
    return OPEN


def find(token):
    """The invitation behind ``token``, whatever its status, or None for a token never made."""
    return Invitation.objects.select_related("created_by").filter(token_digest=token_digest(token)).first()


def _still_open(now):
    return {"accepted_at__isnull": True, "revoked_at__isnull": True, "expires_at__gt": now}


def invite(by, *, base_url, email="", as_staff=False):
    """Make an invitation from ``by``; mail its link to ``email`` when given.

    ``base_url`` is where invitees reach the app (``https://host``). A mail
    that cannot be sent leaves the invitation in place: the page shows the
    link once, and staff hand it over themselves.
    """
    with transaction.atomic():
        invitation, token = Invitation.make(by, email=email, as_staff=as_staff)
    link = base_url.rstrip("/") + reverse("accept-invitation", args=[token])
    mail_error = ""
    if email:
        try:
            send_mail(_subject(invitation), _body(invitation, link), None, [email])
        except Exception as error:  # noqa: BLE001 - any mail failure is reported, the link still works
            mail_error = f"The email could not be sent ({type(error).__name__}): copy the link and send it yourself."
            log.warning("Invitation %s: the email to %s could not be sent (%s)", invitation.pk, email, type(error).__name__)
    detail = email or "link"
    if as_staff:
        detail += ", as staff"
    if mail_error:
        detail += ", the email could not be sent"
    AuditEvent.log("invitation_sent", by=by, detail=detail)
    return Made(invitation, link, mail_error)


def _subject(invitation):
    return "You are invited to lumaweb" + (" as staff" if invitation.as_staff else "")


def _body(invitation, link):
    expires = timezone.localtime(invitation.expires_at)
    return (
        f"{invitation.created_by.get_username()} invites you to lumaweb"
        f"{' as staff' if invitation.as_staff else ''}.\n\n"
        f"Open this link to pick your username and password:\n\n{link}\n\n"
        f"The link works once, and until {expires:%-d %b %Y at %H:%M} ({timezone.get_current_timezone_name()}).\n"
        f"If you did not expect this email, ignore it.\n"
    )


def accept(invitation, username, password, now=None):
    """Create the invitee's account and mark the invitation used: both, or neither.

    Raises ``InvitationClosed`` if the invitation is no longer open (another
    accept won, or staff revoked it meanwhile), ``UsernameTaken`` if the
    username went in the meantime; in both cases nothing was created.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            if not Invitation.objects.filter(pk=invitation.pk, **_still_open(now)).update(accepted_at=now):
                raise InvitationClosed()
            user = get_user_model().objects.create_user(username, email=invitation.email, password=password)
            if invitation.as_staff:
                roles.make_staff(user)
            Invitation.objects.filter(pk=invitation.pk).update(accepted_by=user)
            AuditEvent.log(
                "invitation_accepted", by=user, member=user,
                detail=f"invited by {invitation.created_by.get_username()}" + (", as staff" if invitation.as_staff else ""),
            )
    except IntegrityError as error:
        raise UsernameTaken() from error
    invitation.refresh_from_db()
    return user


def revoke(invitation, by, now=None):
    """Close an open invitation; True if this call closed it, False if it was no longer open."""
    now = now or timezone.now()
    with transaction.atomic():
        if not Invitation.objects.filter(pk=invitation.pk, **_still_open(now)).update(revoked_at=now):
            return False
        AuditEvent.log("invitation_revoked", by=by, detail=str(invitation))
    invitation.refresh_from_db()
    return True
