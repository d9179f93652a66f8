"""Stub: staff actions on a task's page (being built)."""
from django.http import HttpResponse


def task_action(request, pk, action):
    return HttpResponse("Not built yet.", status=501)
