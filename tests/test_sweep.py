"""The every-minute sweep (modify.sweep.sweep, run as modify.jobs.sweep) against the sandbox over real HTTP."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from modify import jobs
from modify.models import ApiKey, ModifyTask, TaskEvent
from modify.schedules import SWEEP_FUNC, SWEEP_SCHEDULE_NAME, ensure_sweep_schedule
from modify.states import Actor
from modify.sweep import LOST_SENDING_AFTER, sweep
from modify.timing import worker_gave_up_after
from sandbox.models import Account
from sandbox.models import Task as SandboxTask
from tests.factories import backdate, make_member, make_task

S = ModifyTask.State


@pytest.fixture
def owner(transactional_db):
    return make_member("lee")


def generating_task(owner, flag=0, **moments):
    """A task the sandbox knows, still in flight (no job runs for it) unless ``flag`` says otherwise,
    due for a poll; ``moments`` move its lifecycle timestamps."""
    upstream = SandboxTask.objects.create(
        account=Account.for_key("sandbox-key"), prompt="p", video_url="http://x/a.mp4", base_url="http://x",
        source="sandbox/none.mp4", success_flag=flag, error_code=501 if flag == 3 else None,
        error_message="the model gave up" if flag == 3 else "",
    )
    task = make_task(owner, S.GENERATING, provider_task_id=upstream.task_id)
    return backdate(task, **{"next_poll_at": timezone.now() - timedelta(seconds=1), **moments})


def polls(task):
    """The details of the task's "poll" events, in order."""
    return list(TaskEvent.objects.filter(task_id=task.pk, kind="poll").order_by("created_at", "id").values_list("detail", flat=True))


def test_a_pending_task_is_polled_with_a_growing_interval(app, owner, settings):
    settings.LUMA_POLL_FIRST_SECONDS = 30
    task = generating_task(owner)
    entered = task.updated_at
    intervals = []
    for _ in range(5):
        backdate(task, next_poll_at=timezone.now() - timedelta(seconds=1))
        assert sweep()["polled"] == 1
        task.refresh_from_db()
        intervals.append((task.next_poll_at - task.last_polled_at).total_seconds())
    assert task.state == S.GENERATING and task.poll_count == 5
    assert all(interval >= 30 for interval in intervals), intervals  # never faster than the provider asks
    assert intervals[-1] > intervals[0]
    assert max(intervals) <= settings.LUMA_POLL_MAX_INTERVAL_SECONDS * 1.2
    # Each poll logs the provider's answer, by the provider, without moving the task.
    assert polls(task) == ["successFlag 0 (generating)"] * 5
    event = TaskEvent.objects.filter(task_id=task.pk, kind="poll").last()
    assert (event.actor, event.from_state, event.to_state) == (Actor.PROVIDER, S.GENERATING, S.GENERATING)
    assert task.timeline()[-1][1:] == ("Asked the provider: successFlag 0 (generating)", 5)
    assert task.updated_at == entered  # booking polls leaves "when it entered its state" alone


def test_tasks_not_yet_due_are_left_alone(app, owner):
    task = generating_task(owner, next_poll_at=timezone.now() + timedelta(minutes=5))
    assert sweep()["polled"] == 0
    task.refresh_from_db()
    assert task.poll_count == 0
    assert polls(task) == []


def test_a_failed_generation_becomes_failed_with_the_providers_reason(app, owner):
    task = generating_task(owner, flag=3)
    jobs.sweep()  # the scheduled job runs the same sweep
    task.refresh_from_db()
    assert task.state == S.FAILED and task.failed_stage == S.GENERATING
    assert task.error_code == 501 and "the model gave up" in task.error_message
    # The poll's answer carries the provider's error code and message.
    assert polls(task) == ["successFlag 3 (generation failed), errorCode 501: the model gave up"]
    assert task.events.last().kind == "fail"
    assert task.credits is None  # a failed generation is given back: it spends nothing against quotas and stats
    assert task.error_message.endswith("(the model gave up). Try a different prompt or video.")


def test_a_task_the_provider_forgot_fails_and_does_not_stop_the_others(app, owner):
    lost = make_task(owner, S.GENERATING, provider_task_id="f" * 32)  # a task id the sandbox never issued
    backdate(lost, next_poll_at=timezone.now() - timedelta(seconds=1))
    pending = generating_task(owner)
    assert sweep()["polled"] == 2
    lost.refresh_from_db()
    pending.refresh_from_db()
    assert lost.state == S.FAILED and "no longer knows this task" in lost.error_message
    assert pending.state == S.GENERATING and pending.poll_count == 1
    [lost_answer] = polls(lost)
    assert "NotFoundError" in lost_answer and "giving up" in lost_answer
    assert polls(pending) == ["successFlag 0 (generating)"]


def test_a_poll_that_raises_is_logged_and_does_not_stop_the_others(owner, monkeypatch):
    now = timezone.now()
    broken = backdate(make_task(owner, S.GENERATING), next_poll_at=now - timedelta(seconds=2))  # oldest due first
    fine = backdate(make_task(owner, S.GENERATING), next_poll_at=now - timedelta(seconds=1))
    asked = []

    def poll(task, due_only=False):
        asked.append(task.pk)
        if task.pk == broken.pk:
            raise RuntimeError("a bad row")
        return True

    monkeypatch.setattr("modify.polling.poll", poll)
    assert sweep()["polled"] == 1  # only the poll that went through counts
    assert asked == [broken.pk, fine.pk]
    event = broken.events.last()
    assert (event.kind, event.actor) == ("poll", Actor.SYSTEM)
    assert event.detail == "the poll failed unexpectedly; it will be asked again"
    assert ModifyTask.objects.get(pk=broken.pk).state == S.GENERATING
    assert polls(fine) == []  # the patched poll logs nothing itself


def test_gives_up_after_the_maximum_wait(app, owner, settings):
    settings.LUMA_MAX_WAIT_SECONDS = 600
    task = generating_task(owner, generating_at=timezone.now() - timedelta(seconds=601))
    sweep()
    task.refresh_from_db()
    assert task.state == S.FAILED
    assert "did not finish within 10 minutes" in task.error_message
    assert polls(task) == []  # gave up without asking


def test_a_rate_limited_poll_keeps_the_task_and_pushes_it_back(app, owner, inject_faults):
    inject_faults("rate_limit:1")
    task = generating_task(owner)
    sweep()
    task.refresh_from_db()
    assert task.state == S.GENERATING
    assert task.next_poll_at > timezone.now()
    [answer] = polls(task)
    assert "will ask again" in answer and "successFlag" not in answer


def test_due_retries_and_lost_sendings_are_enqueued_once_and_their_jobs_can_claim(owner, monkeypatch):
    enqueued = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", lambda task: enqueued.append(task.pk))
    lost = make_task(owner, created_at=timezone.now() - timedelta(minutes=5))  # its first job never ran
    retried = make_task(owner)
    assert retried.claim() and retried.retry_later(20, reason="HTTP 503", note="Waiting to retry: the provider is busy")
    backdate(retried, next_submit_at=timezone.now() - timedelta(seconds=10))  # the 20 s have passed
    entered = {task.pk: ModifyTask.objects.get(pk=task.pk).updated_at for task in (lost, retried)}
    make_task(owner)  # fresh: neither due nor lost
    assert sweep()["requeued"] == 2
    assert sorted(enqueued) == sorted([lost.pk, retried.pk])
    assert sweep()["requeued"] == 0  # not enqueued again a minute later
    assert len(enqueued) == 2
    # Each requeue is logged with why it was enqueued, and leaves the task queued since it was.
    for task, reason in ((lost, "its sending job was not picked up"), (retried, "its retry is due")):
        requeues = list(task.events.filter(kind="requeue").values_list("from_state", "to_state", "detail"))
        assert requeues == [(S.QUEUED, S.QUEUED, reason)]
        assert task.events.last().kind == "requeue"
        assert ModifyTask.objects.get(pk=task.pk).updated_at == entered[task.pk]
    # The jobs the sweep enqueued can claim their tasks (the sweep did not push them out of reach).
    lost.refresh_from_db()
    retried.refresh_from_db()
    assert lost.claim() and retried.claim()


def test_a_sending_no_worker_took_is_enqueued_again_after_a_while(owner, monkeypatch):
    enqueued = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", lambda task: enqueued.append(task.pk))
    task = make_task(owner, created_at=timezone.now() - timedelta(minutes=5))
    sweep()
    sweep()  # enqueued just now: left alone
    assert enqueued == [task.pk]
    backdate(task, enqueued_at=timezone.now() - LOST_SENDING_AFTER - timedelta(minutes=1))
    sweep()
    assert enqueued == [task.pk, task.pk]
    assert list(task.events.filter(kind="requeue").values_list("detail", flat=True)) == [
        "its sending job was not picked up"] * 2


def test_a_due_retry_whose_job_was_lost_is_enqueued_again_as_not_picked_up(owner, monkeypatch):
    enqueued = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", lambda task: enqueued.append(task.pk))
    task = make_task(owner)
    assert task.claim() and task.retry_later(20, reason="HTTP 503", note="Waiting to retry: the provider is busy")
    backdate(task, next_submit_at=timezone.now() - timedelta(minutes=10))
    sweep()  # enqueued once: its retry is due
    backdate(task, enqueued_at=timezone.now() - LOST_SENDING_AFTER - timedelta(minutes=1))  # and not taken since
    sweep()
    assert enqueued == [task.pk, task.pk]
    assert list(task.events.filter(kind="requeue").values_list("detail", flat=True)) == [
        "its retry is due", "its sending job was not picked up"]


def test_an_archive_interrupted_by_a_dead_worker_is_polled_and_archived_again(owner, monkeypatch):
    polled = []
    monkeypatch.setattr("modify.polling.poll", lambda task, due_only=False: polled.append(task.pk) or True)
    long_ago = timezone.now() - timedelta(hours=2)
    archiving = backdate(make_task(owner, S.ARCHIVING), archiving_at=long_ago, generating_at=long_ago, updated_at=long_ago)
    fresh = make_task(owner, S.ARCHIVING)
    assert sweep()["recovered"] == 1
    archiving.refresh_from_db()
    fresh.refresh_from_db()
    assert archiving.state == S.GENERATING and archiving.next_poll_at <= timezone.now()
    assert archiving.archiving_at == long_ago  # the maximum wait still counts from the first archiving
    resumed = archiving.events.last()
    assert (resumed.kind, resumed.from_state, resumed.to_state) == ("resume_archiving", S.ARCHIVING, S.GENERATING)
    assert (resumed.actor, resumed.detail) == (Actor.SYSTEM, "its worker stopped")
    assert fresh.state == S.ARCHIVING
    assert polled == [archiving.pk]  # polled in the same sweep (the poll confirms, then archives again)


@pytest.mark.parametrize(
    "state, moments, message",
    [
        # A worker claimed it and died before generate went out (nothing was spent).
        (S.SUBMITTING, {"submitting_at": "long_ago"}, "worker handling this task stopped"),
        # Generate went out; neither its answer nor a callback came by the deadline.
        (S.UNCONFIRMED, {"submitting_at": "long_ago", "callback_deadline": "past"},
         "never confirmed this task, nor called back"),
    ],
    ids=["worker-died", "never-confirmed"],
)
def test_a_sending_that_never_came_back_fails_visibly(owner, state, moments, message):
    times = {"long_ago": timezone.now() - timedelta(hours=2), "past": timezone.now() - timedelta(minutes=1)}
    task = backdate(make_task(owner, state), **{field: times[when] for field, when in moments.items()})
    assert sweep()["abandoned"] == 1
    task.refresh_from_db()
    assert task.state == S.FAILED and task.failed_stage == state
    assert message in task.error_message
    assert task.status_note == ""
    event = task.events.last()
    assert (event.kind, event.from_state, event.actor) == ("fail", state, Actor.SYSTEM)
    assert sweep()["abandoned"] == 0  # failed once


def test_a_sending_is_only_abandoned_after_the_worker_timeout(owner):
    task = backdate(make_task(owner, S.SUBMITTING),
                    submitting_at=timezone.now() - worker_gave_up_after() + timedelta(minutes=1))
    assert sweep()["abandoned"] == 0
    task.refresh_from_db()
    assert task.state == S.SUBMITTING


@pytest.mark.parametrize("answered", [True, False], ids=["no-answer-waits-for-callback", "worker-died-after-generate"])
def test_an_unconfirmed_task_is_left_alone_until_its_deadline(owner, answered):
    """Generate went out: the provider may have created (and billed) the task, so it is neither resent nor
    failed as a dead worker; it waits for its id until the deadline, whether generate got no answer or
    the worker died mid-call."""
    long_ago = timezone.now() - timedelta(hours=2)
    task = make_task(owner, S.UNCONFIRMED)
    if answered:
        assert task.no_answer("waiting for its callback")
    task = backdate(task, submitting_at=long_ago, updated_at=long_ago,
                    callback_deadline=timezone.now() + timedelta(minutes=10))
    assert sweep() == {"requeued": 0, "polled": 0, "recovered": 0, "abandoned": 0}
    task.refresh_from_db()
    assert task.state == S.UNCONFIRMED
    assert task.status_note == ("waiting for its callback" if answered else "")
    assert task.events.last().kind == ("no_answer" if answered else "generate_sent")


def test_the_schedule_runs_every_minute_and_is_created_once(transactional_db):
    ensure_sweep_schedule(Schedule)
    ensure_sweep_schedule(Schedule)
    schedule = Schedule.objects.get(name=SWEEP_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("modify.jobs.sweep", "I", 1)
    assert SWEEP_FUNC == "modify.jobs.sweep" and callable(jobs.sweep)


def test_a_task_is_polled_with_the_key_that_created_it_even_after_staff_add_another(app, owner):
    task = generating_task(owner)  # created with the sandbox's own key (no admin key then)
    later = ApiKey(label="team key added later")
    later.secret = "a-key-of-another-account"
    later.save()
    sweep()
    task.refresh_from_db()
    assert task.state == S.GENERATING and task.poll_count == 1, task.error_message
    assert polls(task) == ["successFlag 0 (generating)"]


def test_a_sandbox_task_fails_clearly_once_the_app_talks_to_the_real_provider(app, owner, settings):
    task = generating_task(owner)
    settings.LUMA_API_BASE = "http://127.0.0.1:9"  # configured for another provider now
    sweep()
    task.refresh_from_db()
    assert task.state == S.FAILED
    assert "started with the built-in sandbox, which the app no longer talks to" in task.error_message
