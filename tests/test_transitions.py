"""ModifyTask's named moves: each is a conditional UPDATE through ``ModifyTask.transition``, so the
right state moves once and logs one event, and the wrong state (or a stale copy, or a second racer)
changes nothing and logs nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from modify.models import ApiKey, LifecycleError, ModifyTask, TaskEvent
from modify.states import TRANSITIONS, Actor
from tests.factories import RESULT_URL, backdate, make_member, make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
PROVIDER_ID = "a" * 32
VIDEO_URL = "https://files.example.com/uploads/clip.mp4"


def row(task):
    """Every stored column of the task, fresh from the database."""
    fresh = ModifyTask.objects.get(pk=task.pk)
    return {field.attname: getattr(fresh, field.attname) for field in fresh._meta.concrete_fields}


def events(task):
    return list(TaskEvent.objects.filter(task_id=task.pk).order_by("created_at", "id"))


def in_an_hour():
    return timezone.now() + timedelta(hours=1)


def team_key():
    key = ApiKey(label="team key")
    key.secret = "a-team-secret-1234"
    key.save()
    return key


def move(method, *args, **kwargs):
    """``task.<method>(*args, **kwargs)`` as a parameter (named after the move in test ids)."""
    def attempt(task):
        return getattr(task, method)(*args, **kwargs)

    attempt.__name__ = method
    return attempt


# --- Allowed transitions --------------------------------------------------------------------------


def test_claim_moves_queued_to_submitting_and_counts_the_attempt(member):
    task = backdate(make_task(member), next_submit_at=timezone.now())  # a retry that is due now
    before = timezone.now()
    assert task.claim() is True
    assert task.state == S.SUBMITTING
    assert task.submit_attempts == 1
    assert task.submitting_at >= before and task.updated_at >= before
    assert task.next_submit_at is None  # only a queued retry has one
    assert ModifyTask.objects.get(pk=task.pk).state == S.SUBMITTING


def test_retry_later_puts_it_back_in_the_queue_later_with_a_note_for_the_member(member):
    task = make_task(member)
    assert task.claim() is True
    assert task.retry_later(60, reason="HTTP 503", note="Waiting to retry: The provider is busy.") is True
    assert task.state == S.QUEUED
    assert task.status_note == "Waiting to retry: The provider is busy."
    assert task.error_message == ""  # only a failure has an error message
    assert timedelta(seconds=55) < task.next_submit_at - timezone.now() <= timedelta(seconds=60)
    assert task.claim() is False  # not before the retry is due
    backdate(task, next_submit_at=timezone.now())
    assert task.claim() is True
    assert task.submit_attempts == 2  # the retry counts as a second attempt
    assert task.status_note == ""  # the note spoke of the queued state


def test_retry_later_from_unconfirmed_clears_the_callback_deadline(member):
    """generate answered with an error that may pass (so it surely created nothing): back to the queue."""
    task = make_task(member, S.UNCONFIRMED)
    assert task.callback_deadline is not None
    assert task.retry_later(60, reason="HTTP 503", note="Waiting to retry: The provider had a server error.") is True
    assert task.state == S.QUEUED
    assert task.callback_deadline is None  # only an unconfirmed task waits for one
    assert task.status_note == "Waiting to retry: The provider had a server error."
    assert task.error_message == ""
    assert timedelta(seconds=55) < task.next_submit_at - timezone.now() <= timedelta(seconds=60)
    stored = ModifyTask.objects.get(pk=task.pk)
    assert (stored.state, stored.callback_deadline) == (S.QUEUED, None)
    event = events(task)[-1]
    assert (event.kind, event.from_state, event.to_state, event.detail) == ("retry_later", S.UNCONFIRMED, S.QUEUED, "HTTP 503")


def test_generate_sent_moves_submitting_to_unconfirmed_with_its_deadline_key_and_video_url(member):
    """Just before generate goes out: from here on the provider may have created (and billed) the task."""
    key = team_key()
    task = make_task(member, S.SUBMITTING)
    deadline = in_an_hour()
    before = timezone.now()
    assert task.generate_sent(deadline, key, VIDEO_URL) is True
    assert task.state == S.UNCONFIRMED
    assert (task.callback_deadline, task.api_key, task.provider_video_url) == (deadline, key, VIDEO_URL)
    assert task.provider_task_id == ""  # not known until generate answers (or a callback names it)
    assert task.updated_at >= before  # it entered a new state
    assert (task.status_note, task.error_message) == ("", "")
    stored = ModifyTask.objects.get(pk=task.pk)
    assert (stored.state, stored.callback_deadline, stored.api_key_id, stored.provider_video_url) == (
        S.UNCONFIRMED, deadline, key.pk, VIDEO_URL)
    assert task.claim() is False  # never sent blindly again
    assert task.generate_sent(in_an_hour(), key, VIDEO_URL) is False  # nor marked sent twice
    assert [event.kind for event in events(task)] == ["created", "claim", "generate_sent"]


def test_accepted_books_the_first_poll_and_no_old_retry_note_remains(member, settings):
    settings.LUMA_POLL_FIRST_SECONDS = 30
    key = team_key()
    task = make_task(member)
    assert task.claim() and task.retry_later(1, reason="HTTP 503", note="Waiting to retry: The provider is busy.")
    backdate(task, next_submit_at=timezone.now())
    assert task.claim() is True
    assert task.generate_sent(in_an_hour(), key, VIDEO_URL) is True
    assert task.accepted(PROVIDER_ID) is True
    assert task.state == S.GENERATING
    # The key and video URL come from generate_sent; accepted only adds the id.
    assert (task.provider_task_id, task.api_key, task.provider_video_url) == (PROVIDER_ID, key, VIDEO_URL)
    assert (task.status_note, task.error_message) == ("", "")  # an old retry note no longer applies
    assert task.next_poll_at - task.generating_at == timedelta(seconds=30)
    assert task.next_submit_at is None and task.callback_deadline is None
    assert [event.kind for event in events(task)] == [
        "created", "claim", "retry_later", "claim", "generate_sent", "accepted"]


@pytest.mark.parametrize("state", [S.QUEUED, S.SUBMITTING, S.GENERATING, S.ARCHIVING, S.SUCCEEDED, S.FAILED])
def test_accepted_moves_only_an_unconfirmed_task(member, state):
    """generate's answer counts only after generate_sent: never from the queue or a submitting task."""
    assert TRANSITIONS["accepted"].sources == (S.UNCONFIRMED,)
    task = make_task(member, state)
    before, logged = row(task), events(task)
    assert task.accepted(PROVIDER_ID) is False
    assert row(task) == before
    assert events(task) == logged


def test_no_answer_waits_unconfirmed_for_the_callback_which_adopts_it(member):
    """Generate was sent and not answered: never resent, the callback names the provider's task."""
    task = make_task(member, S.UNCONFIRMED)
    deadline, entered = task.callback_deadline, task.updated_at
    assert task.no_answer("The provider did not answer in time; waiting for its callback.") is True
    assert task.state == S.UNCONFIRMED  # a same-state row: it only sets the note
    assert task.callback_deadline == deadline  # set by generate_sent, unchanged
    assert task.updated_at == entered  # still unconfirmed since generate_sent
    assert task.next_submit_at is None  # no longer the marker of this phase
    assert task.status_note == "The provider did not answer in time; waiting for its callback."
    assert task.error_message == ""
    event = events(task)[-1]
    assert (event.kind, event.from_state, event.to_state, event.detail) == ("no_answer", S.UNCONFIRMED, S.UNCONFIRMED, "")
    assert task.claim() is False  # never sent again
    before = timezone.now()
    assert task.adopt(PROVIDER_ID) is True
    assert (task.state, task.provider_task_id) == (S.GENERATING, PROVIDER_ID)
    assert before <= task.next_poll_at <= timezone.now()  # polled at once, to confirm
    assert task.callback_deadline is None and task.status_note == ""


def test_requeue_marks_the_enqueue_and_only_one_sweep_wins(member):
    task = make_task(member)
    other_sweep = ModifyTask.objects.get(pk=task.pk)
    now = timezone.now()
    assert task.requeue(now, "its sending job was not picked up") is True
    assert (task.state, task.enqueued_at) == (S.QUEUED, now)
    assert events(task)[-1].detail == "its sending job was not picked up"
    assert other_sweep.requeue(timezone.now(), "its sending job was not picked up") is False  # read before the first enqueue
    assert ModifyTask.objects.get(pk=task.pk).enqueued_at == now
    assert task.claim() is True  # the enqueued job can still claim it


def test_keep_source_remembers_a_fetched_url_source(member):
    task = make_task(member, S.SUBMITTING)
    assert task.keep_source("sources/kept/clip.mp4", 2.5) is True
    stored = ModifyTask.objects.get(pk=task.pk)
    assert (stored.state, stored.source_file.name, stored.source_duration) == (S.SUBMITTING, "sources/kept/clip.mp4", 2.5)


def test_book_poll_counts_and_books_the_next_one(member):
    task = make_task(member, S.GENERATING)
    later = timezone.now() + timedelta(minutes=2)
    assert task.book_poll(later) is True
    assert task.book_poll(later) is True
    assert (task.state, task.poll_count, task.next_poll_at) == (S.GENERATING, 2, later)
    assert task.last_polled_at is not None


def test_book_poll_due_only_claims_a_due_poll_once(member):
    task = backdate(make_task(member, S.GENERATING), next_poll_at=timezone.now() - timedelta(seconds=1))
    other_sweep = ModifyTask.objects.get(pk=task.pk)
    later = timezone.now() + timedelta(minutes=2)
    assert task.book_poll(later, due_only=True) is True
    assert other_sweep.book_poll(later, due_only=True) is False  # no longer due: the first sweep booked it
    assert ModifyTask.objects.get(pk=task.pk).poll_count == 1


def test_result_found_then_archived(member):
    task = make_task(member, S.GENERATING)
    assert task.result_found(RESULT_URL) is True
    assert (task.state, task.result_url) == (S.ARCHIVING, RESULT_URL)
    assert task.archiving_at is not None and task.finished_at is None
    assert task.archived(result_file="results/x/result.mp4", result_duration=2.0, result_width=320) is True
    assert task.state == S.SUCCEEDED
    assert task.result_file.name == "results/x/result.mp4"
    assert (task.result_duration, task.result_width) == (2.0, 320)
    assert task.finished_at >= task.archiving_at
    assert task.is_terminal and task.is_succeeded and not task.can_retry


def test_resume_archiving_polls_again_and_keeps_the_first_archiving_time(member):
    task = make_task(member, S.ARCHIVING)
    first_archiving = task.archiving_at
    assert task.resume_archiving("the download got no answer") is True
    assert task.state == S.GENERATING and task.next_poll_at <= timezone.now()
    event = events(task)[-1]
    assert (event.kind, event.from_state, event.to_state, event.detail) == (
        "resume_archiving", S.ARCHIVING, S.GENERATING, "the download got no answer")
    assert task.result_found(RESULT_URL) is True
    assert task.archiving_at == first_archiving  # the maximum wait counts from the first archiving


@pytest.mark.parametrize("stage", [S.QUEUED, S.SUBMITTING, S.UNCONFIRMED, S.GENERATING, S.ARCHIVING])
def test_fail_records_the_stage_it_failed_in(member, stage):
    task = make_task(member, stage)
    assert task.fail("The provider rejected the API key.", code=401) is True
    stored = ModifyTask.objects.get(pk=task.pk)
    assert stored.state == S.FAILED
    assert stored.failed_stage == stage
    assert (stored.error_code, stored.error_message) == (401, "The provider rejected the API key.")
    assert stored.status_note == ""  # a waiting note no longer applies
    assert stored.finished_at is not None
    assert stored.is_failed and stored.is_terminal and stored.can_retry
    assert stored.timeline()[-1][1] == "Failed: The provider rejected the API key."


# --- Wrong states change nothing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, attempt",
    [
        (S.SUBMITTING, move("claim")),
        (S.GENERATING, move("claim")),
        (S.UNCONFIRMED, move("claim")),  # never sent twice
        (S.QUEUED, move("retry_later", 30, "HTTP 503", "Waiting to retry")),
        (S.GENERATING, move("retry_later", 30, "HTTP 503", "Waiting to retry")),  # generate answered long ago
        (S.QUEUED, move("generate_sent", in_an_hour(), None, VIDEO_URL)),  # not claimed by a worker
        (S.UNCONFIRMED, move("generate_sent", in_an_hour(), None, VIDEO_URL)),  # sent already
        (S.GENERATING, move("generate_sent", in_an_hour(), None, VIDEO_URL)),
        # accepted from every other state: test_accepted_moves_only_an_unconfirmed_task
        (S.SUBMITTING, move("no_answer", "waiting")),  # generate has not gone out
        (S.GENERATING, move("no_answer", "waiting")),
        (S.GENERATING, move("adopt", PROVIDER_ID)),
        (S.FAILED, move("adopt", PROVIDER_ID)),
        (S.SUBMITTING, move("requeue", timezone.now(), "its sending job was not picked up")),
        (S.QUEUED, move("keep_source", "sources/x.mp4", 2.0)),
        (S.UNCONFIRMED, move("keep_source", "sources/x.mp4", 2.0)),  # generate went out with the source it had
        (S.ARCHIVING, move("book_poll", timezone.now())),
        (S.FAILED, move("book_poll", timezone.now())),
        (S.SUBMITTING, move("result_found", "https://e.com/r.mp4")),
        (S.SUCCEEDED, move("result_found", "https://e.com/r.mp4")),
        (S.GENERATING, move("resume_archiving", "its worker stopped")),
        (S.GENERATING, move("archived", result_file="results/x.mp4")),
        (S.FAILED, move("archived", result_file="results/x.mp4")),
        (S.SUCCEEDED, move("fail", "too late")),
        (S.FAILED, move("fail", "again")),
    ],
)
def test_a_transition_from_the_wrong_state_returns_false_and_changes_nothing(member, state, attempt):
    task = make_task(member, state, error="original")
    before, logged = row(task), events(task)
    assert attempt(task) is False
    assert row(task) == before
    assert events(task) == logged  # a losing move writes no event


@pytest.mark.parametrize(
    "state, setup, attempt",
    [
        # A retry is not claimed before it is due.
        (S.SUBMITTING, lambda t: t.retry_later(60, "HTTP 503", "Waiting to retry"), lambda t: t.claim()),
        # The sweep's poll is a claim: not before it is due.
        (S.GENERATING, lambda t: t.book_poll(timezone.now() + timedelta(minutes=1)),
         lambda t: t.book_poll(timezone.now() + timedelta(minutes=2), due_only=True)),
        # A second callback is not noted again.
        (S.GENERATING, lambda t: t.note_callback(t.provider_task_id), lambda t: t.note_callback(t.provider_task_id)),
        # A callback naming another provider task than the one generate recorded.
        (S.GENERATING, lambda t: True, lambda t: t.note_callback("b" * 32)),
        # A sweep holding a copy from before another sweep's enqueue.
        (S.QUEUED, lambda t: ModifyTask.objects.get(pk=t.pk).requeue(timezone.now(), "its retry is due"),
         lambda t: t.requeue(timezone.now(), "its retry is due")),
    ],
    ids=["retry-not-due", "poll-not-due", "second-callback", "callback-for-another-task", "second-requeue"],
)
def test_a_move_whose_condition_does_not_hold_returns_false_and_changes_nothing(member, state, setup, attempt):
    task = make_task(member, state)
    assert setup(task) is True
    before, logged = row(task), events(task)
    assert attempt(task) is False
    assert row(task) == before
    assert events(task) == logged


def test_a_stale_instance_cannot_fail_a_task_that_moved_on(member):
    """A poll still holding "generating" must not fail a task a callback already archived."""
    stale = make_task(member, S.GENERATING)
    assert ModifyTask.objects.get(pk=stale.pk).result_found("https://e.com/r.mp4") is True
    before, logged = row(stale), events(stale)
    assert stale.fail("gave up waiting") is False
    assert row(stale) == before
    assert events(stale) == logged


def test_two_racing_claims_only_one_wins(member):
    task = make_task(member)
    first, second = ModifyTask.objects.get(pk=task.pk), ModifyTask.objects.get(pk=task.pk)
    results = [first.claim(), second.claim()]
    assert sorted(results) == [False, True]
    stored = ModifyTask.objects.get(pk=task.pk)
    assert stored.state == S.SUBMITTING
    assert stored.submit_attempts == 1
    assert [event.kind for event in events(task)].count("claim") == 1


def test_two_racing_finalizers_only_one_archives(member):
    task = make_task(member, S.GENERATING)
    callback, poll = ModifyTask.objects.get(pk=task.pk), ModifyTask.objects.get(pk=task.pk)
    assert callback.result_found("https://e.com/from-callback.mp4") is True
    assert poll.result_found("https://e.com/from-poll.mp4") is False
    assert ModifyTask.objects.get(pk=task.pk).result_url == "https://e.com/from-callback.mp4"
    assert [event.kind for event in events(task)].count("result_found") == 1


# --- The event log --------------------------------------------------------------------------------------


WINNERS = [  # (from, the move, its row in TRANSITIONS, to, actor, detail)
    (S.QUEUED, move("claim"), "claim", S.SUBMITTING, Actor.SYSTEM, "attempt 1"),
    (S.QUEUED, move("requeue", timezone.now(), "its retry is due"), "requeue", S.QUEUED, Actor.SYSTEM,
     "its retry is due"),
    (S.SUBMITTING, move("keep_source", "sources/x.mp4", 2.0), "source_kept", S.SUBMITTING, Actor.SYSTEM, "2.0 s"),
    (S.SUBMITTING, move("generate_sent", in_an_hour(), None, VIDEO_URL), "generate_sent", S.UNCONFIRMED,
     Actor.SYSTEM, ""),
    (S.SUBMITTING, move("retry_later", 30, "HTTP 503", "Waiting to retry"), "retry_later", S.QUEUED,
     Actor.SYSTEM, "HTTP 503"),
    (S.UNCONFIRMED, move("retry_later", 30, "HTTP 503", "Waiting to retry"), "retry_later", S.QUEUED,
     Actor.SYSTEM, "HTTP 503"),
    (S.UNCONFIRMED, move("accepted", PROVIDER_ID), "accepted", S.GENERATING, Actor.SYSTEM, PROVIDER_ID),
    (S.UNCONFIRMED, move("no_answer", "waiting"), "no_answer", S.UNCONFIRMED, Actor.SYSTEM, ""),
    (S.UNCONFIRMED, move("adopt", PROVIDER_ID), "adopted", S.GENERATING, Actor.PROVIDER, PROVIDER_ID),
    (S.SUBMITTING, move("adopt", PROVIDER_ID), "adopted", S.GENERATING, Actor.PROVIDER, PROVIDER_ID),
    (S.QUEUED, move("adopt", PROVIDER_ID), "adopted", S.GENERATING, Actor.PROVIDER, PROVIDER_ID),
    (S.GENERATING, move("result_found", RESULT_URL), "result_found", S.ARCHIVING, Actor.SYSTEM, ""),
    (S.ARCHIVING, move("resume_archiving", "its worker stopped"), "resume_archiving", S.GENERATING, Actor.SYSTEM,
     "its worker stopped"),
    (S.ARCHIVING, move("archived", result_file="results/x.mp4"), "archived", S.SUCCEEDED, Actor.SYSTEM, ""),
    (S.GENERATING, move("fail", "gave up"), "fail", S.FAILED, Actor.SYSTEM, "gave up"),
    (S.UNCONFIRMED, move("fail", "refused"), "fail", S.FAILED, Actor.SYSTEM, "refused"),
    # The first verified callback, for the task generate recorded (or before its id is known).
    (S.GENERATING, move("note_callback", PROVIDER_ID), "callback_accepted", S.GENERATING, Actor.PROVIDER,
     "first delivery"),
    (S.UNCONFIRMED, move("note_callback", PROVIDER_ID), "callback_accepted", S.UNCONFIRMED, Actor.PROVIDER,
     "first delivery"),
    (S.SUCCEEDED, move("note_callback", PROVIDER_ID), "callback_accepted", S.SUCCEEDED, Actor.PROVIDER,
     "first delivery"),
]


@pytest.mark.parametrize(
    "state, winner, name, target, actor, detail", WINNERS, ids=[f"{w[2]}-from-{w[0]}" for w in WINNERS]
)
def test_each_winning_transition_writes_exactly_one_event(member, state, winner, name, target, actor, detail):
    task = make_task(member, state, provider_task_id=PROVIDER_ID)  # the id generate answered, once it is past unconfirmed
    before = events(task)
    assert winner(task) is True
    new = events(task)[len(before):]
    assert len(new) == 1
    event = new[0]
    assert TRANSITIONS[name].target in (target, None)
    assert (event.kind, event.from_state, event.to_state) == (name, state, target)
    assert (event.actor, event.actor_user, event.detail) == (actor, None, detail)
    assert event.task_id == task.pk


def test_a_stop_by_staff_is_logged_with_who_did_it(member, staff):
    task = make_task(member, S.GENERATING)
    assert task.fail("Stopped by staff (sam).", actor=Actor.STAFF, by=staff) is True
    event = events(task)[-1]
    assert (event.kind, event.from_state, event.to_state) == ("fail", S.GENERATING, S.FAILED)
    assert (event.actor, event.actor_user, event.detail) == (Actor.STAFF, staff, "Stopped by staff (sam).")


def test_only_the_poll_booking_leaves_its_logging_to_the_caller(member):
    """A poll logs the provider's answer: the booking itself is not an event. Every other row is logged
    (a callback's first delivery too, as "callback_accepted")."""
    assert [name for name, row_ in TRANSITIONS.items() if not row_.logged] == ["book_poll"]
    assert "callback_noted" not in TRANSITIONS
    task = make_task(member, S.GENERATING)
    before = events(task)
    assert task.book_poll(timezone.now() + timedelta(minutes=1)) is True
    assert events(task) == before


@pytest.mark.parametrize(
    "state, same_state_move",
    [
        (S.GENERATING, move("book_poll", timezone.now() + timedelta(minutes=1))),
        (S.QUEUED, move("requeue", timezone.now(), "its sending job was not picked up")),
        (S.SUBMITTING, move("keep_source", "sources/x.mp4", 2.0)),
        (S.UNCONFIRMED, move("no_answer", "waiting for its callback")),
        (S.GENERATING, move("note_callback", PROVIDER_ID)),
    ],
    ids=["book_poll", "requeue", "source_kept", "no_answer", "callback_accepted"],
)
def test_updated_at_is_when_it_entered_its_state_so_same_state_rows_leave_it_alone(member, state, same_state_move):
    entered = timezone.now() - timedelta(hours=1)
    task = backdate(make_task(member, state, provider_task_id=PROVIDER_ID), updated_at=entered)
    assert same_state_move(task) is True
    assert task.state == state
    assert task.updated_at == entered
    assert ModifyTask.objects.get(pk=task.pk).updated_at == entered


def test_a_state_change_moves_updated_at(member):
    entered = timezone.now() - timedelta(hours=1)
    task = backdate(make_task(member, S.GENERATING), updated_at=entered)
    before = timezone.now()
    assert task.result_found(RESULT_URL) is True
    assert ModifyTask.objects.get(pk=task.pk).updated_at >= before


# --- Callbacks ------------------------------------------------------------------------------------------


def test_note_callback_is_true_only_the_first_time(member):
    task = make_task(member, S.GENERATING, provider_task_id=PROVIDER_ID)
    assert task.note_callback(PROVIDER_ID) is True
    first_at = ModifyTask.objects.get(pk=task.pk).callback_received_at
    assert first_at is not None and task.callback_received_at == first_at
    assert task.note_callback(PROVIDER_ID) is False
    assert ModifyTask.objects.get(pk=task.pk).note_callback(PROVIDER_ID) is False  # another worker's copy too
    stored = ModifyTask.objects.get(pk=task.pk)
    assert stored.callback_received_at == first_at
    assert stored.state == S.GENERATING  # a callback alone changes no state
    # The first delivery is logged by the move; duplicates are logged by callbacks.receive, not here.
    [accepted] = [event for event in events(task) if event.kind == "callback_accepted"]
    assert (accepted.from_state, accepted.to_state) == (S.GENERATING, S.GENERATING)
    assert (accepted.actor, accepted.actor_user, accepted.detail) == (Actor.PROVIDER, None, "first delivery")


def test_note_callback_refuses_another_provider_task_than_the_one_recorded(member):
    task = make_task(member, S.GENERATING, provider_task_id=PROVIDER_ID)
    before, logged = row(task), events(task)
    assert task.note_callback("b" * 32) is False
    assert row(task) == before  # callback_received_at still null
    assert events(task) == logged  # the caller logs the rejection
    assert task.note_callback(PROVIDER_ID) is True  # the task's own callback is still noted first


def test_note_callback_before_the_id_is_known_notes_any_id_and_records_none(member):
    """Unconfirmed: generate has not answered, so any verified callback may name the task (adopt records the id)."""
    task = make_task(member, S.UNCONFIRMED)
    assert task.note_callback(PROVIDER_ID) is True
    stored = ModifyTask.objects.get(pk=task.pk)
    assert (stored.state, stored.provider_task_id) == (S.UNCONFIRMED, "")
    assert stored.callback_received_at is not None
    assert task.note_callback("b" * 32) is False  # noted once


def test_a_callback_for_a_finished_task_is_still_noted(member):
    task = make_task(member, S.SUCCEEDED, provider_task_id=PROVIDER_ID)
    assert task.note_callback(PROVIDER_ID) is True
    assert (task.state, task.callback_received_at is not None) == (S.SUCCEEDED, True)
    assert events(task)[-1].kind == "callback_accepted"


# --- save() writes plain data only -------------------------------------------------------------------


def test_save_on_a_stale_instance_does_not_put_back_what_a_transition_changed(member):
    """An edit loaded before a fail() must not resurrect the task: save() writes only non-lifecycle fields."""
    task = make_task(member, S.GENERATING)
    editor, worker = ModifyTask.objects.get(pk=task.pk), ModifyTask.objects.get(pk=task.pk)
    assert worker.fail("The provider gave up.", code=501) is True
    editor.prompt = "a rainy city at dawn"
    editor.save()  # editor still holds state "generating" in memory
    stored = ModifyTask.objects.get(pk=task.pk)
    assert stored.prompt == "a rainy city at dawn"
    assert (stored.state, stored.failed_stage) == (S.FAILED, S.GENERATING)
    assert (stored.error_code, stored.error_message) == (501, "The provider gave up.")
    assert stored.finished_at is not None
    assert [event.kind for event in events(task)][-1] == "fail"


@pytest.mark.parametrize("fields", [["state"], ["prompt", "error_message"], ["updated_at"]])
def test_save_refuses_update_fields_naming_a_lifecycle_field(member, fields):
    task = make_task(member, S.GENERATING)
    task.prompt = "changed"
    before = row(task)
    with pytest.raises(LifecycleError):
        task.save(update_fields=fields)
    assert row(task) == before  # nothing was written


def test_save_with_plain_update_fields_writes_them(member):
    task = make_task(member, S.GENERATING)
    task.prompt, task.watermark = "changed", "studio"
    task.save(update_fields=["prompt"])
    stored = ModifyTask.objects.get(pk=task.pk)
    assert (stored.prompt, stored.watermark, stored.state) == ("changed", "", S.GENERATING)


# --- Querysets ----------------------------------------------------------------------------------------------


def test_due_for_poll_selects_generating_tasks_whose_poll_is_due(member):
    now = timezone.now()
    long_ago = now - timedelta(minutes=5)
    due = backdate(make_task(member, S.GENERATING), next_poll_at=now - timedelta(seconds=1))
    due_now = backdate(make_task(member, S.GENERATING), next_poll_at=now)
    never_booked = backdate(make_task(member, S.GENERATING), next_poll_at=None)
    backdate(make_task(member, S.GENERATING), next_poll_at=now + timedelta(seconds=30))  # not yet
    backdate(make_task(member, S.ARCHIVING), next_poll_at=long_ago)
    backdate(make_task(member, S.SUBMITTING), next_poll_at=long_ago)
    backdate(make_task(member, S.UNCONFIRMED), next_poll_at=long_ago)
    backdate(make_task(member, S.FAILED, failed_stage=S.GENERATING), next_poll_at=long_ago)
    assert set(ModifyTask.objects.due_for_poll(now)) == {due, due_now, never_booked}


def test_due_for_sending_selects_due_retries_and_lost_sendings_not_yet_enqueued(member):
    now = timezone.now()
    lost_after = timedelta(minutes=2)
    long_ago = now - timedelta(minutes=5)
    lost = make_task(member, created_at=long_ago)  # its first job never ran
    retry_due = backdate(make_task(member), next_submit_at=now - timedelta(seconds=1))
    enqueued_long_ago = backdate(make_task(member, created_at=long_ago), enqueued_at=now - timedelta(minutes=3))
    enqueued_before_retry_due = backdate(make_task(member), enqueued_at=long_ago, next_submit_at=now - timedelta(seconds=1))
    make_task(member)  # fresh: its job was just enqueued
    backdate(make_task(member), next_submit_at=now + timedelta(seconds=30))  # retry not due yet
    backdate(make_task(member, created_at=long_ago), enqueued_at=now - timedelta(seconds=30))  # enqueued lately
    backdate(make_task(member, created_at=long_ago), enqueued_at=now - timedelta(seconds=10),
             next_submit_at=now - timedelta(seconds=20))  # enqueued since its retry was due
    make_task(member, S.SUBMITTING, created_at=long_ago)  # taken by a worker
    make_task(member, S.UNCONFIRMED, created_at=long_ago)  # never sent again
    assert set(ModifyTask.objects.due_for_sending(now, lost_after)) == {
        lost, retry_due, enqueued_long_ago, enqueued_before_retry_due,
    }


def test_dead_worker_and_deadline_querysets(member):
    now = timezone.now()
    long_ago = now - timedelta(hours=2)
    stale_archiving = backdate(make_task(member, S.ARCHIVING), updated_at=long_ago)
    backdate(make_task(member, S.ARCHIVING), updated_at=now)
    stale_submitting = backdate(make_task(member, S.SUBMITTING), submitting_at=long_ago)
    make_task(member, S.SUBMITTING)
    backdate(make_task(member, S.UNCONFIRMED), submitting_at=long_ago)  # unconfirmed is not a dead worker
    past_deadline = backdate(make_task(member, S.UNCONFIRMED), callback_deadline=now - timedelta(seconds=1))
    make_task(member, S.UNCONFIRMED)  # its deadline is an hour away
    before = now - timedelta(hours=1)
    assert list(ModifyTask.objects.stale_archiving(before)) == [stale_archiving]
    assert list(ModifyTask.objects.stale_submitting(before)) == [stale_submitting]
    assert list(ModifyTask.objects.unconfirmed_past_deadline(now)) == [past_deadline]


def test_in_gallery_is_succeeded_and_shared_only(member):
    shown = make_task(member, S.SUCCEEDED, shared=True)
    make_task(member, S.SUCCEEDED, shared=False)
    make_task(member, S.FAILED, shared=True)
    make_task(member, S.GENERATING, shared=True)
    assert list(ModifyTask.objects.in_gallery()) == [shown]


def test_active_excludes_finished_tasks(member):
    live = {make_task(member, state) for state in (S.QUEUED, S.SUBMITTING, S.UNCONFIRMED, S.GENERATING, S.ARCHIVING)}
    succeeded = make_task(member, S.SUCCEEDED)
    failed = make_task(member, S.FAILED)
    assert set(ModifyTask.objects.active()) == live
    assert list(ModifyTask.objects.succeeded()) == [succeeded]
    assert list(ModifyTask.objects.failed()) == [failed]


def test_visible_to_is_ones_own_tasks_and_the_teams_shared_results(member, other):
    own = {make_task(member, state) for state in (S.QUEUED, S.GENERATING, S.FAILED)}
    own.add(make_task(member, S.SUCCEEDED, shared=False))
    shared_by_other = make_task(other, S.SUCCEEDED, shared=True)
    make_task(other, S.SUCCEEDED, shared=False)
    make_task(other, S.FAILED, shared=True)
    make_task(other, S.GENERATING, shared=True)
    assert set(ModifyTask.objects.visible_to(member)) == own | {shared_by_other}
    assert shared_by_other in ModifyTask.objects.visible_to(other)


def test_staff_who_run_the_account_see_every_task(member, other, staff):
    private = make_task(other, S.SUCCEEDED, shared=False)
    failed = make_task(member, S.FAILED)
    assert {private, failed} <= set(ModifyTask.objects.visible_to(staff))
    assert private not in ModifyTask.objects.visible_to(member)


# --- What the pages read ----------------------------------------------------------------------------------------


def test_steps_and_timeline_follow_the_task(member):
    task = make_task(member)
    assert task.steps == [("Queued", "current"), ("Submitting", ""), ("Generating", ""), ("Archiving", "")]
    assert [summary for _, summary, _ in task.timeline()] == ["Created: made by a test factory"]
    assert task.claim()
    assert task.steps == [("Queued", "done"), ("Submitting", "current"), ("Generating", ""), ("Archiving", "")]
    assert task.generate_sent(in_an_hour(), None, VIDEO_URL)
    assert task.no_answer("waiting for its callback")
    assert task.steps == [("Queued", "done"), ("Submitting", "current"), ("Generating", ""), ("Archiving", "")]
    assert task.adopt(PROVIDER_ID)
    assert task.steps == [("Queued", "done"), ("Submitting", "done"), ("Generating", "current"), ("Archiving", "")]
    for _ in range(3):  # the same answer three times is one line
        task.record("poll", actor=Actor.PROVIDER, detail="successFlag 0 (generating)")
    assert [(summary, times) for _, summary, times in task.timeline()] == [
        ("Created: made by a test factory", 1),
        ("Sending to the provider: attempt 1", 1),
        ("Asked the provider to generate the video", 1),
        ("The provider did not answer; waiting for its callback", 1),
        (f"The provider's callback named the task: {PROVIDER_ID}", 1),
        ("Asked the provider: successFlag 0 (generating)", 3),
    ]
    assert task.result_found(RESULT_URL)
    assert task.steps[-1] == ("Archiving", "current")
    assert task.archived()
    assert [summary for _, summary, _ in task.timeline()][-2:] == ["The result is ready; archiving it", "Archived: done"]
    moments = [moment for moment, _, _ in task.timeline()]
    assert moments == sorted(moments) and moments[0] >= task.created_at
    assert all(status == "done" for _, status in task.steps)
    assert task.elapsed == task.finished_at - task.created_at


@pytest.mark.django_db(transaction=True)
def test_many_workers_racing_for_one_task_change_it_once():
    """Real threads, real connections: the conditional UPDATE lets exactly one claim win."""
    import threading

    from django.db import connection

    task = make_task(make_member("racer"))
    start, results = threading.Barrier(8), []

    def worker():
        try:
            mine = ModifyTask.objects.get(pk=task.pk)
            start.wait()
            results.append(mine.claim())
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
    assert [event.kind for event in events(task)] == ["created", "claim"]
