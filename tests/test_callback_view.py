"""POST /callbacks/<token>/: authenticate, note, enqueue once; reject forgeries with no change."""

import json
import time

import pytest
from django.contrib.auth.models import User

from modify import webhooks
from modify.models import ModifyTask

KEY = "webhook-key"
PROVIDER_ID = "a" * 32


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr("modify.callback.enqueue_finalize", lambda task: calls.append(task.pk))
    return calls


@pytest.fixture
def task(db, settings):
    settings.LUMA_WEBHOOK_HMAC_KEY = KEY
    owner = User.objects.create_user("sam")
    return ModifyTask.objects.create(
        owner=owner, prompt="p", source_kind="url", source_url="https://x/a.mp4",
        state=ModifyTask.State.GENERATING, provider_task_id=PROVIDER_ID,
    )


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
    before = (task.state, task.callback_received_at, task.updated_at)
    task.refresh_from_db()
    assert (task.state, task.callback_received_at, task.updated_at) == before


def test_a_valid_callback_is_noted_and_enqueues_finalization(client, task, enqueued):
    response = post(client, task)
    assert response.status_code == 200 and response.json() == {"ok": True}
    task.refresh_from_db()
    assert task.callback_received_at is not None
    assert enqueued == [task.pk]


def test_the_same_callback_five_times_enqueues_once(client, task, enqueued):
    assert [post(client, task).status_code for _ in range(5)] == [200] * 5
    assert enqueued == [task.pk]


def test_a_callback_before_generate_answered_records_the_provider_task(client, task, enqueued):
    ModifyTask.objects.filter(pk=task.pk).update(state=ModifyTask.State.SUBMITTING, provider_task_id="")
    task.refresh_from_db()
    assert post(client, task).status_code == 200
    task.refresh_from_db()
    assert task.state == ModifyTask.State.GENERATING
    assert task.provider_task_id == PROVIDER_ID
    assert task.callback_received_at is not None
    assert enqueued == [task.pk]
    assert post(client, task).status_code == 200  # the duplicate changes nothing more
    assert enqueued == [task.pk]


@pytest.mark.parametrize(
    "make_headers, status, reason",
    [
        (lambda: {}, 403, "missing signature headers"),
        (lambda: webhooks.signed_headers("wrong-key", PROVIDER_ID), 403, "bad signature"),
        (lambda: webhooks.signed_headers(KEY, "b" * 32), 403, "bad signature"),
        (lambda: webhooks.signed_headers(KEY, PROVIDER_ID, now=time.time() - 3600), 403, "stale timestamp"),
        (lambda: {"X-Webhook-Timestamp": "soon", "X-Webhook-Signature": "x"}, 403, "malformed timestamp"),
    ],
)
def test_forged_signatures_change_nothing(client, task, enqueued, make_headers, status, reason):
    response = post(client, task, headers=make_headers())
    assert response.status_code == status
    assert response.json()["error"] == reason
    assert_unchanged(task)
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
    assert_unchanged(task)


@pytest.mark.parametrize("payload", ["not json", json.dumps({"code": 200}), json.dumps([1, 2])])
def test_malformed_bodies_are_rejected(client, task, enqueued, payload):
    assert post(client, task, payload=payload).status_code == 400
    assert_unchanged(task)


def test_unsigned_callbacks_are_accepted_when_no_hmac_key_is_configured(client, task, enqueued, settings):
    settings.LUMA_WEBHOOK_HMAC_KEY = ""
    assert post(client, task, headers={}).status_code == 200
    assert enqueued == [task.pk]


def test_only_post_is_allowed(client, task):
    assert client.get(f"/callbacks/{task.callback_token}/").status_code == 405


def test_a_callback_is_answered_with_few_queries(client, task, enqueued, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        assert post(client, task).status_code == 200
    assert enqueued == [task.pk]


def test_a_non_ascii_signature_is_refused_not_a_crash(client, task, enqueued):
    headers = {**webhooks.signed_headers(KEY, PROVIDER_ID), "X-Webhook-Signature": "подпись"}
    assert post(client, task, headers=headers).status_code == 403
    assert_unchanged(task)


@pytest.mark.parametrize("bad_id", ["", "x" * 65, 12345])
def test_a_malformed_task_id_is_refused(client, task, enqueued, bad_id):
    headers = webhooks.signed_headers(KEY, str(bad_id))
    assert post(client, task, payload=body(task_id=bad_id), headers=headers).status_code == 400
    assert_unchanged(task)


def test_a_callback_while_queued_for_a_retry_records_the_provider_task_so_it_is_not_generated_twice(client, task, enqueued):
    ModifyTask.objects.filter(pk=task.pk).update(state=ModifyTask.State.QUEUED, provider_task_id="")
    task.refresh_from_db()
    assert post(client, task).status_code == 200
    task.refresh_from_db()
    assert (task.state, task.provider_task_id) == (ModifyTask.State.GENERATING, PROVIDER_ID)
    assert enqueued == [task.pk]
    assert not task.claim_for_submission()
