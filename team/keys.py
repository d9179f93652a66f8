"""Provider keys, personal and the team's: adding one only once the provider accepts it, revoking,
and knowing each key's credits.

A secret is in clear only on its way from the form to the encrypted field
and in the requests that ask the provider about it: pages show a key as its
label, ``••••`` and its last four characters; events carry the label; logs
the key's id and that mask. Revoking closes a key to new tasks only: tasks in
flight keep polling with it (``modify.backend.client_for`` reads the key they
were created with, whether open or not).

Credits: ``refresh_credits`` (the django-q2 schedule, every
``LUMA_CREDITS_REFRESH_MINUTES``) asks the provider for every open key and
stores ``last_credits``. A key is *low* at or below ``LUMA_LOW_CREDITS``; the
moment it becomes low is an ``AuditEvent("key_low")`` (once, until it is
topped up above the threshold), and staff see a banner while it stays low.
The key from the environment (``LUMA_API_KEY``, or the sandbox's in sandbox
mode) has no row: its last answer is kept in Django's cache under
``ENVIRONMENT_CREDITS_CACHE_KEY`` as ``{"credits", "checked_at", "masked"}``
(with the local-memory cache, used while ``REDIS_URL`` is unset, each
process has its own: the web process then knows it only once staff press
"check credits now" on the Keys page).
"""

import logging
from collections import Counter

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from modify import backend
from modify.models import ApiKey
from team.key_forms import KeyForm, KeyRefused, ask_credits, refusal
from team.models import AuditEvent

log = logging.getLogger(__name__)

ENVIRONMENT_CREDITS_CACHE_KEY = "team:environment-key-credits"
ENVIRONMENT = "environment"  # the key field of the "check credits now" form for the environment's key
PAGE = "team/keys/list.html"


# --- Credits -----------------------------------------------------------------------------------

def is_low(credits):
    return credits is not None and credits <= settings.LUMA_LOW_CREDITS


def record_credits(api_key, credits):
    """Store a key's credits as just counted; True (and a "key_low" event) if that made it low.

    The event is written only by the update that moved the key from "not known to be low" to low,
    so two refreshes at once cannot both log it.
    """
    now, rows = timezone.now(), ApiKey.objects.filter(pk=api_key.pk)
    with transaction.atomic():
        fell = is_low(credits) and rows.filter(
            Q(last_credits__isnull=True) | Q(last_credits__gt=settings.LUMA_LOW_CREDITS)
        ).update(last_credits=credits, credits_checked_at=now)
        if fell:
            _log_low(api_key, credits)
        else:
            rows.update(last_credits=credits, credits_checked_at=now)
    api_key.last_credits, api_key.credits_checked_at = credits, now
    return bool(fell)


def _log_low(api_key, credits, detail=None):
    AuditEvent.log("key_low", api_key=api_key, member=api_key.owner if api_key else None,
                   detail=detail or f"{credits} credits left (low at {settings.LUMA_LOW_CREDITS} or fewer)")


def _secret_of(api_key):
    try:
        return api_key.secret
    except ValueError as error:
        raise KeyRefused(refusal(error)) from None


def check_credits(api_key):
    """Ask the provider now for one key's credits and store them; KeyRefused says why not."""
    credits = ask_credits(_secret_of(api_key))
    record_credits(api_key, credits)
    return credits


def environment_secret():
    """The key tasks spend when no stored key is open to them: ``LUMA_API_KEY``, or in sandbox mode the
    sandbox's first key; None when there is none."""
    if settings.LUMA_API_KEY:
        return settings.LUMA_API_KEY
    if backend.uses_sandbox() and settings.SANDBOX_API_KEYS:
        return settings.SANDBOX_API_KEYS[0]
    return None


def environment_credits():
    """The environment key's last count: ``{"credits", "checked_at", "masked"}``, or None if never counted."""
    return cache.get(ENVIRONMENT_CREDITS_CACHE_KEY)


def check_environment_credits():
    """Count the environment key's credits and cache them; KeyRefused says why not; None without such a key."""
    secret = environment_secret()
    if secret is None:
        cache.delete(ENVIRONMENT_CREDITS_CACHE_KEY)
        return None
    credits, masked = ask_credits(secret), f"••••{secret[-4:]}"
    before = environment_credits()
    cache.set(ENVIRONMENT_CREDITS_CACHE_KEY, {"credits": credits, "checked_at": timezone.now(), "masked": masked},
              timeout=None)
    if is_low(credits) and not (before and before.get("masked") == masked and is_low(before.get("credits"))):
        _log_low(None, credits, detail=f"The environment's key {masked}: {credits} credits left "
                                       f"(low at {settings.LUMA_LOW_CREDITS} or fewer)")
    return credits


def refresh_credits():
    """Count the credits of every open key, and of the environment's; one key's failure stops no other.

    Returns how many keys were checked and how many failed (the environment's included), and how many
    stored keys became low: the job's result, as django-q2 keeps it.
    """
    counts = Counter(checked=0, failed=0, low=0)
    for api_key in ApiKey.objects.filter(is_active=True).select_related("owner").order_by("pk"):
        try:
            became_low = record_credits(api_key, ask_credits(_secret_of(api_key)))
        except Exception as error:  # noqa: BLE001 - one key's trouble must not stop the others
            counts["failed"] += 1
            log.warning("Credits of API key %s (%s) not refreshed: %s", api_key.pk, api_key.masked, _why(error))
            continue
        counts["checked"] += 1
        counts["low"] += became_low
    try:
        counts["checked"] += check_environment_credits() is not None
    except Exception as error:  # noqa: BLE001
        counts["failed"] += 1
        log.warning("Credits of the environment's API key not refreshed: %s", _why(error))
    return dict(counts)


def _why(error):
    """A refusal says itself (in member words, without the key); anything else only by its type."""
    return str(error) if isinstance(error, KeyRefused) else f"unexpected {type(error).__name__}"


def low_credit_keys():
    """Open keys at or below ``LUMA_LOW_CREDITS``: lazy, one query when read."""
    return (ApiKey.objects.filter(is_active=True, last_credits__lte=settings.LUMA_LOW_CREDITS)
            .select_related("owner").defer("secret_encrypted").order_by("last_credits", "label"))


def low_environment_credits():
    """The environment key's last count, if it is low."""
    counted = environment_credits()
    return counted if counted and is_low(counted.get("credits")) else None


# --- Adding and revoking -------------------------------------------------------------------------

def add_key(owner, label, secret, credits, by):
    """Store a key the provider has just accepted (with the ``credits`` it counted); logs "key_added"."""
    with transaction.atomic():
        api_key = ApiKey(owner=owner, label=label, created_by=by, last_credits=credits,
                         credits_checked_at=timezone.now())
        api_key.secret = secret
        api_key.save()
        AuditEvent.log("key_added", by=by, member=owner, api_key=api_key, detail=label)
        if is_low(credits):
            _log_low(api_key, credits)
    return api_key


def revoke(api_key, by):
    """Close a key to new tasks (tasks in flight keep it); True if this call revoked it."""
    with transaction.atomic():
        won = ApiKey.objects.filter(pk=api_key.pk, is_active=True).update(is_active=False, revoked_at=timezone.now())
        if won:
            AuditEvent.log("key_revoked", by=by, member=api_key.owner, api_key=api_key, detail=api_key.label)
    api_key.refresh_from_db(fields=["is_active", "revoked_at"])
    return bool(won)


# --- The page -------------------------------------------------------------------------------------

def _listed(keys):
    """Keys as the page shows them: never the ciphertext, with what each has spent."""
    return (keys.defer("secret_encrypted").select_related("created_by").annotate(tasks_spent=Count("tasks"), credits_spent=Sum("tasks__credits"))
            .order_by("-is_active", "label", "pk"))


def _context(request, personal_form=None, team_form=None, **extra):
    user = request.user
    team_keys = ApiKey.objects.filter(owner__isnull=True)
    if not user.is_staff:
        team_keys = team_keys.filter(is_active=True)
    context = {
        "my_keys": _listed(ApiKey.objects.filter(owner=user)),
        "team_keys": _listed(team_keys),
        "personal_form": personal_form or KeyForm(owner=user, prefix="personal"),
        "team_form": (team_form or KeyForm(prefix="team")) if user.is_staff else None,
        "environment": environment_credits() if user.is_staff else None,
        "environment_key_set": environment_secret() is not None,
        "low_credits": settings.LUMA_LOW_CREDITS,
        **extra,
    }
    return context


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def key_list(request):
    """The Keys page; its forms post here: ``action=add`` (``scope`` personal or team) or ``action=check``."""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "add":
            return _add(request, team=request.POST.get("scope") == "team")
        if action == "check":
            return _check(request)
        return HttpResponseBadRequest("Unknown action.")
    return render(request, PAGE, _context(request))


def _add(request, team):
    if team and not request.user.is_staff:
        raise PermissionDenied("Only staff can add team keys.")
    owner, prefix = (None, "team") if team else (request.user, "personal")
    form = KeyForm(request.POST, owner=owner, prefix=prefix)
    fragment = f"{PAGE}#{prefix}-keys"
    if not form.is_valid():
        forms = {f"{prefix}_form": form}
        if request.htmx:
            return render(request, fragment, _context(request, **forms))
        return render(request, PAGE, _context(request, **forms), status=422)
    data = form.cleaned_data
    api_key = add_key(owner, data["label"], data["secret"], form.credits, by=request.user)
    added = f"Key “{api_key.label}” ({api_key.masked}) added: kie.ai counts {form.credits} credits on it."
    if request.htmx:
        return render(request, fragment, _context(request, added=added))
    messages.success(request, added)
    return redirect("keys")


def _check(request):
    """Staff: ask the provider now for one key's credits (``key``: its id, or "environment")."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can check credits.")
    which = request.POST.get("key", "")
    try:
        if which == ENVIRONMENT:
            credits, name = check_environment_credits(), "The environment's key"
        else:
            api_key = get_object_or_404(ApiKey, pk=which if which.isdigit() else None)
            credits, name = check_credits(api_key), f"“{api_key.label}” ({api_key.masked})"
    except KeyRefused as refused:
        messages.error(request, f"Credits not checked: {refused}")
    else:
        if credits is None:
            messages.error(request, "No key is set in the environment.")
        else:
            messages.success(request, f"{name}: {credits} credits left.")
    return redirect("keys")


@login_required
@require_POST
def revoke_key(request, pk):
    """Revoke my own key; staff also the team's. Anyone else's key does not exist here (404)."""
    mine = Q(owner=request.user) | (Q(owner__isnull=True) if request.user.is_staff else Q(pk__in=[]))
    api_key = get_object_or_404(ApiKey.objects.filter(mine).defer("secret_encrypted"), pk=pk)
    if revoke(api_key, by=request.user):
        messages.success(request, f"Key “{api_key.label}” ({api_key.masked}) revoked: no new task will use it; "
                                  "tasks already under way finish with it.")
    else:
        messages.info(request, f"Key “{api_key.label}” ({api_key.masked}) was already revoked.")
    return redirect("keys")
