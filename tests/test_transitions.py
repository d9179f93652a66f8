"""ModifyTask's transitions: each is a conditional UPDATE, so the right state moves once and
the wrong state (or a second racer) changes nothing."""

from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from modify.models import ModifyTask

pytestmark = pytest.mark.django_db
S = ModifyTask.State


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("maria")


@pytest.fixture
def make(owner):
    def make(state=S.QUEUED, **fields):
        return ModifyTask.objects.create(
            owner=owner, prompt="a snowy winter night", source_kind="url", source_url="https://example.com/a.mp4",
            state=state, **fields,
        )

    return make


def row(task):
    """Everything stored for the task, fresh from the database."""
    fresh = ModifyTask.objects.get(pk=task.pk)
    return {**model_to_dict(fresh), "updated_at": fresh.updated_at, "created_at": fresh.created_at}


# --- Allowed transitions --------------------------------------------------------------------------


def test_claim_for_submission_moves_queued_to_submitting_and_counts_the_attempt(make):
    task = make(next_submit_at=timezone.now())
    before = timezone.now()
    assert task.claim_for_submission() is True
    assert task.state == S.SUBMITTING
    assert task.submit_attempts == 1
    assert task.submitting_at >= before and task.updated_at >= before
    assert ModifyTask.objects.get(pk=task.pk).state == S.SUBMITTING


def test_retry_submission_puts_it_back_in_the_queue_later(make):
    task = make()
    assert task.claim_for_submission() is True
    assert task.retry_submission(60, reason="The provider is busy.") is True
    assert task.state == S.QUEUED
    assert task.error_message == "The provider is busy."
    assert timedelta(seconds=55) < task.next_submit_at - timezone.now() <= timedelta(seconds=60)
    assert task.claim_for_submission() is False  # not before the retry is due
    ModifyTask.objects.filter(pk=task.pk).update(next_submit_at=timezone.now())
    assert task.claim_for_submission() is True
    assert task.submit_attempts == 2  # the retry counts as a second attempt


def test_mark_generating_books_the_first_poll(make, settings):
    settings.LUMA_POLL_FIRST_SECONDS = 30
    task = make(S.SUBMITTING, error_message="The provider is busy.")
    assert task.mark_generating("a" * 32) is True
    assert task.state == S.GENERATING
    assert task.provider_task_id == "a" * 32
    assert task.error_message == ""  # an old retry note no longer applies
    assert task.next_poll_at - task.generating_at == timedelta(seconds=30)


def test_record_poll_counts_and_books_the_next_one(make):
    task = make(S.GENERATING)
    later = timezone.now() + timedelta(minutes=2)
    assert task.record_poll(later) is True
    assert task.record_poll(later) is True
    assert (task.state, task.poll_count, task.next_poll_at) == (S.GENERATING, 2, later)
    assert task.last_polled_at is not None


def test_start_archiving_then_succeed(make):
    task = make(S.GENERATING)
    assert task.start_archiving("https://files.example.com/result.mp4") is True
    assert (task.state, task.result_url) == (S.ARCHIVING, "https://files.example.com/result.mp4")
    assert task.archiving_at is not None and task.finished_at is None
    assert task.succeed(result_file="results/x/result.mp4", result_duration=2.0, result_width=320) is True
    assert task.state == S.SUCCEEDED
    assert task.result_file.name == "results/x/result.mp4"
    assert (task.result_duration, task.result_width) == (2.0, 320)
    assert task.finished_at >= task.archiving_at
    assert task.is_terminal


@pytest.mark.parametrize("stage", [S.QUEUED, S.SUBMITTING, S.GENERATING, S.ARCHIVING])
def test_fail_records_the_stage_it_failed_in(make, stage):
    task = make(stage)
    assert task.fail("The provider rejected the API key.", code=401) is True
    stored = ModifyTask.objects.get(pk=task.pk)
    assert stored.state == S.FAILED
    assert stored.failed_stage == stage
    assert (stored.error_code, stored.error_message) == (401, "The provider rejected the API key.")
    assert stored.finished_at is not None
    assert [label for label, _ in stored.timeline][-1] == "Failed"


# --- Wrong states change nothing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, attempt",
    [
        (S.SUBMITTING, lambda t: t.claim_for_submission()),
        (S.GENERATING, lambda t: t.claim_for_submission()),
        (S.QUEUED, lambda t: t.retry_submission(30)),
        (S.QUEUED, lambda t: t.mark_generating("a" * 32)),
        (S.ARCHIVING, lambda t: t.record_poll(timezone.now())),
        (S.FAILED, lambda t: t.record_poll(timezone.now())),
        (S.SUBMITTING, lambda t: t.start_archiving("https://e.com/r.mp4")),
        (S.SUCCEEDED, lambda t: t.start_archiving("https://e.com/r.mp4")),
        (S.GENERATING, lambda t: t.succeed(result_file="results/x.mp4")),
        (S.FAILED, lambda t: t.succeed(result_file="results/x.mp4")),
        (S.SUCCEEDED, lambda t: t.fail("too late")),
        (S.FAILED, lambda t: t.fail("again")),
    ],
)
def test_a_transition_from_the_wrong_state_returns_false_and_changes_nothing(make, state, attempt):
    task = make(state, error_message="original", finished_at=timezone.now() if state in ModifyTask.TERMINAL_STATES else None)
    before = row(task)
    assert attempt(task) is False
    assert row(task) == before


def test_a_stale_instance_cannot_fail_a_task_that_moved_on(make):
    """A poll still holding "generating" must not fail a task a callback already archived."""
    stale = make(S.GENERATING)
    ModifyTask.objects.get(pk=stale.pk).start_archiving("https://e.com/r.mp4")
    before = row(stale)
    assert stale.fail("gave up waiting") is False
    assert row(stale) == before


def test_two_racing_claims_only_one_wins(make):
    task = make()
    first, second = ModifyTask.objects.get(pk=task.pk), ModifyTask.objects.get(pk=task.pk)
    results = [first.claim_for_submission(), second.claim_for_submission()]
    assert sorted(results) == [False, True]
    stored = ModifyTask.objects.get(pk=task.pk)
    assert stored.state == S.SUBMITTING
    assert stored.submit_attempts == 1


def test_two_racing_finalizers_only_one_archives(make):
    task = make(S.GENERATING)
    callback, poll = ModifyTask.objects.get(pk=task.pk), ModifyTask.objects.get(pk=task.pk)
    assert callback.start_archiving("https://e.com/from-callback.mp4") is True
    assert poll.start_archiving("https://e.com/from-poll.mp4") is False
    assert ModifyTask.objects.get(pk=task.pk).result_url == "https://e.com/from-callback.mp4"


# --- Callbacks ------------------------------------------------------------------------------------------


def test_record_callback_is_true_only_the_first_time(make):
    task = make(S.GENERATING)
    assert task.record_callback() is True
    first_at = ModifyTask.objects.get(pk=task.pk).callback_received_at
    assert first_at is not None and task.callback_received_at == first_at
    assert task.record_callback() is False
    assert ModifyTask.objects.get(pk=task.pk).record_callback() is False  # another worker's copy too
    stored = ModifyTask.objects.get(pk=task.pk)
    assert stored.callback_received_at == first_at
    assert stored.state == S.GENERATING  # a callback alone changes no state


# --- Querysets ----------------------------------------------------------------------------------------------


def test_due_for_poll_selects_generating_tasks_whose_poll_is_due(make):
    now = timezone.now()
    due = make(S.GENERATING, next_poll_at=now - timedelta(seconds=1))
    due_now = make(S.GENERATING, next_poll_at=now)
    never_booked = make(S.GENERATING, next_poll_at=None)
    make(S.GENERATING, next_poll_at=now + timedelta(seconds=30))  # not yet
    make(S.ARCHIVING, next_poll_at=now - timedelta(minutes=5))
    make(S.SUBMITTING, next_poll_at=now - timedelta(minutes=5))
    make(S.FAILED, next_poll_at=now - timedelta(minutes=5))
    assert set(ModifyTask.objects.due_for_poll(now)) == {due, due_now, never_booked}


def test_in_gallery_is_succeeded_and_shared_only(make):
    shown = make(S.SUCCEEDED, shared=True)
    make(S.SUCCEEDED, shared=False)
    make(S.FAILED, shared=True)
    make(S.GENERATING, shared=True)
    assert list(ModifyTask.objects.in_gallery()) == [shown]


def test_active_excludes_finished_tasks(make):
    live = {make(state) for state in (S.QUEUED, S.SUBMITTING, S.GENERATING, S.ARCHIVING)}
    make(S.SUCCEEDED)
    make(S.FAILED)
    assert set(ModifyTask.objects.active()) == live


# --- What the pages read ----------------------------------------------------------------------------------------


def test_steps_done_and_timeline_follow_the_task(make):
    task = make()
    assert task.steps_done == []
    assert [label for label, _ in task.timeline] == ["Queued"]
    task.claim_for_submission()
    task.mark_generating("a" * 32)
    assert task.steps_done == ["queued", "submitting"]
    assert [label for label, _ in task.timeline] == ["Queued", "Submitted to the provider", "Provider generating"]
    task.start_archiving("https://e.com/r.mp4")
    task.succeed()
    assert [label for label, _ in task.timeline][-2:] == ["Archiving the result", "Done"]
    assert task.elapsed == task.finished_at - task.created_at


@pytest.mark.django_db(transaction=True)
def test_many_workers_racing_for_one_task_change_it_once(django_user_model):
    """Real threads, real connections: the conditional UPDATE lets exactly one claim win."""
    import threading

    from django.db import connection

    owner = django_user_model.objects.create_user("racer")
    task = ModifyTask.objects.create(owner=owner, prompt="p", source_kind="url", source_url="https://x/a.mp4")
    start, results = threading.Barrier(8), []

    def worker():
        try:
            mine = ModifyTask.objects.get(pk=task.pk)
            start.wait()
            results.append(mine.claim_for_submission())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    task.refresh_from_db()
    assert task.state == S.SUBMITTING and task.submit_attempts == 1
