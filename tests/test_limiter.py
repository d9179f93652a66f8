"""The provider's limits, kept by every worker together (``modify.limiter``): never more than N
generate slots in a window under real concurrency, on the database and on Redis; a task over the
limit waits in the queue, visibly and without spending an attempt, and goes out when its turn
comes; uploads and record-info have their own pacing; end to end, 30 submissions at once against
the sandbox's own limit never meet a 429."""

import os
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from modify import enqueue, limiter, sending, sweep
from modify.models import ModifyTask, ProviderSlot
from modify.states import Actor
from tests.conftest import wait_for
from tests.factories import backdate, make_key, make_member, make_task

State = ModifyTask.State
SLOT_NOTE = "Waiting for a slot: kie.ai takes at most 20 new tasks per 10 s."
SANDBOX_LIMIT_KEY = limiter.key_for(None, "sandbox-key")


def _required(name):
    return os.environ.get(name, "").strip() in {"1", "true", "yes"}


@pytest.fixture(params=["database", "redis"])
def slots(request, transactional_db):
    """Each backend of the limiter (Redis only with REDIS_URL; a failure, not a skip, with REQUIRE_REDIS)."""
    if request.param == "database":
        return limiter.DatabaseSlots()
    if not django_settings.REDIS_URL:
        if _required("REQUIRE_REDIS"):
            pytest.fail("REQUIRE_REDIS is set but REDIS_URL is not.")
        pytest.skip("REDIS_URL is not set")
    return limiter.RedisSlots(django_settings.REDIS_URL)


@pytest.fixture
def key():
    """A limit of this test's own (Redis outlives the test database)."""
    return f"test-{uuid.uuid4().hex}"


def hammer(slots, key, limit, hold, seconds, threads=12):
    """``threads`` workers, each with its own database connection, taking slots as fast as they can for
    ``seconds``; every grant as ``(before, after)``: the clock just before the call and just after it."""
    grants, start, lock = [], threading.Barrier(threads), threading.Lock()

    def worker():
        try:
            start.wait()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                before = timezone.now()
                slot = slots.take(key, limit, hold)
                if slot.granted:
                    with lock:
                        grants.append((before, timezone.now()))
        finally:
            connection.close()

    running = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return grants


def test_a_window_grants_exactly_its_limit_to_many_workers_at_once(slots, key):
    assert len(hammer(slots, key, limit=5, hold=2.5, seconds=1)) == 5
    time.sleep(2.5)  # the window has passed: five more, and no more
    assert len(hammer(slots, key, limit=5, hold=2.5, seconds=1)) == 5


def test_no_window_anywhere_holds_more_than_the_limit_under_sustained_load(slots, key):
    """Any six grants (limit five) span at least the hold: the sixth-latest "after" minus the earliest "before"."""
    grants = hammer(slots, key, limit=5, hold=1.0, seconds=3.2)
    before = sorted(b for b, _ in grants)
    after = sorted(a for _, a in grants)
    assert 10 <= len(grants) <= 20  # a few windows' worth
    spans = [(after[i + 5] - before[i]).total_seconds() for i in range(len(grants) - 5)]
    assert min(spans) >= 1.0, spans


def test_refused_callers_get_turns_of_their_own_spaced_by_the_window_over_the_limit(slots, key):
    assert all(slots.take(key, 2, 10, step=5).granted for _ in range(2))
    turns = [slots.take(key, 2, 10, step=5) for _ in range(3)]
    assert not any(turn.granted for turn in turns)
    assert [round(turn.wait) for turn in turns] == [10, 15, 20]
    # One back from its turn and refused again (a moment early) tries at the next free slot, not at the end.
    assert round(slots.take(key, 2, 10, step=0).wait) == 10
    assert round(slots.take(key, 2, 10, step=5).wait) == 25


def test_first_come_first_served_a_newcomer_queues_behind_turns_still_to_come(slots, key):
    held = [slots.take(key, 2, 10, step=5) for _ in range(2)]
    assert round(slots.take(key, 2, 10, step=5).wait) == 10  # someone's turn, 10 s from now
    slots.give_back(key, held[0].token)  # a slot is free now, but it is that someone's
    newcomer = slots.take(key, 2, 10, step=5)
    assert not newcomer.granted and round(newcomer.wait) == 15
    assert slots.take(key, 2, 10, step=0).granted  # one back at its turn takes it


def test_an_upload_slot_is_given_back_when_the_upload_ends(slots, key, settings, monkeypatch):
    monkeypatch.setattr(limiter, "backend", lambda: slots)
    settings.LUMA_UPLOAD_CONCURRENCY = 2
    with limiter.upload_slot(key) as first, limiter.upload_slot(key) as second:
        assert first.granted and second.granted
        with limiter.upload_slot(key) as third:
            assert not third.granted and 0 < third.wait <= limiter.UPLOAD_RECHECK_SECONDS
    with limiter.upload_slot(key) as again:
        assert again.granted


def test_no_limit_when_switched_off(db, settings, key):
    settings.LUMA_RATE_LIMIT = 0
    settings.LUMA_UPLOAD_CONCURRENCY = 0
    assert all(limiter.take_generate(key).granted for _ in range(50))
    with limiter.upload_slot(key) as slot:
        assert slot.granted
    assert not ProviderSlot.objects.exists()


def test_limits_are_keyed_by_the_key_s_id_or_a_hash_never_the_secret(db):
    stored = make_key("Team key", secret="kie-very-secret-9876")
    assert limiter.key_for(stored, "kie-very-secret-9876") == f"key-{stored.pk}"
    hashed = limiter.key_for(None, "kie-very-secret-9876")
    assert hashed.startswith("secret-") and "9876" not in hashed and "secret-9876" not in hashed
    assert hashed != limiter.key_for(None, "another-secret")


# --- The sending job over the limit --------------------------------------------------------------------------

@pytest.fixture
def woken(monkeypatch):
    """The waker's calls ``(delay, task_id)``, instead of a timer thread in the test process."""
    calls = []
    monkeypatch.setattr(sending._waker, "at", lambda delay, task_id: calls.append((delay, str(task_id))))
    return calls


@pytest.fixture
def full():
    """Take every generate slot of the sandbox's key; ``full.give_back()`` frees them all."""
    class Full:
        def __init__(self):
            self.taken = [limiter.take_generate(SANDBOX_LIMIT_KEY) for _ in range(20)]
            assert all(slot.granted for slot in self.taken)

        def give_back(self):
            for slot in self.taken:
                limiter.backend().give_back(f"generate:{SANDBOX_LIMIT_KEY}", slot.token)

    return Full


def kinds(task):
    return [event.kind for event in task.events.all()]


def uploads():
    from sandbox.models import UploadedFile

    return UploadedFile.objects.count()


def test_a_task_over_the_limit_waits_visibly_without_spending_an_attempt_then_goes_out(app, clip, woken, full,
                                                                                       monkeypatch):
    from sandbox.models import Task as SandboxTask

    owner = make_member("ana")
    task = make_task(owner, upload=clip(seconds=1))
    slots = full()
    task = sending.send_to_provider(task.pk)

    assert task.state == State.QUEUED
    assert task.status_note == SLOT_NOTE
    assert task.submit_attempts == 0 and task.error_message == ""
    assert timezone.now() + timedelta(seconds=9) < task.next_submit_at < timezone.now() + timedelta(seconds=12)
    assert not SandboxTask.objects.exists()  # not sent to be refused
    assert task.provider_video_url and uploads() == 1  # the upload is kept for the next attempt
    event = task.events.last()
    assert (event.kind, event.from_state, event.to_state, event.actor) == (
        "wait_for_slot", State.SUBMITTING, State.QUEUED, Actor.SYSTEM)
    assert event.summary.startswith("Waiting for a slot at the provider: the rate limit's next slot is in")
    [(delay, woken_id)] = woken
    assert woken_id == str(task.pk) and 9 < delay < 12
    assert sending.send_to_provider(task.pk).state == State.QUEUED  # not before its turn

    slots.give_back()
    backdate(task, next_submit_at=timezone.now())  # its turn has come
    enqueued = []
    monkeypatch.setattr(enqueue, "send_to_provider", enqueued.append)
    assert sending.wake(task.pk) == 0 and [t.pk for t in enqueued] == [task.pk]
    assert sending.wake(task.pk) == 0 and len(enqueued) == 1  # enqueued once
    task = sending.send_to_provider(task.pk)
    assert task.state == State.GENERATING and task.submit_attempts == 1 and task.status_note == ""
    assert uploads() == 1 and SandboxTask.objects.get().video_url == task.provider_video_url
    assert kinds(task) == ["created", "claim", "wait_for_slot", "requeue", "claim", "generate_sent", "accepted"]


def test_the_waker_does_nothing_before_the_turn_and_for_a_task_that_moved_on(transactional_db, woken, monkeypatch):
    enqueued = []
    monkeypatch.setattr(enqueue, "send_to_provider", enqueued.append)
    task = make_task(make_member("ana"), State.SUBMITTING)
    assert task.wait_for_slot(30, "the rate limit's next slot is in 30.0 s", SLOT_NOTE)
    assert 29 < sending.wake(task.pk) <= 30  # early: the timer is set again for the rest
    assert task.fail("Stopped by staff (sam).", actor=Actor.STAFF)
    assert sending.wake(task.pk) == 0 and sending.wake(uuid.uuid4()) == 0
    assert enqueued == []


def test_the_waker_thread_wakes_each_task_at_its_turn(monkeypatch):
    woke = []
    monkeypatch.setattr(sending, "wake", lambda task_id: woke.append((task_id, time.monotonic())) or 0)
    waker, start = sending._Waker(), time.monotonic()
    waker.at(0.4, "late")
    waker.at(0.1, "early")
    wait_for(lambda: len(woke) == 2, timeout=5, what="both turns")
    assert [task_id for task_id, _ in woke] == ["early", "late"]
    assert woke[0][1] - start >= 0.1 and woke[1][1] - start >= 0.4


def test_a_task_waiting_for_an_upload_slot_uploads_nothing_meanwhile(app, clip, woken, settings):
    settings.LUMA_UPLOAD_CONCURRENCY = 2
    task = make_task(make_member("ana"), upload=clip(seconds=1))
    with limiter.upload_slot(SANDBOX_LIMIT_KEY), limiter.upload_slot(SANDBOX_LIMIT_KEY):
        task = sending.send_to_provider(task.pk)
    assert task.state == State.QUEUED and task.submit_attempts == 0
    assert task.status_note == "Waiting for a slot: at most 2 videos are uploaded to kie.ai at once."
    assert uploads() == 0 and not task.provider_video_url
    assert task.next_submit_at <= timezone.now() + timedelta(seconds=limiter.UPLOAD_RECHECK_SECONDS + 1)
    backdate(task, next_submit_at=timezone.now())
    assert sending.send_to_provider(task.pk).state == State.GENERATING and uploads() == 1


def test_an_upload_kept_from_an_old_attempt_is_not_trusted_after_a_day(app, clip, woken, full):
    slots = full()
    task = make_task(make_member("ana"), upload=clip(seconds=1), created_at=timezone.now() - timedelta(days=2))
    task = sending.send_to_provider(task.pk)
    assert task.state == State.QUEUED and uploads() == 1
    slots.give_back()
    backdate(task, next_submit_at=timezone.now())
    task = sending.send_to_provider(task.pk)
    assert task.state == State.GENERATING and uploads() == 2  # uploads are kept upstream 3 days: sent again


# --- record-info pacing --------------------------------------------------------------------------------------

def test_the_sweep_spaces_record_info_calls_per_key(db, settings, monkeypatch):
    settings.LUMA_RECORD_INFO_PER_SECOND = 10
    member = make_member("ana")
    team = make_key("Team key")
    tasks = [make_task(member, State.GENERATING, api_key=team if i % 2 else None) for i in range(6)]
    for task in tasks:
        backdate(task, next_poll_at=timezone.now() - timedelta(seconds=1))
    asked = []
    monkeypatch.setattr("modify.polling.poll", lambda task, due_only: asked.append((task.api_key_id, time.monotonic())) or True)
    assert sweep.sweep()["polled"] == 6
    for key in (None, team.pk):
        moments = [moment for asked_key, moment in asked if asked_key == key]
        assert len(moments) == 3
        assert all(b - a >= 0.099 for a, b in zip(moments, moments[1:]))
    # Two keys are not spaced against each other: the batch takes about as long as one key's share.
    assert asked[-1][1] - asked[0][1] < 0.35


# --- End to end ---------------------------------------------------------------------------------------------

def busiest_window(moments, seconds=10):
    moments = sorted(moments)
    return max((sum(1 for m in moments[i:] if m < start + timedelta(seconds=seconds)) for i, start in enumerate(moments)),
               default=0)


@pytest.mark.e2e
def test_thirty_submissions_at_once_never_meet_a_429_and_all_succeed(e2e, clip):
    """The sandbox enforces kie.ai's 20 per 10 s; the app's cluster keeps under it by itself."""
    from sandbox.models import Task as SandboxTask

    owner = make_member("ana")
    source = clip(seconds=1).read_bytes()
    tasks = [make_task(owner, upload=source, prompt=f"submission {n}") for n in range(30)]
    for task in tasks:
        enqueue.send_to_provider(task)

    def finished():
        return ModifyTask.objects.filter(state__in=[State.SUCCEEDED, State.FAILED]).count() == 30

    wait_for(finished, timeout=240, interval=1, what="all 30 tasks to finish")
    assert ModifyTask.objects.filter(state=State.SUCCEEDED).count() == 30
    events = [e for task in ModifyTask.objects.all() for e in task.events.all()]
    assert not [e for e in events if e.kind == "retry_later"]  # no "rate limiting" retry: no 429 was met
    assert sum(e.kind == "wait_for_slot" for e in events) >= 10  # ten of them waited their turn
    # ... and were enqueued at it by the worker's timer, not a minute later by the sweep.
    assert any(e.kind == "requeue" and e.detail == "its turn for a slot came" for e in events)
    assert set(ModifyTask.objects.values_list("submit_attempts", flat=True)) == {1}
    created = list(SandboxTask.objects.values_list("created_at", flat=True))
    assert len(created) == 30 and busiest_window(created) <= 20
