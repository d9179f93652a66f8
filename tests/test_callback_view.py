"""POST /callbacks/<token>/ (the view over modify.callbacks.receive): authenticate, note, enqueue
once, log every callback; reject forgeries with one "callback_rejected" event and no other change."""

import json
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from modify import callbacks, webhooks
from modify.models import ModifyTask
from modify.states import LIFECYCLE_FIELDS, Actor
from tests.factories import make_task

State = ModifyTask.State
KEY = "webhook-key"
PROVIDER_ID = "a" * 32


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr("modify.enqueue.poll", lambda task: calls.append(task.pk))
    return calls


@pytest.fixture
def signed(db, settings):
    settings.LUMA_WEBHOOK_HMAC_KEY = KEY


@pytest.fixture
def task(signed, member):
    return watched(make_task(member, State.GENERATING, provider_task_id=PROVIDER_ID))


def watched(task):
    """Remember what ``task`` is now, for ``assert_unchanged`` and ``assert_rejected``."""
    task.lifecycle_before, task.history_before = lifecycle(task), history(task)
    return task


def lifecycle(task):
    task.refresh_from_db()
    return {name: task.__dict__[name] for name in LIFECYCLE_FIELDS if name in task.__dict__}


def history(task):
    return [(e.kind, e.from_state, e.to_state, e.actor, e.detail) for e in task.events.all()]


def callback_details(task, kind):
    return [detail for k, _, _, _, detail in history(task) if k == kind]


def body(task_id=PROVIDER_ID, code=200):
    return json.dumps({"code": code, "msg": "ok", "data": {"taskId": task_id, "promptJson": "{}", "resultUrls": ["https://r/x.mp4"]}})


def post(client, task, payload=None, headers=None, token=None):
    headers = webhooks.signed_headers(KEY, PROVIDER_ID) if headers is None else headers
    return client.post(
        f"/callbacks/{token or task.callback_token}/",
        data=payload or body(),
        content_type="application/json",
        headers=headers,
    )


def assert_unchanged(task):
    """No lifecycle field moved and no event was written."""
    assert lifecycle(task) == task.lifecycle_before
    assert history(task) == task.history_before


def assert_rejected(task, reason):
    """No lifecycle field moved; exactly one "callback_rejected" event, by the provider, saying why (never the token)."""
    assert lifecycle(task) == task.lifecycle_before
    after = history(task)
    assert after[:-1] == task.history_before
    assert after[-1] == ("callback_rejected", task.state, task.state, Actor.PROVIDER, reason)
    assert task.callback_token not in after[-1][4]


def test_a_valid_callback_is_noted_and_enqueues_a_poll(client, task, enqueued):
    response = post(client, task)
    assert response.status_code == 200 and response.json() == {"ok": True}
    task.refresh_from_db()
    assert task.callback_received_at is not None
    assert task.state == State.GENERATING
    assert enqueued == [task.pk]
    assert history(task) == task.history_before + [
        ("callback_accepted", State.GENERATING, State.GENERATING, Actor.PROVIDER, "first delivery")]


def test_the_same_callback_five_times_enqueues_once(client, task, enqueued):
    assert [post(client, task).status_code for _ in range(5)] == [200] * 5
    assert enqueued == [task.pk]
    assert callback_details(task, "callback_accepted") == ["first delivery"] + ["duplicate"] * 4
    assert callback_details(task, "callback_rejected") == []
    assert all(actor == Actor.PROVIDER for kind, _, _, actor, _ in history(task) if kind.startswith("callback"))


@pytest.mark.parametrize("state", [State.SUBMITTING, State.UNCONFIRMED])
def test_a_callback_before_generate_answered_records_the_provider_task(client, signed, member, enqueued, state):
    task = watched(make_task(member, state))
    assert not task.provider_task_id
    assert post(client, task).status_code == 200
    task.refresh_from_db()
    assert task.state == State.GENERATING
    assert task.provider_task_id == PROVIDER_ID
    assert task.callback_received_at is not None
    assert task.callback_deadline is None and task.status_note == ""
    assert enqueued == [task.pk]
    assert history(task)[len(task.history_before):] == [
        ("adopted", state, State.GENERATING, Actor.PROVIDER, PROVIDER_ID),
        ("callback_accepted", State.GENERATING, State.GENERATING, Actor.PROVIDER, "first delivery"),
    ]
    assert post(client, task).status_code == 200  # the duplicate changes nothing more
    assert enqueued == [task.pk]
    assert callback_details(task, "callback_accepted") == ["first delivery", "duplicate"]
    assert callback_details(task, "adopted") == [PROVIDER_ID]


FORGED_SIGNATURES = [
    (lambda: {}, 403, "missing signature headers"),
    (lambda: webhooks.signed_headers("wrong-key", PROVIDER_ID), 403, "bad signature"),
    (lambda: webhooks.signed_headers(KEY, "b" * 32), 403, "bad signature"),
    (lambda: webhooks.signed_headers(KEY, PROVIDER_ID, now=time.time() - 3600), 403, "stale timestamp"),
    (lambda: {"X-Webhook-Timestamp": "soon", "X-Webhook-Signature": "x"}, 403, "malformed timestamp"),
]


@pytest.mark.parametrize("make_headers, status, reason", FORGED_SIGNATURES)
def test_forged_signatures_change_nothing(client, task, enqueued, make_headers, status, reason):
    response = post(client, task, headers=make_headers())
    assert response.status_code == status
    assert response.json()["error"] == reason
    assert_rejected(task, reason)
    assert enqueued == []


@pytest.mark.parametrize("make_headers, status, reason", FORGED_SIGNATURES)
def test_a_forged_callback_cannot_name_the_provider_task_of_an_unconfirmed_task(client, signed, member, enqueued,
                                                                                make_headers, status, reason):
    task = watched(make_task(member, State.UNCONFIRMED))
    response = post(client, task, headers=make_headers())
    assert (response.status_code, response.json()["error"]) == (status, reason)
    assert_rejected(task, reason)
    assert task.state == State.UNCONFIRMED and not task.provider_task_id
    assert enqueued == []


def test_a_wrong_token_changes_nothing(client, task, enqueued):
    response = post(client, task, token="not-the-secret")
    assert response.status_code == 404
    assert_unchanged(task)
    assert enqueued == []


def test_a_callback_for_another_provider_task_changes_nothing(client, task, enqueued):
    other = "c" * 32
    response = post(client, task, payload=body(task_id=other), headers=webhooks.signed_headers(KEY, other))
    assert response.status_code == 400
    assert response.json()["error"] == "taskId does not match this task"
    assert_rejected(task, "taskId does not match this task")
    assert enqueued == []


@pytest.mark.parametrize("callback_id, status, outcome", [
    ("c" * 32, 400, "rejected"),  # another provider task: rejected, though the view read no id yet
    (PROVIDER_ID, 200, "noted"),  # the id generate answered: an ordinary first delivery
])
def test_a_callback_checks_the_id_the_task_got_after_the_view_loaded_it(client, signed, member, enqueued, monkeypatch,
                                                                        callback_id, status, outcome):
    """The view loads an unconfirmed task (no id yet); generate answers PROVIDER_ID before the callback
    is handled. The callback is judged by the id the task has now, not the one the view read."""
    task = make_task(member, State.UNCONFIRMED)
    real_receive = callbacks.receive

    def generate_answers_meanwhile(loaded, body, headers):
        assert not loaded.provider_task_id and loaded.state == State.UNCONFIRMED
        assert ModifyTask.objects.get(pk=loaded.pk).accepted(PROVIDER_ID)
        watched(task)
        return real_receive(loaded, body, headers)

    monkeypatch.setattr("modify.callbacks.receive", generate_answers_meanwhile)
    response = post(client, task, payload=body(task_id=callback_id), headers=webhooks.signed_headers(KEY, callback_id))
    assert response.status_code == status
    task.refresh_from_db()
    assert (task.state, task.provider_task_id) == (State.GENERATING, PROVIDER_ID)
    assert callback_details(task, "adopted") == []
    if outcome == "rejected":
        assert response.json()["error"] == "taskId does not match this task"
        assert_rejected(task, "taskId does not match this task")
        assert task.callback_received_at is None
        assert enqueued == []
    else:
        assert task.callback_received_at is not None
        assert history(task)[len(task.history_before):] == [
            ("callback_accepted", State.GENERATING, State.GENERATING, Actor.PROVIDER, "first delivery")]
        assert enqueued == [task.pk]


def test_receive_with_a_stale_task_rejects_another_provider_task(signed, member, enqueued):
    """modify.callbacks.receive given an instance read before generate answered: still rejected, nothing changes."""
    stale = make_task(member, State.UNCONFIRMED)
    assert ModifyTask.objects.get(pk=stale.pk).accepted(PROVIDER_ID)
    task = watched(ModifyTask.objects.get(pk=stale.pk))
    other = "c" * 32
    outcome = callbacks.receive(stale, body(task_id=other).encode(), webhooks.signed_headers(KEY, other))
    assert (outcome.status, outcome.reason, outcome.accepted) == (400, "taskId does not match this task", False)
    assert_rejected(task, "taskId does not match this task")
    assert enqueued == []
    # The real callback, even with that stale instance, is then noted and enqueues one poll.
    outcome = callbacks.receive(stale, body().encode(), webhooks.signed_headers(KEY, PROVIDER_ID))
    assert outcome.accepted
    assert callback_details(task, "callback_accepted") == ["first delivery"]
    assert enqueued == [task.pk]


@pytest.mark.parametrize("payload", ["not json", json.dumps({"code": 200}), json.dumps([1, 2]),
                                     json.dumps({"data": "a string"}), b"\xff\xfe not utf-8"])
def test_malformed_bodies_are_rejected(client, task, enqueued, payload):
    response = post(client, task, payload=payload)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed callback body"
    assert_rejected(task, "malformed callback body")
    assert enqueued == []


def test_unsigned_callbacks_are_accepted_when_no_hmac_key_is_configured(client, task, enqueued, settings):
    settings.LUMA_WEBHOOK_HMAC_KEY = ""
    assert post(client, task, headers={}).status_code == 200
    assert enqueued == [task.pk]
    assert callback_details(task, "callback_accepted") == ["first delivery"]


def test_only_post_is_allowed(client, task):
    assert client.get(f"/callbacks/{task.callback_token}/").status_code == 405
    assert_unchanged(task)


def test_a_callback_is_answered_with_few_queries(client, task, enqueued):
    """Find the task, note the callback (UPDATE, then its reload), log the delivery (INSERT): the
    provider is answered in milliseconds. (The test's transaction turns the transition's atomic block
    into savepoints, which production does not run as statements: they are not counted.)"""
    with CaptureQueriesContext(connection) as captured:
        assert post(client, task).status_code == 200
    queries = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"].upper()]
    assert len(queries) <= 4, queries
    assert enqueued == [task.pk]


def test_a_non_ascii_signature_is_refused_not_a_crash(client, task, enqueued):
    headers = {**webhooks.signed_headers(KEY, PROVIDER_ID), "X-Webhook-Signature": "подпись"}
    assert post(client, task, headers=headers).status_code == 403
    assert_rejected(task, "bad signature")
    assert enqueued == []


@pytest.mark.parametrize("bad_id", ["", "x" * 65, 12345])
def test_a_malformed_task_id_is_refused(client, task, enqueued, bad_id):
    headers = webhooks.signed_headers(KEY, str(bad_id))
    assert post(client, task, payload=body(task_id=bad_id), headers=headers).status_code == 400
    assert_rejected(task, "malformed taskId")
    assert enqueued == []


def test_a_callback_while_queued_for_a_retry_records_the_provider_task_so_it_is_not_generated_twice(
        client, signed, member, enqueued):
    task = watched(make_task(member, State.QUEUED))
    assert post(client, task).status_code == 200
    task.refresh_from_db()
    assert (task.state, task.provider_task_id) == (State.GENERATING, PROVIDER_ID)
    assert enqueued == [task.pk]
    assert not task.claim()
    assert callback_details(task, "adopted") == [PROVIDER_ID]


# Regressions: hostile input with a valid token answers 4xx and changes nothing, never a 500.

@pytest.mark.parametrize("payload", [
    '{"data":' * 100000 + '{"taskId": "' + PROVIDER_ID + '"}' + "}" * 100000,
    "[" * 100000 + "]" * 100000,
])
def test_a_deeply_nested_body_is_rejected_not_a_crash(client, task, enqueued, payload):
    response = post(client, task, payload=payload)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed callback body"
    assert_rejected(task, "malformed callback body")
    assert enqueued == []


@pytest.mark.parametrize("timestamp", ["9" * 400, "-" + "9" * 400, "9" * 5000])
def test_a_huge_timestamp_is_rejected_not_a_crash(client, task, enqueued, timestamp):
    headers = {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": webhooks.signature(KEY, PROVIDER_ID, timestamp)}
    response = post(client, task, headers=headers)
    assert response.status_code in (400, 403)
    assert response.json()["error"] == "malformed timestamp"
    assert_rejected(task, "malformed timestamp")
    assert enqueued == []
