"""Members' own pages (joining, profile, password) and the staff page that invites them.

Thin views over ``team.invitations`` and ``team.quotas``. A join link's
token lives in the URL, so the join view keeps it out of the page (its form
posts back to the same address without naming it) and out of Django's
request log, which would print the path of every refused link.
"""

import logging
from functools import wraps

from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import PasswordChangeView
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from modify.models import ApiKey, ModifyTask
from team import invitations as invites
from team import quotas
from team.access import staff_required
from team.models import AuditEvent, Invitation

log = logging.getLogger(__name__)

INVITATIONS_PER_PAGE = 50
# django-axes is the first authentication backend; a new member's first sign-in names the one that applies.
MODEL_BACKEND = "lumaweb.auth.CachedModelBackend"
JOIN_PATH_SHOWN = "/join/[token]/"


# --- Joining ------------------------------------------------------------------------------------------


class JoinForm(UserCreationForm):
    """Username and password twice, checked by Django's password validators; nothing else is asked."""


def _token_out_of_logs(view):
    """Django logs every 4xx with the request's path, which here holds the token: log the refusal without it."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code >= 400:
            log.warning("Join link answered %s (%s)", response.status_code, response.reason_phrase)
            response._has_been_logged = True  # read by django.utils.log.log_response
        return response

    return wrapped


@never_cache
@_token_out_of_logs
def accept_invitation(request, token):
    """An open invitation asks for a username and password, then signs the new member in."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])  # not require_http_methods: it logs the path
    invitation = invites.find(token)
    if invitation is None:
        return _closed(request, None, "unknown", status=404)
    state = invites.status(invitation)
    if state != invites.OPEN:
        return _closed(request, invitation, state)
    if request.user.is_authenticated:
        return render(request, "team/accounts/join_signed_in.html", {"invitation": invitation})
    form = JoinForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            user = invites.accept(invitation, form.cleaned_data["username"], form.cleaned_data["password1"])
        except invites.InvitationClosed:
            invitation.refresh_from_db()
            return _closed(request, invitation, invites.status(invitation))
        except invites.UsernameTaken:
            form.add_error("username", "A user with that username already exists.")
        else:
            _sign_in_without_the_token(request, user)
            messages.success(request, f"Welcome to lumaweb, {user.get_username()}. Your account is ready.")
            return redirect("studio")
    status = 422 if form.is_bound else 200
    return render(request, "team/accounts/join.html", {"invitation": invitation, "form": form}, status=status)


def _sign_in_without_the_token(request, user):
    """Sign the new member in; django-axes logs the path of every sign-in and keeps it (AccessLog), and
    this path holds the token: hand axes the route's name instead."""
    AxesProxyHandler.update_request(request)
    request.axes_path_info = JOIN_PATH_SHOWN
    login(request, user, backend=MODEL_BACKEND)


def _closed(request, invitation, state, status=410):
    return render(request, "team/accounts/join_closed.html", {"invitation": invitation, "state": state}, status=status)


# --- Profile and password -----------------------------------------------------------------------------


@login_required
@require_GET
def profile(request):
    """My own figures only: usage against my limits, my tasks, my keys."""
    spent = quotas.usage(request.user)
    limits, pending = spent.limits, spent.credits_pending
    usage_rows = [
        ("tasks-today", "Tasks today", spent.tasks_today, limits.tasks_per_day, spent.day_resets_at, ""),
        ("tasks-in-flight", "Tasks in flight", spent.tasks_in_flight, limits.tasks_in_flight, None, ""),
        ("credits-month", "Credits this month", spent.credits_this_month, limits.credits_per_month,
         spent.month_resets_at, f"+ {pending} on tasks not sent yet" if pending else ""),
    ]
    S = ModifyTask.State
    tasks = ModifyTask.objects.filter(owner=request.user).aggregate(
        total=Count("pk"), succeeded=Count("pk", filter=Q(state=S.SUCCEEDED)), failed=Count("pk", filter=Q(state=S.FAILED))
    )
    keys = ApiKey.objects.filter(owner=request.user).aggregate(
        total=Count("pk"), open=Count("pk", filter=Q(is_active=True))
    )
    context = {"usage_rows": usage_rows, "tasks": tasks, "keys": keys,
               "credits_per_task": settings.LUMA_CREDITS_PER_TASK}
    return render(request, "team/accounts/profile.html", context)


class PasswordChange(PasswordChangeView):
    """Django's own (old password, new one twice, the validators; the session stays signed in)."""

    template_name = "team/accounts/password_change.html"
    success_url = reverse_lazy("profile")

    def form_valid(self, form):
        response = super().form_valid(form)
        AuditEvent.log("password_changed", by=self.request.user, member=self.request.user)
        messages.success(self.request, "Your password was changed. You stay signed in here.")
        return response


# --- Staff: invitations -------------------------------------------------------------------------------


class InviteForm(forms.Form):
    email = forms.EmailField(
        required=False, label="Email address",
        help_text="We email the link there. Leave empty to make a link you hand over yourself.",
    )
    as_staff = forms.BooleanField(required=False, label="As staff", help_text="The new member can open the admin and the team pages.")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        taken = get_user_model().objects.filter(email__iexact=email).first() if email else None
        if taken is not None:
            raise forms.ValidationError(f"{email} already belongs to {taken.get_username()}, who can sign in already.")
        return email


def _public_base(request):
    """Where invitees reach the app: PUBLIC_BASE_URL when set, else the address this page was opened at."""
    return settings.PUBLIC_BASE_URL or request.build_absolute_uri("/")


@staff_required
@require_http_methods(["GET", "POST"])
def invitations(request):
    """Invite someone (their link is shown once, on the answer to that POST), and every invitation made."""
    made = None
    form = InviteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        made = invites.invite(request.user, base_url=_public_base(request), **form.cleaned_data)
        form = InviteForm()
    rows = Invitation.objects.select_related("created_by", "accepted_by")
    page = Paginator(rows, INVITATIONS_PER_PAGE).get_page(request.GET.get("page"))
    listed = [(invitation, invites.status(invitation)) for invitation in page.object_list]
    context = {"form": form, "made": made, "page": page, "invitations": listed,
               "invitation_days": settings.INVITATION_DAYS}
    status = 422 if form.is_bound and form.errors else 200
    response = render(request, "team/accounts/invitations.html", context, status=status)
    if made is not None:
        # The link is on this page only: no cache, no "back" that shows it again.
        response["Cache-Control"] = "no-store"
    return response


@staff_required
@require_POST
def revoke_invitation(request, pk):
    invitation = get_object_or_404(Invitation, pk=pk)
    if invites.revoke(invitation, by=request.user):
        messages.success(request, f"Invitation for {invitation} revoked: its link no longer works.")
    else:
        messages.error(request, f"The invitation for {invitation} is already {invites.status(invitation)}: nothing changed.")
    return redirect("invitations")
