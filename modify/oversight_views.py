"""Staff actions on a task, from its page or its admin page: one POST per action (``modify.oversight``).

The answer is a message and a redirect back where the button was: the task
page, or the page named by ``?next=`` (the admin's task page), if it is a
path on this site.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from modify import oversight
from modify.models import ModifyTask
from team.access import staff_required


@staff_required
@require_POST
def task_action(request, pk, action):
    if action not in oversight.ACTIONS:
        raise Http404("No such staff action.")
    task = get_object_or_404(ModifyTask.objects.select_related("owner", "api_key"), pk=pk)
    outcome = oversight.run(action, task, request.user)
    (messages.success if outcome.ok else messages.error)(request, outcome.message)
    return redirect(_back(request, task))


def _back(request, task):
    """``next`` when it is a path on this site, else the task's page."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts=set(), require_https=False):
        return target
    return reverse("task-detail", args=[task.pk])
