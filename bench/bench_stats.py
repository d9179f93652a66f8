"""How fast is the stats page with a team's year of work? 10,000 tasks of 50 members over the last 365 days.

Run: .venv/bin/python bench/bench_stats.py

Prints the time per request of the stats page for the last 30 days (the
default), 90 days and 366 days (the longest period allowed: every task of
the table counts, the worst case), and of the CSV, with their SQL queries,
against a baseline measured in the same run: a request through the same
middleware to a view that does no work (the health check). The page is
timed twice: "drawn" draws every chart afresh (the figures just changed),
"kept" reuses the drawings of the same figures (a reload).
The task rows are bulk-inserted straight into the table for speed (this is a
bench, not a test of the lifecycle): states, keys, credits, failure
sentences and submit-to-result times spread as a busy team's would be. No
assertions: the figures are for reading (tests/test_stats_view.py asserts
the query count). Target (issue 8): under 100 ms, with queries that do not grow.
"""

import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import table, world  # noqa: E402

world.throwaway()

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from modify.failures import SENTENCES  # noqa: E402
from modify.models import ApiKey, ModifyTask  # noqa: E402
from modify.states import LIVE  # noqa: E402
from team import charts  # noqa: E402
from tests.factories import make_member, make_staff  # noqa: E402

TASKS = 10_000
MEMBERS = 50
REQUESTS = 50
TARGET_MS = 100
S = ModifyTask.State
# The sentences a task fails with (the others are notes on a live task), and "" for a free-form failure.
NOTES = {"waiting_to_retry", "provider_busy", "provider_maintenance", "provider_server_error", "provider_unreachable",
         "provider_garbled", "awaiting_callback"}
FAILURES = [key for key in SENTENCES if key not in NOTES] + [""]


def key(label, owner=None):
    made = ApiKey(owner=owner, label=label)
    made.secret = f"bench-secret-{label}"
    made.save()
    return made


def spent_key(owner, personal, team, rng):
    """The key a task spent: a member with a key of their own mostly spends it, the others share the team's."""
    if owner in personal and rng.random() < 0.8:
        return personal[owner]
    return rng.choices(team, weights=(6, 3, 1))[0]  # team key A, team key B, the environment's (None)


def task_rows(members, personal, team, rng):
    """``TASKS`` task rows over the last 365 days: 70 % succeeded, 22 % failed, the rest in flight."""
    now = timezone.now()
    for n in range(TASKS):
        created = now - timedelta(seconds=rng.uniform(0, 364.5 * 86400))
        owner = members[n % MEMBERS]
        roll = rng.random()
        state = S.SUCCEEDED if roll < 0.7 else S.FAILED if roll < 0.92 else rng.choice(LIVE)
        # Credits are spent once the provider created the task: every success, half the failures.
        spent = state in (S.SUCCEEDED, S.GENERATING, S.ARCHIVING) or (state == S.FAILED and rng.random() < 0.5)
        submitted = created + timedelta(seconds=rng.uniform(1, 30))
        took = timedelta(seconds=rng.lognormvariate(5, 0.6))  # about 2.5 minutes, some much longer
        finished = submitted + took if state in (S.SUCCEEDED, S.FAILED) else None
        failure = rng.choice(FAILURES) if state == S.FAILED else ""
        yield ModifyTask(
            owner=owner, prompt=f"bench task {n}", source_kind=ModifyTask.Source.URL,
            source_url="https://example.com/clip.mp4", is_sandbox=True, state=state, created_at=created,
            updated_at=finished or created, submitting_at=submitted if state != S.QUEUED else None,
            finished_at=finished, credits=10 if spent else None,
            api_key=spent_key(owner, personal, team, rng) if spent else None,
            failure_key=failure, error_message=SENTENCES.get(failure, "Gave up.") if state == S.FAILED else "",
            failed_stage=S.GENERATING if state == S.FAILED else "",
        )


def timed(client, url, before=lambda: None):
    """``(wall, cpu)`` milliseconds per request; the CPU time (SQLite runs in this process) is what
    the request itself costs, the wall time also what other processes on a busy machine took."""
    status = client.get(url).status_code  # warm up
    assert status == 200, f"{url} answered {status}"
    wall = cpu = 0.0
    for _ in range(REQUESTS):
        before()
        start, start_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        wall, cpu = wall + time.perf_counter() - start, cpu + time.process_time() - start_cpu
    return wall / REQUESTS * 1000, cpu / REQUESTS * 1000


def queries_of(client, url):
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        client.get(url)
    return len(queries)


def main():
    rng = random.Random(8)
    with transaction.atomic():
        members = [make_member(f"member{n:02d}") for n in range(MEMBERS)]
        team = [key("Team key A"), key("Team key B"), None]
        personal = {member: key(f"{member.username}'s key", member) for member in members[:10]}
        ModifyTask.objects.bulk_create(task_rows(members, personal, team, rng), batch_size=1000)
    staff = make_staff("bench-staff")
    client = Client()
    client.force_login(staff)
    today = timezone.localdate()
    ninety, year = (f"?from={today - timedelta(days=days - 1)}&to={today}" for days in (90, 366))
    forget, keep = charts.forget_drawings, lambda: None
    figures = [("page, 30 days, drawn", "/team/stats/", forget), ("page, 30 days, kept", "/team/stats/", keep),
               ("page, 90 days, drawn", f"/team/stats/{ninety}", forget),
               ("page, 366 days, drawn", f"/team/stats/{year}", forget),
               ("page, 366 days, kept", f"/team/stats/{year}", keep),
               ("CSV, 30 days", "/team/stats.csv", keep), ("CSV, 366 days", f"/team/stats.csv{year}", keep)]
    baseline, baseline_cpu = timed(client, "/livez")
    results = {}
    print(f"tasks, members          : {ModifyTask.objects.count():,} tasks, {MEMBERS} members,"
          f" {ApiKey.objects.count()} keys + the environment's")
    print(f"requests per figure     : {REQUESTS}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"baseline (health check) : {baseline:.2f} ms/request, {baseline_cpu:.2f} ms CPU (no session, no query)")
    for name, url, before in figures:
        ms, cpu = timed(client, url, before)
        results[name] = (ms, queries_of(client, url))
        print(f"{name:<24}: {ms:.1f} ms/request, {cpu:.1f} ms CPU, {queries_of(client, url)} SQL queries"
              f" ({ms / baseline:.0f}x baseline)")
    print(f"load average after      : {os.getloadavg()[0]:.1f}")
    pages = {name: figures for name, figures in results.items() if name.startswith("page")}
    default, worst = "page, 30 days, drawn", max(pages, key=lambda name: pages[name][0])
    queries = sorted({q for _, q in pages.values()})
    table.record("-", f"stats page at {TASKS:,} tasks (issue 8)",
                 f"30 days (default) {pages[default][0]:.1f} ms; slowest: {worst.removeprefix('page, ')}"
                 f" {pages[worst][0]:.1f} ms", f"/livez {baseline:.2f} ms",
                 f"{pages[worst][0] / baseline:.0f}× baseline at worst, {' / '.join(map(str, queries))} queries",
                 f"< {TARGET_MS} ms", pages[worst][0] < TARGET_MS,
                 "'drawn': every chart drawn afresh; queries asserted by tests/test_stats_view.py")


if __name__ == "__main__":
    main()
