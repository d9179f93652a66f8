"""The provider's callback: authenticate, note, enqueue; answer 200 in milliseconds.

A callback is only a hint (``lifecycle.finalize`` confirms with record-info),
but it still has to prove itself: the URL carries a per-task secret, and when
``LUMA_WEBHOOK_HMAC_KEY`` is set the signature and its timestamp must be
valid. Anything else is rejected and changes nothing. The same callback
delivered five times enqueues one finalization; one that arrives before the
generate call returned records the provider's task id itself.
"""

import json
import logging

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from modify import lifecycle, webhooks
from modify.jobs import enqueue_finalize
from modify.models import ModifyTask

log = logging.getLogger(__name__)


def _reject(status, reason):
    return JsonResponse({"ok": False, "error": reason}, status=status)


@csrf_exempt
@require_POST
def callback(request, token):
    task = ModifyTask.objects.filter(callback_token=token).first()
    if task is None:
        log.warning("callback rejected: unknown token")
        return _reject(404, "unknown callback URL")
    try:
        body = json.loads(request.body)
        provider_task_id = body["data"]["taskId"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        return _reject(400, "malformed callback body")
    if not isinstance(provider_task_id, str) or not 0 < len(provider_task_id) <= 64:
        return _reject(400, "malformed taskId")
    if settings.LUMA_WEBHOOK_HMAC_KEY:
        problem = webhooks.signature_problem(
            settings.LUMA_WEBHOOK_HMAC_KEY,
            provider_task_id,
            request.headers.get("X-Webhook-Timestamp", ""),
            request.headers.get("X-Webhook-Signature", ""),
            settings.LUMA_CALLBACK_MAX_AGE_SECONDS,
        )
        if problem:
            log.warning("callback for task %s rejected: %s", task.pk, problem)
            return _reject(403, problem)
    if task.provider_task_id and task.provider_task_id != provider_task_id:
        log.warning("callback for task %s rejected: taskId does not match", task.pk)
        return _reject(400, "taskId does not match this task")
    first = task.record_callback()
    if not task.provider_task_id and task.state in (ModifyTask.State.QUEUED, ModifyTask.State.SUBMITTING):
        # Early: generate has not answered (or never will). The signed callback
        # for this task's secret URL names its provider task; record-info confirms.
        if lifecycle.adopt_from_callback(task, provider_task_id):
            enqueue_finalize(task)
            return JsonResponse({"ok": True})
        task.refresh_from_db()  # submit recorded it meanwhile
    if first and task.state == ModifyTask.State.GENERATING:
        enqueue_finalize(task)
    return JsonResponse({"ok": True})
