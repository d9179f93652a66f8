"""The sandbox's generation jobs, run on its own django-q2 cluster (``sandbox.schedules``).

``generate(task_id)`` holds a worker only while it renders, never to wait:

1. decide the outcome: an injected create or generation failure, else a
   real transform of the source (a grade from the prompt, the watermark);
   a crash of the transform itself is a failure too;
2. release it at once if the task is due, else enqueue its release for
   ``task.due_at`` (``SANDBOX_MIN_SECONDS`` after creation, so that clients
   see a task in flight as they would upstream).

``release(task_id, outcome)``:

3. record the outcome once (``Task.finish`` is a conditional UPDATE),
   refunding credits on failure;
4. deliver the signed callback (once, several times, or not at all per the
   task's faults) and report successFlag 4 when delivery failed.
"""

import logging
import os

import requests
from django.conf import settings
from django.core.files import File
from django.utils import timezone
from urllib3.exceptions import LocationValueError

from modify import webhooks
from modify.storage import local_copy
from modify.video_probe import MediaError, temp_path
from sandbox import faults, schedules
from sandbox.effects import transform_video
from sandbox.models import Task

log = logging.getLogger(__name__)
CALLBACK_TIMEOUT = 15


def generate(task_id, wait=True):
    """Render ``task_id`` now; its outcome shows at its due time (at once when not ``wait``: the
    ``callback_early`` fault, whose callback comes before generate answers)."""
    task = Task.objects.filter(task_id=task_id).first()
    if task is None or task.success_flag != Task.Flag.GENERATING:
        return
    outcome = _outcome(task)
    if wait and task.due_at and timezone.now() < task.due_at:
        schedules.enqueue_release(task.task_id, outcome, task.due_at)
    else:
        release(task.task_id, outcome)


def _outcome(task):
    """What the task will end with, as plain data (it waits in the queue until the task is due)."""
    task_faults = faults.parse(task.faults)
    if "create_fail" in task_faults:
        return _failure(Task.Flag.CREATE_FAILED, 500, "Create task failed: the upstream model rejected the request.")
    if "generation_fail" in task_faults:
        return _failure(Task.Flag.GENERATE_FAILED, 501, "Generation failed: the model could not apply this prompt.")
    try:
        result, grade = _render(task)
    except MediaError as error:
        return _failure(Task.Flag.GENERATE_FAILED, 501, f"Generation failed: {error}")
    except Exception:
        # Not re-raised: the task must end (refunded, called back) rather than sit at
        # successFlag 0, and a django-q2 retry would only find it already finished.
        log.exception("sandbox generation of task %s failed unexpectedly", task.task_id)
        return _failure(Task.Flag.GENERATE_FAILED, 501, "Generation failed: internal error in the sandbox.")
    return {"flag": int(Task.Flag.SUCCESS), "result": result, "grade": grade}


def _failure(flag, code, message):
    return {"flag": int(flag), "error_code": code, "error_message": message}


def _render(task):
    """Transform the source; the stored result's name and the grade (``finish`` publishes both)."""
    # The source may be in a bucket (S3 media): read through the storage, never a path of its own.
    with local_copy(task.source, os.path.splitext(task.source.name)[1]) as source_path, temp_path(".mp4") as out_path:
        grade = transform_video(source_path, out_path, task.prompt, task.watermark)
        with open(out_path, "rb") as fh:
            task.result.save("result.mp4", File(fh), save=False)
    return task.result.name, grade.name


def release(task_id, outcome):
    """Record ``outcome`` (once: a second delivery of this job changes nothing) and call back."""
    task = Task.objects.select_related("account").filter(task_id=task_id).first()
    if task is None:
        return
    task.result.name = outcome.get("result", "")
    task.grade = outcome.get("grade", "")
    flag = outcome["flag"]
    if not task.finish(flag, error_code=outcome.get("error_code"), error_message=outcome.get("error_message", "")):
        return
    if flag != Task.Flag.SUCCESS:
        task.account.refund(settings.SANDBOX_TASK_COST)
    deliver_callbacks(task)


def callback_body(task):
    data = {"taskId": task.task_id, "promptJson": task.param_json}
    if task.success_flag in (Task.Flag.SUCCESS, Task.Flag.CALLBACK_FAILED):
        data["resultUrls"] = [task.result_url]
        return {"code": 200, "msg": "Modify record generated successfully.", "data": data}
    return {"code": 500, "msg": task.error_message or "Modify record generation failed.", "data": data}


def deliver_callbacks(task):
    """POST the callback as many times as the faults say; flag 4 if none got through."""
    if not task.callback_url:
        return
    deliveries = faults.callback_deliveries(task.faults)
    delivered = False
    for _ in range(deliveries):
        delivered = _post_callback(task) or delivered
    Task.objects.filter(pk=task.pk).update(callbacks_sent=deliveries)
    if not delivered:
        Task.objects.filter(pk=task.pk, success_flag=Task.Flag.SUCCESS).update(success_flag=Task.Flag.CALLBACK_FAILED)


def _post_callback(task):
    headers = {"Content-Type": "application/json"}
    if settings.SANDBOX_WEBHOOK_HMAC_KEY:
        headers.update(webhooks.signed_headers(settings.SANDBOX_WEBHOOK_HMAC_KEY, task.task_id))
    try:
        response = requests.post(task.callback_url, json=callback_body(task), headers=headers, timeout=CALLBACK_TIMEOUT)
    except (requests.RequestException, LocationValueError) as error:  # unreachable, or a host it cannot parse
        log.warning("sandbox callback for task %s failed: %s", task.task_id, type(error).__name__)
        return False
    if not response.ok:
        log.warning("sandbox callback for task %s answered HTTP %s", task.task_id, response.status_code)
    return response.ok
