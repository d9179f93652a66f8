"""How long to wait: before asking again (exponential, jittered, capped), and for a worker that may have died."""

import random
from datetime import timedelta

from django.conf import settings

# A provider's Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER = 600


def backoff_seconds(attempt, base=30, cap=None):
    """Exponential backoff with up to 20% jitter: 30, 60, 120 ... capped; never below ``base``.

    The jitter spreads many tasks' polls out; it only ever adds, so a task is
    never polled faster than the provider asks (every 30 s at most).
    """
    cap = cap or settings.LUMA_POLL_MAX_INTERVAL_SECONDS
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return delay + random.uniform(0, delay * 0.2)


def worker_gave_up_after():
    """A job still running past django-q2's timeout has been killed: its task is stale."""
    return timedelta(seconds=settings.Q_CLUSTER["timeout"]) + timedelta(minutes=5)
