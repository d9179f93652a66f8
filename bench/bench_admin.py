"""Does the admin stay fast with a team's history in it? 10,000 tasks of 50 members.

Run: .venv/bin/python bench/bench_admin.py

Prints, for the admin's task list (plain, filtered, searched, a later page)
and its home with the dashboard, the time per request and its SQL queries,
against a baseline measured in the same run: a request through the same
middleware to a view that does no work (the health check). The rows are
bulk-inserted (tasks in every state, over three months, on five keys), so
the set-up takes seconds. No assertions: the figures are for reading (the
query counts are asserted by tests/test_admin.py and
tests/test_admin_dashboard.py).
"""

import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["LUMAWEB_VAR_DIR"] = tempfile.mkdtemp(prefix="lumaweb-bench-")
os.environ.pop("DATABASE_URL", None)  # a throwaway SQLite file, never a real database
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
os.environ["ALLOWED_HOSTS"] = "testserver"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_q.models import Task as QueueTask  # noqa: E402

from modify import crypto  # noqa: E402
from modify.models import ApiKey, ModifyTask  # noqa: E402
from modify.states import State  # noqa: E402

TASKS = 10_000
MEMBERS = 50
REQUESTS = 50
# How the tasks are spread over the states: mostly finished, some in flight.
STATES = [State.SUCCEEDED] * 12 + [State.FAILED] * 4 + [State.QUEUED, State.GENERATING, State.ARCHIVING, State.UNCONFIRMED]


def populate():
    """50 members and a staff user, five keys, 10,000 tasks and a kept queue history, in bulk."""
    User = get_user_model()
    User.objects.bulk_create([User(username=f"member{i:02d}", password="!") for i in range(MEMBERS)])
    staff = User.objects.create_user("staff", is_staff=True, is_superuser=True)
    members = list(User.objects.filter(username__startswith="member"))
    ApiKey.objects.bulk_create([
        ApiKey(label=f"Key {i}", owner=members[i] if i else None, secret_encrypted=crypto.encrypt(f"kie-secret-{i:04d}"),
               last4=f"{i:04d}", last_credits=40 + 400 * i, credits_checked_at=timezone.now())
        for i in range(5)
    ])
    keys = list(ApiKey.objects.all()) + [None]
    now = timezone.now()
    tasks = []
    for i in range(TASKS):
        state = STATES[i % len(STATES)]
        created = now - timedelta(minutes=13 * i)  # about three months
        finished = created + timedelta(minutes=3) if state in (State.SUCCEEDED, State.FAILED) else None
        folder = f"results/{created:%Y/%m}/{uuid.uuid4()}"
        tasks.append(ModifyTask(
            owner=members[i % MEMBERS], api_key=keys[i % len(keys)], is_sandbox=i % 3 == 0,
            prompt=f"Task {i}: turn the street into a snowy winter night, with warm lights in every window " * 2,
            source_kind=ModifyTask.Source.URL, source_url="https://example.com/clip.mp4", state=state,
            provider_task_id=uuid.uuid4().hex if state not in (State.QUEUED, State.UNCONFIRMED) else "",
            failed_stage=State.GENERATING if state == State.FAILED else "",
            error_message="The provider could not generate this video (bad prompt)." if state == State.FAILED else "",
            result_file=f"{folder}/result.mp4" if state == State.SUCCEEDED else "",
            poster=f"{folder}/poster.jpg" if state == State.SUCCEEDED else "",
            created_at=created, updated_at=finished or created, finished_at=finished,
        ))
    ModifyTask.objects.bulk_create(tasks, batch_size=1000)
    QueueTask.objects.bulk_create([
        QueueTask(id=uuid.uuid4().hex, name=f"job-{i}", func="modify.jobs.sweep", started=now - timedelta(minutes=i),
                  stopped=now - timedelta(minutes=i), success=i % 10 != 0)
        for i in range(500)
    ])
    return staff


def measure(client, url):
    """``(wall-clock ms per request, CPU ms per request, SQL queries of one request)``. The database
    is SQLite, in this process: the CPU time counts its work too, but not the time spent waiting
    for a processor on a busy machine."""
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        status = client.get(url).status_code
    assert status == 200, f"{url} answered {status}"
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(REQUESTS):
        client.get(url)
    return ((time.perf_counter() - wall) / REQUESTS * 1000, (time.process_time() - cpu) / REQUESTS * 1000,
            len(queries))


def main():
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with transaction.atomic():  # one commit: SQLite would otherwise sync for every batch
        staff = populate()
    print(f"set-up                  : {TASKS} tasks, {MEMBERS} members in {time.perf_counter() - started:.1f} s")
    client = Client()
    client.force_login(staff)
    member = get_user_model().objects.get(username="member07")
    pages = {
        "baseline (health check)": "/livez",
        "admin task list": "/admin/modify/modifytask/",
        "  filtered: failed": "/admin/modify/modifytask/?state__exact=failed",
        "  filtered: member+dates": f"/admin/modify/modifytask/?owner__id__exact={member.pk}&created_from=2000-01-01",
        "  searched": "/admin/modify/modifytask/?q=snowy",
        "  page 50": "/admin/modify/modifytask/?p=50",
        "admin home (dashboard)": "/admin/",
    }
    baseline = None
    print(f"requests per figure     : {REQUESTS}; ms/request wall-clock (CPU)")
    for name, url in pages.items():
        ms, cpu, queries = measure(client, url)
        baseline = baseline or ms
        print(f"{name:<24}: {ms:7.2f} ms ({cpu:6.2f}), {queries:2d} SQL queries, {ms / baseline:5.1f}x baseline")


if __name__ == "__main__":
    main()
