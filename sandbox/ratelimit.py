"""The sandbox's rate limit on generate, as kie.ai's: requests over it are refused, not queued.

At most ``SANDBOX_RATE_LIMIT`` new generation requests per
``SANDBOX_RATE_WINDOW_SECONDS`` per account (0: no limit). Over it, generate
answers code 429 in the usual HTTP 200 envelope, with a ``Retry-After``
header (seconds until a request would pass), and creates nothing and spends
no credit.

The count is the account's tasks created within the window (``sandbox.models.Task``,
by ``created_at``), read twice: once on arrival, so that a refused request
costs no work; and again in the transaction that inserts the task, after
``Account.spend`` has locked the account's row (SQLite's write lock), with
the task's ``created_at`` set then. Concurrent requests, in threads or
processes, are counted one after the other, so no window of tasks' creation
times ever holds more than the limit.
"""

import functools
import math
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from sandbox.envelope import ApiError
from sandbox.models import Task


class RateLimited(ApiError):
    def __init__(self, retry_after):
        window = f"{settings.SANDBOX_RATE_WINDOW_SECONDS:g}"
        super().__init__(429, f"Rate limited: at most {settings.SANDBOX_RATE_LIMIT} new tasks per {window} s; "
                              f"retry after {retry_after} s.")
        self.retry_after = retry_after


def check(request, account, now=None):
    """Raise ``RateLimited`` if ``account`` may not create a task at ``now``; the request remembers when it may."""
    limit = settings.SANDBOX_RATE_LIMIT
    if limit <= 0:
        return
    now = now or timezone.now()
    window = timedelta(seconds=settings.SANDBOX_RATE_WINDOW_SECONDS)
    created = list(Task.objects.filter(account=account, created_at__gt=now - window)
                   .order_by("created_at").values_list("created_at", flat=True))
    if len(created) >= limit:
        frees_at = created[len(created) - limit] + window  # then one fewer than the limit is left in the window
        request.sandbox_retry_after = max(1, math.ceil((frees_at - now).total_seconds()))
        raise RateLimited(request.sandbox_retry_after)


def admit(request, account):
    """The creation time of a task ``account`` may create now (inside the transaction that inserts it,
    with the account's row locked), or ``RateLimited``."""
    now = timezone.now()
    check(request, account, now)
    return now


def retry_after_header(view):
    """Put the ``Retry-After`` of a refused request on its answer (the envelope itself stays kie.ai's)."""

    @functools.wraps(view)
    def answer(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if (seconds := getattr(request, "sandbox_retry_after", None)) is not None:
            response["Retry-After"] = str(seconds)
        return response

    return answer
