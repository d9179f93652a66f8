"""The health check that load balancers, service managers and uptime monitors ask.

``/healthz`` answers JSON naming each part this instance needs to do its work:
the database (it answers a trivial query), the broker (it answers, and a q
cluster was heard of within the last minutes: without one nothing a member
submits ever moves) and the storage (a tiny file can be written and deleted
where media go). 200 when all are fine, 503 naming the part that is not.

Anyone may ask, so it says nothing secret: each part is "ok" or a fixed
sentence, never an exception's text (which can name hosts, users or paths);
what went wrong goes to the server's log, by exception class only. It costs
a handful of queries (the queue's figures are ``modify.dashboard``'s, the same
the admin's home shows) and one small write.
"""

import logging
import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from modify.dashboard import CLUSTER_SEEN_WITHIN, queue_health

logger = logging.getLogger(__name__)

OK = "ok"
# What a part says when its check raised: fixed sentences, nothing from the exception.
DOWN = {
    "database": "the database does not answer",
    "broker": "the broker does not answer",
    "storage": "files cannot be written to the media storage",
}
NO_CLUSTER = f"no task cluster seen in the last {int(CLUSTER_SEEN_WITHIN.total_seconds() // 60)} minutes"
# Probe files are written under this prefix and deleted at once (their names are unique, so that
# two checks at the same moment never delete each other's).
PROBE_PREFIX = "healthz"


def check_database():
    """None when the database answers a trivial query (it raises otherwise)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker():
    """None when the broker answers and a q cluster was heard of lately, else what is wrong."""
    queue = queue_health()
    if queue["waiting"] is None:  # queue_health could not ask the broker its queue's length
        return DOWN["broker"]
    if not queue["cluster_running"]:
        return NO_CLUSTER
    return None


def check_storage():
    """None when a tiny file can be written to the default storage and deleted again."""
    name = default_storage.save(f"{PROBE_PREFIX}/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    default_storage.delete(name)


def _outcome(part, check):
    try:
        return check() or OK
    except Exception as error:  # a part that is down must not take the health check down with it
        logger.warning("Health check: %s is down (%s).", part, type(error).__name__)
        return DOWN[part]


def report():
    """``{"database": ..., "broker": ..., "storage": ..., "status": "ok" | "degraded"}``."""
    # The checks are looked up when called (not kept in a table), so that each can be replaced alone.
    parts = {
        "database": _outcome("database", check_database),
        "broker": _outcome("broker", check_broker),
        "storage": _outcome("storage", check_storage),
    }
    parts["status"] = OK if all(value == OK for value in parts.values()) else "degraded"
    return parts


@never_cache
def healthz(request):
    parts = report()
    return JsonResponse(parts, status=200 if parts["status"] == OK else 503)


@never_cache
def livez(request):
    """The process answers, and nothing else is asked: a liveness probe, and benchmarks' no-work baseline."""
    return HttpResponse("ok", content_type="text/plain")
