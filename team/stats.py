"""Stub: stats (being built)."""
from django.http import HttpResponse


def _todo(request, *args, **kwargs):
    return HttpResponse("Not built yet.", status=501)


stats_page = stats_csv = _todo
