"""Stub: invitations, accepting one, the profile page and password change (being built)."""
from django.contrib.auth.views import PasswordChangeView
from django.http import HttpResponse


def _todo(request, *args, **kwargs):
    return HttpResponse("Not built yet.", status=501)


accept_invitation = profile = invitations = revoke_invitation = _todo


class PasswordChange(PasswordChangeView):
    pass
