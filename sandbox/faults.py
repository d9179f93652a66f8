"""Fault injection for the sandbox, configured by ``SANDBOX_FAULTS``.

A comma-separated list of ``name`` or ``name:number``:

* ``rate_limit:N``, ``server_error:N``, ``maintenance:N``: the next N API
  requests answer 429, 500 or 455 (counted once per distinct setting;
  unknown names are ignored, so ``rate_limit:2,run=7`` starts a new count).
* ``slow:S``: every API answer waits S seconds first.
* ``create_fail``: tasks end with successFlag 2; ``generation_fail``: 3.
* ``callback_fail``: the callback is not delivered (successFlag 4).
* ``callback_duplicate:N``: the callback is delivered N times (default 3).
* ``callback_early``: the task is generated, and its callback delivered,
  before the generate call answers.

Task faults are copied onto the task when it is created, so that the
django-q2 worker that generates it honours them whatever its own settings.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache

REQUEST_FAULTS = {"rate_limit": 429, "server_error": 500, "maintenance": 455}
REQUEST_MESSAGES = {
    429: "Rate limited: too many requests, please retry later.",
    500: "Internal server error, please retry later.",
    455: "Service under maintenance, please retry later.",
}
TASK_FAULTS = {"create_fail", "generation_fail", "callback_fail", "callback_duplicate", "callback_early"}


def parse(spec):
    """``"rate_limit:2,callback_fail"`` → ``{"rate_limit": 2.0, "callback_fail": None}``."""
    faults = {}
    for item in (spec or "").split(","):
        name, _, number = item.strip().partition(":")
        if name:
            faults[name] = float(number) if number else None
    return faults


def request_fault_code():
    """The error code the next API request must answer with, or None."""
    spec = settings.SANDBOX_FAULTS
    for name, count in parse(spec).items():
        if name in REQUEST_FAULTS:
            key = f"sandbox-fault:{hashlib.sha256(spec.encode()).hexdigest()[:16]}:{name}"
            cache.add(key, int(count or 1), timeout=None)
            if cache.decr(key) >= 0:
                return REQUEST_FAULTS[name]
    return None


def delay_seconds():
    return parse(settings.SANDBOX_FAULTS).get("slow") or 0


def task_faults():
    """The task-level part of the current setting, as stored on a new task."""
    return ",".join(item for item in settings.SANDBOX_FAULTS.split(",") if item.split(":")[0].strip() in TASK_FAULTS)


def callback_deliveries(task_fault_spec):
    faults = parse(task_fault_spec)
    if "callback_fail" in faults:
        return 0
    if "callback_duplicate" in faults:
        return int(faults["callback_duplicate"] or 3)
    return 1
