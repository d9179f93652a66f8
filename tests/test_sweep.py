"""The every-minute schedule (modify.jobs.poll_due_tasks) against the sandbox over real HTTP."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from django_q.models import Schedule

from modify.jobs import poll_due_tasks
from modify.models import ModifyTask
from modify.schedules import POLL_SCHEDULE_NAME, ensure_poll_schedule
from sandbox.models import Account
from sandbox.models import Task as SandboxTask


@pytest.fixture
def owner(transactional_db):
    return User.objects.create_user("lee")


def generating_task(owner, flag=0, **fields):
    """A task the sandbox knows, still in flight (no job runs for it) unless ``flag`` says otherwise."""
    upstream = SandboxTask.objects.create(
        account=Account.for_key("sandbox-key"), prompt="p", video_url="http://x/a.mp4", base_url="http://x",
        source="sandbox/none.mp4", success_flag=flag, error_code=501 if flag == 3 else None,
        error_message="the model gave up" if flag == 3 else "",
    )
    now = timezone.now()
    defaults = dict(generating_at=now, next_poll_at=now - timedelta(seconds=1))
    return ModifyTask.objects.create(
        owner=owner, prompt="p", source_kind="url", source_url="http://x/a.mp4",
        state=ModifyTask.State.GENERATING, provider_task_id=upstream.task_id, is_sandbox=True,
        **{**defaults, **fields},
    )


def test_a_pending_task_is_polled_with_a_growing_interval(app, owner, settings):
    settings.LUMA_POLL_FIRST_SECONDS = 30
    task = generating_task(owner)
    intervals = []
    for _ in range(5):
        ModifyTask.objects.filter(pk=task.pk).update(next_poll_at=timezone.now() - timedelta(seconds=1))
        assert poll_due_tasks()["polled"] == 1
        task.refresh_from_db()
        intervals.append((task.next_poll_at - task.last_polled_at).total_seconds())
    assert task.state == ModifyTask.State.GENERATING and task.poll_count == 5
    assert all(interval >= 30 for interval in intervals), intervals  # never faster than the provider asks
    assert intervals[-1] > intervals[0]
    assert max(intervals) <= settings.LUMA_POLL_MAX_INTERVAL_SECONDS * 1.2


def test_tasks_not_yet_due_are_left_alone(app, owner):
    task = generating_task(owner, next_poll_at=timezone.now() + timedelta(minutes=5))
    assert poll_due_tasks()["polled"] == 0
    task.refresh_from_db()
    assert task.poll_count == 0


def test_a_failed_generation_becomes_failed_with_the_providers_reason(app, owner):
    task = generating_task(owner, flag=3)
    poll_due_tasks()
    task.refresh_from_db()
    assert task.state == ModifyTask.State.FAILED and task.failed_stage == ModifyTask.State.GENERATING
    assert task.error_code == 501 and "the model gave up" in task.error_message


def test_a_task_the_provider_forgot_fails_and_does_not_stop_the_others(app, owner):
    lost = generating_task(owner)
    ModifyTask.objects.filter(pk=lost.pk).update(provider_task_id="f" * 32)
    pending = generating_task(owner)
    assert poll_due_tasks()["polled"] == 2
    lost.refresh_from_db()
    pending.refresh_from_db()
    assert lost.state == ModifyTask.State.FAILED and "no longer knows this task" in lost.error_message
    assert pending.state == ModifyTask.State.GENERATING and pending.poll_count == 1


def test_gives_up_after_the_maximum_wait(app, owner, settings):
    settings.LUMA_MAX_WAIT_SECONDS = 600
    task = generating_task(owner, generating_at=timezone.now() - timedelta(seconds=601))
    poll_due_tasks()
    task.refresh_from_db()
    assert task.state == ModifyTask.State.FAILED
    assert "did not finish within 10 minutes" in task.error_message


def test_a_rate_limited_poll_keeps_the_task_and_pushes_it_back(app, owner, inject_faults):
    inject_faults("rate_limit:1")
    task = generating_task(owner)
    poll_due_tasks()
    task.refresh_from_db()
    assert task.state == ModifyTask.State.GENERATING
    assert task.next_poll_at > timezone.now()


def test_due_retries_and_lost_submissions_are_enqueued_once_and_their_jobs_can_claim(owner, monkeypatch):
    enqueued = []
    monkeypatch.setattr("modify.jobs.enqueue_submit", lambda task: enqueued.append(task.pk))
    old = timezone.now() - timedelta(minutes=5)
    lost = ModifyTask.objects.create(
        owner=owner, prompt="p", source_kind="url", source_url="http://x", created_at=old, updated_at=old
    )
    retried = ModifyTask.objects.create(owner=owner, prompt="p", source_kind="url", source_url="http://x")
    assert retried.claim_for_submission() and retried.retry_submission(20, reason="Waiting to retry")
    a_while_ago = timezone.now() - timedelta(seconds=30)  # the 20 s have passed
    ModifyTask.objects.filter(pk=retried.pk).update(updated_at=a_while_ago, next_submit_at=a_while_ago + timedelta(seconds=20))
    ModifyTask.objects.create(owner=owner, prompt="p", source_kind="url", source_url="http://x")  # fresh: neither due nor lost
    assert poll_due_tasks()["requeued"] == 2
    assert sorted(enqueued) == sorted([lost.pk, retried.pk])
    assert poll_due_tasks()["requeued"] == 0  # not enqueued again a minute later
    # The jobs the sweep enqueued can claim their tasks (the sweep did not push them out of reach).
    assert lost.claim_for_submission() and retried.claim_for_submission()


def test_a_submission_no_worker_took_is_enqueued_again_after_a_while(owner, monkeypatch):
    enqueued = []
    monkeypatch.setattr("modify.jobs.enqueue_submit", lambda task: enqueued.append(task.pk))
    old = timezone.now() - timedelta(minutes=5)
    task = ModifyTask.objects.create(
        owner=owner, prompt="p", source_kind="url", source_url="http://x", created_at=old, updated_at=old
    )
    poll_due_tasks()
    ModifyTask.objects.filter(pk=task.pk).update(updated_at=timezone.now() - timedelta(minutes=3))
    poll_due_tasks()
    assert enqueued == [task.pk, task.pk]


def test_an_archive_interrupted_by_a_dead_worker_is_polled_and_archived_again(owner, monkeypatch):
    monkeypatch.setattr("modify.lifecycle.poll", lambda task, due_only: task)  # the poll itself is tested above
    long_ago = timezone.now() - timedelta(hours=2)
    archiving = ModifyTask.objects.create(
        owner=owner, prompt="p", source_kind="url", state=ModifyTask.State.ARCHIVING, archiving_at=long_ago,
        generating_at=long_ago, updated_at=long_ago,
    )
    fresh = ModifyTask.objects.create(
        owner=owner, prompt="p", source_kind="url", state=ModifyTask.State.ARCHIVING, archiving_at=timezone.now()
    )
    assert poll_due_tasks()["recovered"] == 1
    archiving.refresh_from_db()
    fresh.refresh_from_db()
    assert archiving.state == ModifyTask.State.GENERATING and archiving.next_poll_at <= timezone.now()
    assert fresh.state == ModifyTask.State.ARCHIVING


@pytest.mark.parametrize(
    "waiting_for_callback, message",
    [(False, "worker handling this task stopped"), (True, "never confirmed this task, nor called back")],
)
def test_a_submission_that_never_came_back_fails_visibly(owner, waiting_for_callback, message):
    long_ago = timezone.now() - timedelta(hours=2)
    task = ModifyTask.objects.create(
        owner=owner, prompt="p", source_kind="url", state=ModifyTask.State.SUBMITTING, submitting_at=long_ago,
        next_submit_at=long_ago + timedelta(hours=1) if waiting_for_callback else None,
    )
    assert poll_due_tasks()["abandoned"] == 1
    task.refresh_from_db()
    assert task.state == ModifyTask.State.FAILED and task.failed_stage == ModifyTask.State.SUBMITTING
    assert message in task.error_message


def test_a_submission_waiting_for_its_callback_is_left_alone_until_its_deadline(owner):
    long_ago = timezone.now() - timedelta(hours=2)
    task = ModifyTask.objects.create(
        owner=owner, prompt="p", source_kind="url", state=ModifyTask.State.SUBMITTING, submitting_at=long_ago,
        next_submit_at=timezone.now() + timedelta(minutes=10),
    )
    assert poll_due_tasks()["abandoned"] == 0
    task.refresh_from_db()
    assert task.state == ModifyTask.State.SUBMITTING


def test_the_schedule_runs_every_minute_and_is_created_once(transactional_db):
    ensure_poll_schedule(Schedule)
    ensure_poll_schedule(Schedule)
    schedule = Schedule.objects.get(name=POLL_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("modify.jobs.poll_due_tasks", "I", 1)


def test_a_task_is_polled_with_the_key_that_created_it_even_after_staff_add_another(app, owner):
    from modify.models import ApiKey

    task = generating_task(owner)  # created with the sandbox's own key (no admin key then)
    later = ApiKey(label="team key added later")
    later.secret = "a-key-of-another-account"
    later.save()
    poll_due_tasks()
    task.refresh_from_db()
    assert task.state == ModifyTask.State.GENERATING and task.poll_count == 1, task.error_message


def test_a_sandbox_task_fails_clearly_once_the_app_talks_to_the_real_provider(app, owner, settings):
    task = generating_task(owner)
    settings.LUMA_API_BASE = "http://127.0.0.1:9"  # configured for another provider now
    poll_due_tasks()
    task.refresh_from_db()
    assert task.state == ModifyTask.State.FAILED
    assert "started with the built-in sandbox, which the app no longer talks to" in task.error_message
