"""Stub: the Keys page (being built)."""
from django.http import HttpResponse


def _todo(request, *args, **kwargs):
    return HttpResponse("Not built yet.", status=501)


key_list = revoke_key = _todo
