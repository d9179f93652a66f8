"""How cheap is a status-card poll? Every open studio tab sends one every 3 s per task in flight.

Run: .venv/bin/python bench/bench_status.py

Prints the time per status request and its SQL queries, against a baseline
measured in the same run: a request through the same middleware to a view
that does no work (the health check). 1,000 other tasks sit in the table, so
a lookup that is not a single indexed one would show. No assertions: the
figures are for reading.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["LUMAWEB_VAR_DIR"] = tempfile.mkdtemp(prefix="lumaweb-bench-")
os.environ.pop("DATABASE_URL", None)  # a throwaway SQLite file, never a real database
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
os.environ["ALLOWED_HOSTS"] = "testserver"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from modify.models import ModifyTask  # noqa: E402
from tests.factories import make_member, make_task  # noqa: E402

REQUESTS = 500


def timed(client, url, headers):
    status = client.get(url, headers=headers).status_code  # warm up
    assert status == 200, f"{url} answered {status}"
    start = time.perf_counter()
    for _ in range(REQUESTS):
        client.get(url, headers=headers)
    return (time.perf_counter() - start) / REQUESTS * 1000


def main():
    call_command("migrate", verbosity=0)
    user = make_member("bench")
    with transaction.atomic():  # one commit: SQLite would otherwise sync 2,000 times
        for i in range(1000):
            make_task(user, prompt=f"task {i}", url="https://x/a.mp4")
    task = make_task(user, ModifyTask.State.GENERATING, prompt="polled")
    client = Client()
    client.force_login(user)
    htmx = {"HX-Request": "true"}
    status_url = f"/tasks/{task.pk}/status/"
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        client.get(status_url, headers=htmx)
    baseline = timed(client, "/healthz", htmx)
    status = timed(client, status_url, htmx)
    print(f"requests per figure     : {REQUESTS}")
    print(f"baseline (health check) : {baseline:.2f} ms/request (no session, no query)")
    print(f"status card poll        : {status:.2f} ms/request, {len(queries)} SQL queries (session, user, task)")
    print(f"ratio status/baseline   : {status / baseline:.2f}x")


if __name__ == "__main__":
    main()
