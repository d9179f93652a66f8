"""The event log: a task driven through every row of the transition table leaves one event per
step, with its actor, in order; a forged callback leaves one "callback rejected" event and nothing else."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from modify import webhooks
from modify.models import ModifyTask, TaskEvent
from modify.states import TRANSITIONS, Actor
from tests.factories import make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
HMAC_KEY = "event-log-key"


def history(task):
    return [(e.kind, e.from_state, e.to_state, e.actor) for e in task.events.all()]


def post_callback(client, task, provider_task_id, signed=True):
    headers = webhooks.signed_headers(HMAC_KEY, provider_task_id) if signed else {}
    return client.post(f"/callbacks/{task.callback_token}/", json.dumps({"code": 200, "data": {"taskId": provider_task_id}}),
                       content_type="application/json", headers=headers)


@pytest.fixture(autouse=True)
def signed_callbacks(settings, monkeypatch):
    settings.LUMA_WEBHOOK_HMAC_KEY = HMAC_KEY
    for job in ("send_to_provider", "poll", "archive"):  # the steps run here, by hand
        monkeypatch.setattr(f"modify.enqueue.{job}", lambda task: None)


def test_every_transition_leaves_its_event_with_its_actor_in_order(client, member, staff):
    url = "https://example.com/clip.mp4"
    task = make_task(member)
    assert task.claim()
    assert task.keep_source("sources/x/source.mp4", 4.2)
    assert task.retry_later(0, "The provider is busy.", "Waiting to retry: The provider is busy.")
    assert task.requeue(timezone.now(), "its retry is due")
    assert task.claim()
    assert task.generate_sent(timezone.now() + timedelta(hours=1), None, url)
    assert task.no_answer("waiting for its callback")
    assert post_callback(client, task, "f" * 32, signed=False).status_code == 403  # forged: changes nothing
    assert post_callback(client, task, "a" * 32).status_code == 200
    task.refresh_from_db()
    assert task.book_poll(timezone.now() + timedelta(seconds=30))
    task.record("poll", actor=Actor.PROVIDER, detail="successFlag 1 (succeeded)")
    assert task.result_found("https://files.example.com/r.mp4")
    assert task.resume_archiving("its worker stopped")
    assert task.result_found("https://files.example.com/r.mp4")
    assert task.archived(result_file="results/x/result.mp4")

    other = make_task(member)
    assert other.claim() and other.generate_sent(timezone.now() + timedelta(hours=1), None, url)
    assert other.accepted("b" * 32)
    assert other.fail("Stopped by staff (sam).", actor=Actor.STAFF, by=staff)

    assert history(task) == [
        ("created", "", S.QUEUED, Actor.MEMBER),
        ("claim", S.QUEUED, S.SUBMITTING, Actor.SYSTEM),
        ("source_kept", S.SUBMITTING, S.SUBMITTING, Actor.SYSTEM),
        ("retry_later", S.SUBMITTING, S.QUEUED, Actor.SYSTEM),
        ("requeue", S.QUEUED, S.QUEUED, Actor.SYSTEM),
        ("claim", S.QUEUED, S.SUBMITTING, Actor.SYSTEM),
        ("generate_sent", S.SUBMITTING, S.UNCONFIRMED, Actor.SYSTEM),
        ("no_answer", S.UNCONFIRMED, S.UNCONFIRMED, Actor.SYSTEM),
        ("callback_rejected", S.UNCONFIRMED, S.UNCONFIRMED, Actor.PROVIDER),
        ("adopted", S.UNCONFIRMED, S.GENERATING, Actor.PROVIDER),
        ("callback_accepted", S.GENERATING, S.GENERATING, Actor.PROVIDER),
        ("poll", S.GENERATING, S.GENERATING, Actor.PROVIDER),
        ("result_found", S.GENERATING, S.ARCHIVING, Actor.SYSTEM),
        ("resume_archiving", S.ARCHIVING, S.GENERATING, Actor.SYSTEM),
        ("result_found", S.GENERATING, S.ARCHIVING, Actor.SYSTEM),
        ("archived", S.ARCHIVING, S.SUCCEEDED, Actor.SYSTEM),
    ]
    assert history(other)[-2:] == [("accepted", S.UNCONFIRMED, S.GENERATING, Actor.SYSTEM),
                                   ("fail", S.GENERATING, S.FAILED, Actor.STAFF)]
    assert other.events.get(kind="fail").actor_user == staff

    unarchived = make_task(member, S.ARCHIVING)
    assert unarchived.fail("The result could not be archived: the connection failed.")
    assert unarchived.rearchive(by=staff)
    assert history(unarchived)[-2:] == [("fail", S.ARCHIVING, S.FAILED, Actor.SYSTEM),
                                        ("rearchive", S.FAILED, S.ARCHIVING, Actor.STAFF)]
    assert (unarchived.error_message, unarchived.finished_at) == ("", None)

    waiting = make_task(member, S.SUBMITTING)  # over the provider's rate limit: back to the queue, its attempt given back
    assert waiting.wait_for_slot(5, "the rate limit's next slot is in 5.0 s", "Waiting for a slot: …", url)
    assert history(waiting)[-2:] == [("claim", S.QUEUED, S.SUBMITTING, Actor.SYSTEM),
                                     ("wait_for_slot", S.SUBMITTING, S.QUEUED, Actor.SYSTEM)]
    assert (waiting.submit_attempts, waiting.provider_video_url) == (0, url)
    assert task.events.get(kind="created").actor_user == member
    # Every row of the table was driven (the unlogged ones leave their mark on the task).
    kinds = set(TaskEvent.objects.values_list("kind", flat=True))
    assert {name for name, move in TRANSITIONS.items() if move.logged} <= kinds
    assert (task.poll_count, task.callback_received_at is not None) == (1, True)


def test_a_forged_callback_leaves_one_rejected_event_and_no_change(client, member):
    task = make_task(member, S.GENERATING, provider_task_id="c" * 32)
    before = ModifyTask.objects.filter(pk=task.pk).values().get()
    events_before = task.events.count()
    response = post_callback(client, task, "c" * 32, signed=False)
    assert response.status_code == 403
    assert ModifyTask.objects.filter(pk=task.pk).values().get() == before
    assert task.events.count() == events_before + 1
    rejected = task.events.last()
    assert (rejected.kind, rejected.actor, rejected.detail) == ("callback_rejected", Actor.PROVIDER, "missing signature headers")


def test_events_never_hold_the_callback_token_or_the_api_key(client, member):
    from modify.models import ApiKey

    key = ApiKey(label="team")
    key.secret = "sk-live-very-secret-1234"
    key.save()
    task = make_task(member)
    assert task.claim()
    message = f"The provider said: cannot reach https://app.example/callbacks/{task.callback_token}/"
    assert task.retry_later(0, message, message)
    post_callback(client, task, "d" * 32, signed=False)
    task.refresh_from_db()
    assert task.fail(f"failed at https://app.example/callbacks/{task.callback_token}/")
    details = " ".join(task.events.values_list("detail", flat=True))
    assert "/callbacks/[redacted]" in details
    assert task.callback_token not in details and "sk-live-very-secret-1234" not in details
