"""The studio, task pages, gallery and the provider's callback: thin views over the domain.

Pages define their swappable fragments inline (``{% partialdef %}``) and a
view renders ``page.html#fragment`` for htmx requests; every link keeps a
real ``href`` so the pages also work without JavaScript.
"""

import logging
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from modify import callbacks, intake, live
from modify.forms import TaskForm
from modify.models import ModifyTask
from team.quotas import QuotaExceeded

log = logging.getLogger(__name__)

# htmx stops polling when a response has this status, and swaps nothing on a 204.
HTMX_STOP_POLLING = 286
NOTHING_CHANGED = 204
STUDIO_TASKS = 30
GALLERY_PAGE_SIZE = 24


def _remix_source(request, remix_id):
    """A succeeded task the user may see, whose result becomes a new source."""
    try:
        remix_id = uuid.UUID(str(remix_id))
    except ValueError:
        return None
    return ModifyTask.objects.visible_to(request.user).succeeded().filter(pk=remix_id).first()


def _studio_context(request, form):
    page = Paginator(ModifyTask.objects.filter(owner=request.user).select_related("api_key"), STUDIO_TASKS).get_page(request.GET.get("page"))
    tasks = list(page.object_list)
    return {"form": form, "tasks": tasks, "page": page, "polling": any(not task.is_terminal for task in tasks)}


@login_required
@require_GET
def studio(request):
    remix_of = _remix_source(request, request.GET.get("remix"))
    form = TaskForm(user=request.user, remix_of=remix_of, initial={"prompt": remix_of.prompt if remix_of else ""})
    context = _studio_context(request, form)
    context["remix_unavailable"] = bool(request.GET.get("remix")) and remix_of is None
    return render(request, "modify/studio.html", context)


@login_required
@require_POST
def create_task(request):
    remix_of = _remix_source(request, request.POST.get("remix_of"))
    form = TaskForm(request.POST, request.FILES, user=request.user, remix_of=remix_of)
    if not form.is_valid():
        return _form_refused(request, form)
    data = form.cleaned_data
    try:
        task = intake.accept(
            request.user,
            data["prompt"],
            upload=data.get("video"),
            url=data.get("video_url", ""),
            watermark=data.get("watermark", ""),
            duration=getattr(form, "video_duration", None),
            remix_of=remix_of,
            api_key=data.get("key"),
        )
    except QuotaExceeded as refused:
        # Another submission of this member got in first (the form's check passed before it committed).
        form.add_error(None, str(refused))
        return _form_refused(request, form)
    if not request.htmx:
        return redirect("studio")
    return render(request, "modify/studio.html#created", {"form": TaskForm(user=request.user), "task": task})


def _form_refused(request, form):
    template = "modify/studio.html#task-form" if request.htmx else "modify/studio.html"
    return render(request, template, _studio_context(request, form), status=200 if request.htmx else 422)


@login_required
@require_GET
def live_status(request):
    """The studio page's one poll for all its cards in flight (``modify.live``): 204 when none
    changed, else the changed cards out of band; 286 once none is in flight, so htmx stops."""
    if not request.htmx:
        return redirect("studio")  # a plain visit: the page itself shows the current states
    try:
        shown = live.parse_since(request.GET.getlist("since"))
    except live.BadSince as refused:
        return HttpResponseBadRequest(str(refused), content_type="text/plain; charset=utf-8")
    changes = live.changes(request.user, shown)
    if not changes.cards:
        return HttpResponse(status=NOTHING_CHANGED if changes.in_flight else HTMX_STOP_POLLING)
    return render(request, "modify/studio.html#live-cards", {"tasks": changes.cards},
                  status=200 if changes.in_flight else HTMX_STOP_POLLING)


@login_required
@require_GET
def task_status(request, pk):
    """One status card (the studio's per-card poll before ``live_status``, kept for pages
    still open from then): it polls itself; 286 once terminal so htmx stops polling."""
    task = get_object_or_404(ModifyTask.objects.select_related("api_key"), pk=pk, owner=request.user)
    response = render(request, "modify/studio.html#task-card", {"task": task, "legacy_polling": True})
    if task.is_terminal and request.htmx:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_GET
def task_detail(request, pk):
    task = get_object_or_404(ModifyTask.objects.visible_to(request.user).select_related("owner", "remix_of", "api_key"), pk=pk)
    return render(request, "modify/task_detail.html", {"task": task})


@login_required
@require_POST
def task_share(request, pk):
    task = get_object_or_404(ModifyTask.objects.succeeded(), pk=pk, owner=request.user)
    task.set_shared(request.POST.get("shared") == "1", by=request.user)
    return redirect("task-detail", pk=task.pk)


@login_required
@require_POST
def task_retry(request, pk):
    """Submit a failed task of mine again, as a new task."""
    task = get_object_or_404(ModifyTask.objects.failed(), pk=pk, owner=request.user)
    try:
        intake.retry(task, by=request.user)
    except (intake.SourceGone, QuotaExceeded) as refused:
        messages.error(request, str(refused))
        return redirect("task-detail", pk=task.pk)
    return redirect("studio")


@login_required
@require_GET
def gallery(request):
    results = ModifyTask.objects.in_gallery().select_related("owner").order_by("-finished_at", "-pk")
    page = Paginator(results, GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "modify/gallery.html", {"page": page})


@csrf_exempt
@require_POST
def callback(request, token):
    """The provider's callback: the task is found by the secret in the URL; the lifecycle does the rest.
    Answers in milliseconds (it only writes rows and enqueues)."""
    task = ModifyTask.objects.filter(callback_token=token).first()
    if task is None:
        log.warning("callback rejected: unknown token")
        return JsonResponse({"ok": False, "error": "unknown callback URL"}, status=404)
    outcome = callbacks.receive(task, request.body, request.headers)
    if not outcome.accepted:
        log.warning("callback for task %s rejected: %s", task.pk, outcome.reason)
        return JsonResponse({"ok": False, "error": outcome.reason}, status=outcome.status)
    return JsonResponse({"ok": True})
