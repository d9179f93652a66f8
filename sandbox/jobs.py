"""The sandbox's generation job, run on the django-q2 cluster.

``generate(task_id)``:

1. wait until the task is at least ``SANDBOX_MIN_SECONDS`` old, so clients
   see a task in flight as they would upstream;
2. decide the outcome: an injected create or generation failure, else a
   real transform of the source (a grade from the prompt, the watermark);
3. record it once (``Task.finish`` is a conditional UPDATE), refunding
   credits on failure, including a crash of the transform itself;
4. deliver the signed callback (once, several times, or not at all per the
   task's faults) and report successFlag 4 when delivery failed.
"""

import logging
import time

import requests
from django.conf import settings
from django.core.files import File
from django.utils import timezone
from urllib3.exceptions import LocationValueError

from modify import webhooks
from modify.video_probe import MediaError, temp_path
from sandbox import faults
from sandbox.effects import transform_video
from sandbox.models import Task

log = logging.getLogger(__name__)
CALLBACK_TIMEOUT = 15


def generate(task_id):
    task = Task.objects.select_related("account").filter(task_id=task_id).first()
    if task is None or task.success_flag != Task.Flag.GENERATING:
        return
    wait = settings.SANDBOX_MIN_SECONDS - (timezone.now() - task.created_at).total_seconds()
    if wait > 0:
        time.sleep(wait)
    task_faults = faults.parse(task.faults)
    if "create_fail" in task_faults:
        _fail(task, Task.Flag.CREATE_FAILED, 500, "Create task failed: the upstream model rejected the request.")
    elif "generation_fail" in task_faults:
        _fail(task, Task.Flag.GENERATE_FAILED, 501, "Generation failed: the model could not apply this prompt.")
    else:
        try:
            _render(task)
        except MediaError as error:
            _fail(task, Task.Flag.GENERATE_FAILED, 501, f"Generation failed: {error}")
        except Exception:
            # Not re-raised: the task must end (refunded, called back) rather than sit at
            # successFlag 0, and a django-q2 retry would only find it already finished.
            log.exception("sandbox generation of task %s failed unexpectedly", task.task_id)
            _fail(task, Task.Flag.GENERATE_FAILED, 501, "Generation failed: internal error in the sandbox.")
        else:
            task.finish(Task.Flag.SUCCESS)
    deliver_callbacks(task)


def _render(task):
    with temp_path(".mp4") as out_path:
        grade = transform_video(task.source.path, out_path, task.prompt, task.watermark)
        task.grade = grade.name
        with open(out_path, "rb") as fh:
            task.result.save("result.mp4", File(fh), save=False)


def _fail(task, flag, code, message):
    if task.finish(flag, error_code=code, error_message=message):
        task.account.refund(settings.SANDBOX_TASK_COST)


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
