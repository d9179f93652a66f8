"""Stub: the audit list and its CSV export (being built)."""
from django.http import HttpResponse


def _todo(request, *args, **kwargs):
    return HttpResponse("Not built yet.", status=501)


audit_list = audit_csv = _todo
