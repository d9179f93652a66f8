"""Who may open what: members sign in; staff pages answer 403 to members, never a redirect loop."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied


def staff_required(view):
    """Signed-in staff only: anonymous visitors go to the login page, members get 403."""

    @login_required
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can open this page.")
        return view(request, *args, **kwargs)

    return guarded
