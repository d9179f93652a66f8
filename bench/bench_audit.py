"""How fast is the audit list with a busy team's history? 10,000 tasks across 50 members.

Run: .venv/bin/python bench/bench_audit.py [--as-migrated-only]

Prints the time per request and its SQL queries for the audit list (page 1,
a page thousands of rows deep reached by its cursor, and a few filters) and
for the whole CSV export, against a baseline measured in the same run: a
request through the same middleware to a view that does no work (the health
check). Then the same again with an index on the task events' time, which
the list's order (newest first) can walk instead of sorting the table.

The data goes into a throwaway SQLite file. Members come from the factory;
tasks and their events are bulk inserted (the factory drives every
transition and would take minutes): each task has the events its path would
have left, spread over the last 100 days, and the team's log has keys,
quotas, invitations and password changes. No assertions: the figures are for
reading (tests/test_audit_view.py asserts the query counts). Target (issue 8):
under 100 ms, with queries that do not grow with the data. ``--as-migrated-only``
skips the second round with the extra index (``make bench`` does).
"""

import argparse
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import table, world  # noqa: E402

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("--as-migrated-only", action="store_true", help="skip the round with an extra index")
OPTIONS = ARGS.parse_args()
world.throwaway()

from django.db import connection, models, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from modify.models import ApiKey, ModifyTask, TaskEvent  # noqa: E402
from modify.states import Actor  # noqa: E402
from team import audit  # noqa: E402
from team.models import AuditEvent  # noqa: E402
from tests.factories import make_member, make_staff  # noqa: E402

TASKS, MEMBERS, DAYS = 10_000, 50, 100
REQUESTS = 30
S = ModifyTask.State
PATHS = {  # the events a task's path leaves, by how it ended
    S.SUCCEEDED: ["created", "claim", "generate_sent", "accepted", "callback_accepted", "poll", "result_found", "archived"],
    S.FAILED: ["created", "claim", "generate_sent", "accepted", "poll", "poll", "fail"],
    S.GENERATING: ["created", "claim", "generate_sent", "accepted", "poll"],
}


def populate():
    random.seed(8)
    staff = make_staff("boss")
    members = [make_member(f"member{i:02d}") for i in range(MEMBERS)]
    team_key = ApiKey(label="Team key", created_by=staff)
    team_key.secret = "bench-team-key-0000"
    team_key.save()
    keys = {}
    for i, member in enumerate(members[:20]):  # some members have a key of their own
        keys[member.pk] = ApiKey(owner=member, label=f"{member.username}'s key", created_by=member)
        keys[member.pk].secret = f"bench-key-{i:04d}"
        keys[member.pk].save()
    now = timezone.now()
    start = now - timedelta(days=DAYS)
    tasks, events = [], []
    for i in range(TASKS):
        owner = members[i % MEMBERS]
        state = random.choices([S.SUCCEEDED, S.FAILED, S.GENERATING], weights=[80, 15, 5])[0]
        created = start + timedelta(seconds=random.uniform(0, DAYS * 86400 - 3600))
        # Bulk inserts skip save() and its lifecycle guard: a bench's data, not the app's way in.
        task = ModifyTask(owner=owner, prompt=f"bench task {i}: a snowy winter night", source_kind="url",
                          source_url="https://example.com/a.mp4", is_sandbox=True, state=state, created_at=created,
                          api_key=keys.get(owner.pk, team_key), credits=10)
        tasks.append(task)
        moment = created
        for kind in PATHS[state]:
            moment += timedelta(seconds=random.uniform(1, 60))
            actor = Actor.MEMBER if kind == "created" else Actor.PROVIDER if kind.startswith("callback") else Actor.SYSTEM
            events.append(TaskEvent(task=task, kind=kind, actor=actor, actor_user=owner if actor == Actor.MEMBER else None,
                                    detail="successFlag 0 (generating)" if kind == "poll" else "", created_at=moment))
    team = []
    for member in members:
        joined = start + timedelta(seconds=random.uniform(0, 86400))
        team += [AuditEvent(kind="invitation_sent", actor=Actor.STAFF, actor_user=staff, detail="by link", created_at=joined),
                 AuditEvent(kind="invitation_accepted", actor=Actor.MEMBER, actor_user=member, member=member,
                            created_at=joined + timedelta(hours=1))]
        for _ in range(10):
            team.append(AuditEvent(kind=random.choice(["quota_changed", "password_changed"]), actor=Actor.STAFF,
                                   actor_user=staff, member=member,
                                   created_at=start + timedelta(seconds=random.uniform(0, DAYS * 86400))))
        if member.pk in keys:
            team.append(AuditEvent(kind="key_added", actor=Actor.MEMBER, actor_user=member, member=member,
                                   api_key=keys[member.pk], created_at=joined + timedelta(hours=2)))
    with transaction.atomic():
        ModifyTask.objects.bulk_create(tasks, batch_size=1000)
        TaskEvent.objects.bulk_create(events, batch_size=2000)
        AuditEvent.objects.bulk_create(team, batch_size=1000)
    return staff, tasks


def queries_of(client, url):
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200, f"{url} answered {response.status_code}"
    return len(queries)


def timed(client, url, times=REQUESTS):
    queries = queries_of(client, url)  # also warms up
    start = time.perf_counter()
    for _ in range(times):
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    return (time.perf_counter() - start) / times * 1000, queries


def deep_cursor(depth):
    """The cursor an "Older" link would carry after ``depth`` rows (the bench looks it up; a reader clicks)."""
    rows = audit.merged((audit._task_row(e) for e in audit.task_events({}).iterator(chunk_size=2000)),
                        (audit._team_row(e) for e in audit.team_events({}).iterator(chunk_size=2000)))
    for i, row in enumerate(rows):
        if i == depth - 1:
            return row.cursor
    raise ValueError(depth)


def figures(client, tasks, label):
    depth = 400 * audit.PAGE_SIZE
    cursor = deep_cursor(depth)
    some_task = tasks[len(tasks) // 2]
    day = timezone.localdate() - timedelta(days=30)
    cases = [
        ("audit list, page 1", "/team/audit/"),
        (f"audit list, page {depth // audit.PAGE_SIZE + 1} (cursor)", f"/team/audit/?before={cursor}"),
        ("filter: member", "/team/audit/?member=member07"),
        ("filter: member, deep", f"/team/audit/?member=member07&before={cursor}"),
        ("filter: task", f"/team/audit/?task={some_task.pk}"),
        ("filter: kind (fail)", "/team/audit/?kind=fail"),
        ("filter: kind (team)", "/team/audit/?kind=key_added"),
        ("filter: one day", f"/team/audit/?since={day}&until={day}"),
    ]
    print(f"\n{label}")
    baseline, _ = timed(client, "/livez", 200)
    print(f"  {'baseline (health check)':34}: {baseline:7.2f} ms/request")
    results = {}
    for name, url in cases:
        ms, queries = results[name] = timed(client, url)
        print(f"  {name:34}: {ms:7.2f} ms/request, {queries} SQL queries, {ms / baseline:5.1f}x baseline")
    ms, queries = timed(client, "/team/audit.csv", 1)
    rows = TaskEvent.objects.count() + AuditEvent.objects.count()
    print(f"  {'CSV export, every row':34}: {ms:7.0f} ms for {rows:,} rows, {queries} SQL queries")
    return baseline, results


TARGET_MS = 100


def record(baseline, results):
    """The table's row: the first page, the deep one, the slowest filter (issue 8's target)."""
    (first, deep), filters = list(results)[:2], list(results)[2:]
    slowest = max(filters, key=lambda name: results[name][0])
    worst = max(ms for ms, _ in results.values())
    queries = sorted({q for _, q in results.values()})
    events = TaskEvent.objects.count() + AuditEvent.objects.count()
    table.record("-", f"audit list at {TASKS:,} tasks ({events:,} events; issue 8)",
                 f"page 1 {results[first][0]:.1f} ms, {deep.split(' (')[0].removeprefix('audit list, ')}"
                 f" {results[deep][0]:.1f} ms, slowest filter ({slowest.removeprefix('filter: ')})"
                 f" {results[slowest][0]:.1f} ms", f"/livez {baseline:.2f} ms",
                 f"{worst / baseline:.0f}× baseline at worst, {'–'.join(map(str, sorted({queries[0], queries[-1]})))} queries",
                 f"< {TARGET_MS} ms", worst < TARGET_MS, "queries asserted by tests/test_audit_view.py")


def main():
    began = time.perf_counter()
    staff, tasks = populate()
    print(f"data: {ModifyTask.objects.count():,} tasks, {MEMBERS} members, {TaskEvent.objects.count():,} task events, "
          f"{AuditEvent.objects.count():,} team events (made in {time.perf_counter() - began:.1f} s)")
    client = Client()
    client.force_login(staff)
    record(*figures(client, tasks, "as migrated (task events indexed by (task, created_at) and (kind, created_at))"))
    if OPTIONS.as_migrated_only:
        return
    with connection.schema_editor() as editor:
        editor.add_index(TaskEvent, models.Index(fields=["created_at", "id"], name="bench_taskevent_created_id"))
    figures(client, tasks, "with an index on task events (created_at, id), as AuditEvent has")


if __name__ == "__main__":
    main()
