"""A database from before the event log migrates forward without losing a task, and each field keeps one meaning."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from modify.schedules import SWEEP_FUNC, SWEEP_SCHEDULE_NAME

OLD_SCHEDULE_NAME = "lumaweb: poll provider tasks"  # as migration 0002 made it
from tests.factories import make_member

BEFORE = [("modify", "0003_task_retries_and_protected_keys")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_tasks_of_the_previous_version_migrate_forward():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()  # every app: the team's tables come back too
    owner = make_member("olga")
    old = migrate(BEFORE)
    Task = old.get_model("modify", "ModifyTask")
    now = timezone.now()
    common = {"owner_id": owner.pk, "prompt": "p", "source_kind": "url", "source_url": "https://e.com/a.mp4",
              "created_at": now - timedelta(hours=1)}
    rows = {
        "queued": Task.objects.create(**common, state="queued", updated_at=now - timedelta(minutes=1)),
        "retrying": Task.objects.create(**common, state="queued", error_message="Waiting to retry: busy.",
                                        next_submit_at=now + timedelta(seconds=30)),
        "waiting": Task.objects.create(**common, state="submitting", submitting_at=now,
                                       next_submit_at=now + timedelta(hours=1),
                                       error_message="The provider did not answer in time; waiting for its callback."),
        "generating": Task.objects.create(**common, state="generating", submitting_at=now, generating_at=now,
                                          provider_task_id="a" * 32),
        "failed": Task.objects.create(**common, state="failed", failed_stage="generating", submitting_at=now,
                                      generating_at=now, finished_at=now, error_message="It failed.", error_code=501),
        "succeeded": Task.objects.create(**common, state="succeeded", submitting_at=now, generating_at=now,
                                         archiving_at=now, finished_at=now, result_file="results/x/result.mp4"),
    }
    Schedule = old.get_model("django_q", "Schedule")
    assert Schedule.objects.filter(name=OLD_SCHEDULE_NAME).exists()

    new = migrate(latest)
    Task = new.get_model("modify", "ModifyTask")
    tasks = {name: Task.objects.get(pk=row.pk) for name, row in rows.items()}
    assert Task.objects.count() == len(rows)
    assert tasks["queued"].state == "queued" and tasks["queued"].enqueued_at == rows["queued"].updated_at
    assert (tasks["retrying"].state, tasks["retrying"].status_note, tasks["retrying"].error_message) == (
        "queued", "Waiting to retry: busy.", "")
    assert tasks["retrying"].next_submit_at == rows["retrying"].next_submit_at
    waiting = tasks["waiting"]
    assert (waiting.state, waiting.callback_deadline, waiting.next_submit_at) == (
        "unconfirmed", rows["waiting"].next_submit_at, None)
    assert waiting.status_note.startswith("The provider did not answer") and waiting.error_message == ""
    assert (tasks["failed"].error_message, tasks["failed"].error_code) == ("It failed.", 501)
    assert tasks["succeeded"].result_file == "results/x/result.mp4"

    Event = new.get_model("modify", "TaskEvent")
    kinds = lambda name: list(Event.objects.filter(task_id=rows[name].pk).order_by("created_at", "id")
                              .values_list("kind", flat=True))
    assert kinds("queued") == ["created"]
    assert kinds("succeeded") == ["created", "claim", "accepted", "result_found", "archived"]
    assert kinds("failed") == ["created", "claim", "accepted", "fail"]
    assert Event.objects.get(task_id=rows["failed"].pk, kind="fail").detail == "It failed."

    Schedule = new.get_model("django_q", "Schedule")
    assert list(Schedule.objects.values_list("name", "func")) == [(SWEEP_SCHEDULE_NAME, SWEEP_FUNC)]
