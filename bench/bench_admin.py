"""Do the admin, the studio and the gallery stay fast with a team's history in them? 1,000 then 10,000 tasks.

Run: .venv/bin/python bench/bench_admin.py

Prints, for the admin's task list (plain, filtered, searched, a later page),
its home with the dashboard, the studio (as the busiest member: a fifth of
all tasks are theirs) and the gallery, the time per request and its SQL
queries with 1,000 tasks and again with 10,000 (50 members), against a
baseline measured in the same run: a request through the same middleware to
a view that does no work (``/livez``). The rows are bulk-inserted
(``bench/world.py``: tasks in every state, over three months, on five keys),
so the set-up takes seconds. Targets (issue 7): under 100 ms each at 10,000
tasks, with as many queries as at 1,000. No assertions: the figures are for
reading (the query counts are asserted by tests/test_admin.py,
tests/test_admin_dashboard.py and the views' tests).
"""

import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import table, world  # noqa: E402

world.throwaway()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_q.models import Task as QueueTask  # noqa: E402

from modify.models import ModifyTask  # noqa: E402

SIZES = (1_000, world.TASKS)
REQUESTS = 40
TARGET_MS = 100
BASELINE = "baseline (/livez)"
# name: (url, as whom, the row); the others are details, printed but not in the table.
PAGES = {
    BASELINE: ("/livez", "staff", None),
    "admin task list": ("/admin/modify/modifytask/", "staff", "5a"),
    "  filtered: failed": ("/admin/modify/modifytask/?state__exact=failed", "staff", None),
    "  filtered: member+dates": ("/admin/modify/modifytask/?owner__id__exact={member}&created_from=2000-01-01",
                                 "staff", None),
    "  searched": ("/admin/modify/modifytask/?q=snowy", "staff", None),
    "  page 5": ("/admin/modify/modifytask/?p=5", "staff", None),
    "admin home (dashboard)": ("/admin/", "staff", None),
    "studio": ("/", "member", "5b"),
    "  studio, page 5": ("/?page=5", "member", None),
    "gallery": ("/gallery/", "member", "5c"),
    "  gallery, page 5": ("/gallery/?page=5", "member", None),
}


def queue_history():
    """The kept history of the task queue the dashboard reads (save_limit rows)."""
    now = timezone.now()
    QueueTask.objects.bulk_create([
        QueueTask(id=uuid.uuid4().hex, name=f"job-{i}", func="modify.jobs.sweep", started=now - timedelta(minutes=i),
                  stopped=now - timedelta(minutes=i), success=i % 10 != 0)
        for i in range(500)
    ])


def measure(clients, member):
    """{name: (ms wall-clock, ms CPU, queries)} for every page, as it is now. Each page is asked
    a few times first (the session into the cache, templates compiled, the database's pages read)."""
    figures = {}
    for name, (url, who, _) in PAGES.items():
        url = url.format(member=member.pk)
        for _ in range(3):
            clients[who].get(url)
        queries = len(world.queries_of(clients[who], url))
        requests = REQUESTS * 5 if name == BASELINE else REQUESTS
        figures[name] = (*world.timed(clients[who], url, requests), queries)
    return figures


def main():
    started = time.perf_counter()
    staff = world.populate(tasks=SIZES[0])
    queue_history()
    member = get_user_model().objects.get(username="member00")
    clients = {"staff": Client(), "member": Client()}
    clients["staff"].force_login(staff)
    clients["member"].force_login(member)
    results = {}
    for size in SIZES:
        missing = size - ModifyTask.objects.count()
        if missing > 0:
            world.add_tasks(missing)
        results[size] = measure(clients, member)
    small, large = SIZES
    mine = ModifyTask.objects.filter(owner=member).count()
    shared = ModifyTask.objects.in_gallery().count()
    print(f"set-up and figures      : {time.perf_counter() - started:.1f} s; {large:,} tasks of {world.MEMBERS} members"
          f" (the studio's member has {mine:,}, the gallery {shared:,})")
    print(f"requests per figure     : {REQUESTS}; ms/request wall-clock (CPU), SQL queries, × baseline")
    print(f"{'':24}  {f'{small:,} tasks':>30}   {f'{large:,} tasks':>30}")
    for name in PAGES:
        cells = []
        for size in SIZES:
            ms, cpu, queries = results[size][name]
            cells.append(f"{ms:7.2f} ({cpu:6.2f}) {queries:2d} q {ms / results[size][BASELINE][0]:5.0f}x")
        print(f"{name:<24}: {cells[0]:>30} | {cells[1]:>30}")
    baseline = results[large][BASELINE][0]
    for name, (_, _, row) in PAGES.items():
        if row is None:
            continue
        ms, _, queries = results[large][name]
        before = results[small][name][2]
        constant = queries == before
        table.record(row, f"{name} at {large:,} tasks", f"{ms:.1f} ms, {queries} queries",
                     f"/livez {baseline:.2f} ms; {small:,} tasks: {results[small][name][0]:.1f} ms, {before} queries",
                     f"{ms / baseline:.0f}× baseline, queries {'constant' if constant else f'{before} → {queries}'}",
                     f"< {TARGET_MS} ms, constant queries", ms < TARGET_MS and constant)


if __name__ == "__main__":
    main()
